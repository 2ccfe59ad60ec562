"""Conversion of raw description fields into typed, frozen values, with errors naming the field (private)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

from pilotlib.info.errors import BadQueuedataError

JSON: TypeAlias = "str | int | float | bool | tuple[JSON, ...] | Mapping[str, JSON] | None"
"""A frozen JSON value: lists become tuples, objects become read-only mappings."""

_NULLS = frozenset({"", "null", "none"})
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", "", "none", "null"})
_MAX_LITERAL = 100_000


def freeze(value: object, field: str) -> JSON:
    """Deep-freeze a decoded JSON value (lists to tuples, dicts to read-only mappings)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v, f"{field}.{k}") for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v, field) for v in value)
    raise BadQueuedataError(f"field {field}: {type(value).__name__} is not a JSON value")


def _bad(field: str, raw: object, expected: str) -> BadQueuedataError:
    shown = repr(raw)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return BadQueuedataError(f"field {field}={shown}: expected {expected}")


def to_str(raw: object, field: str, default: str = "") -> str:
    """A string field; ``None`` gives the default, numbers are written out."""
    if raw is None:
        return default
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise _bad(field, raw, "a string")


def to_int(raw: object, field: str, default: int = 0) -> int:
    """An integer field; ``None``, ``""`` and ``"NULL"`` give the default; digit strings are accepted."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise _bad(field, raw, "an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in _NULLS:
            return default
        try:
            return int(text)
        except ValueError:
            pass
    raise _bad(field, raw, "an integer")


def to_bool(raw: object, field: str, default: bool) -> bool:
    """A flag; accepts booleans, 0/1 and the strings true/false/yes/no (as CRIC writes them)."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False if text not in _NULLS else default
    raise _bad(field, raw, "a boolean")


def to_mapping(raw: object, field: str) -> Mapping[str, object]:
    """An object field; ``None`` gives ``{}``; a string holding a JSON or Python literal dict is decoded."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        raw = _decode_literal(raw, field)
        if raw is None:
            return {}
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items()}
    raise _bad(field, raw, "an object")


def _decode_literal(text: str, field: str) -> object:
    text = text.strip()
    if text.lower() in _NULLS:
        return None
    if len(text) > _MAX_LITERAL:
        raise _bad(field, text, f"an object literal shorter than {_MAX_LITERAL} characters")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _bad(field, text, "an object") from exc


def to_names(raw: object, field: str) -> tuple[str, ...]:
    """A list of names: a JSON list of strings, or one comma-separated string."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, Sequence) and all(isinstance(item, str) for item in raw):
        return tuple(item.strip() for item in raw if item.strip())
    raise _bad(field, raw, "a list of names")


def to_names_by_key(raw: object, field: str) -> Mapping[str, tuple[str, ...]]:
    """An object of name lists per activity (``acopytools``, ``astorages``)."""
    items = to_mapping(raw, field)
    return MappingProxyType({key: to_names(value, f"{field}.{key}") for key, value in items.items()})


def frozen_mapping(raw: object, field: str) -> Mapping[str, JSON]:
    """An object field of arbitrary JSON values, deep-frozen."""
    items = to_mapping(raw, field)
    return MappingProxyType({key: freeze(value, f"{field}.{key}") for key, value in items.items()})


def first_present(data: Mapping[str, object], names: Sequence[str]) -> tuple[str | None, object]:
    """The first of ``names`` present (not ``None``) in ``data``, as (name, value); (None, None) if none."""
    for name in names:
        value = data.get(name)
        if value is not None:
            return name, value
    return None, None
