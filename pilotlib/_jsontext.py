"""Decoding JSON text that another program sent or is still writing: bounded, and telling truncated from bad.

One decoder for every JSON document a job definition travels in (the dispatcher's answers, Harvester's job file, an
ARC CE's job file), so that hostile input fails the same way everywhere, at once and with a reason:

- an integer literal longer than Python's int/str conversion limit (4300 digits) does not abort the whole
  document: it decodes as an :class:`OversizedInt`, which the job definition parser refuses naming its field;
- nesting past the interpreter's recursion limit (JSON nested 10000 deep) is a :class:`JsonTextError`, never a
  ``RecursionError``;
- bytes that are not UTF-8 are a :class:`JsonTextError`.

Each :class:`JsonTextError` says whether the text merely looks *truncated*: a prefix of a document that was still
being written (HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py``, ``feed_jobs``, writes the
job file with a plain ``open(..., "w")`` and ``json.dump``, so a reader may see any prefix of it). Only such a text is
worth reading again; anything else (a byte that is not UTF-8 in the middle, a syntax error before the end, too deep
nesting, which a longer prefix can only make deeper) is final.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

__all__ = ["JsonTextError", "OversizedInt", "decode_utf8", "loads"]

#: Python's default int/str conversion limit (``sys.int_info.default_max_str_digits``).
MAX_INT_DIGITS = 4300
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_NUMBER_TAIL = re.compile(r"\.|[eE][+-]?")
_ESCAPE_TAIL = re.compile(r"u[0-9a-fA-F]{0,4}")  # a \uXXXX escape at the very end of the text


@attrs.frozen
class OversizedInt:
    """An integer literal too long to convert (more than :data:`MAX_INT_DIGITS` digits); only its length is kept."""

    digits: int

    def __str__(self) -> str:
        return f"<an integer of {self.digits} digits>"


class JsonTextError(ValueError):
    """A text is not a JSON document; ``truncated`` tells whether it looks like the prefix of one."""

    def __init__(self, reason: str, *, truncated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated


def _parse_int(text: str) -> int | OversizedInt:
    digits = len(text.lstrip("-"))
    return OversizedInt(digits) if digits > MAX_INT_DIGITS else int(text)


def _looks_truncated(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether the decoder failed only because the text ended (what a prefix of a valid document does)."""
    if exc.msg.startswith("Unterminated string"):
        return True
    rest = text[exc.pos:].rstrip()
    if not rest:
        return True
    if exc.msg == "Expecting value" and any(word.startswith(rest) and word != rest for word in _LITERALS):
        return True
    if exc.msg.startswith("Expecting ',' delimiter") and _NUMBER_TAIL.fullmatch(rest):
        return True
    return exc.msg.startswith("Invalid \\uXXXX escape") and bool(_ESCAPE_TAIL.fullmatch(rest))


def loads(text: str) -> Any:
    """The JSON document in ``text``; too long integers become :class:`OversizedInt`.

    Raises:
        JsonTextError: not a JSON document (``truncated`` when it looks like a prefix of one) or nested too deeply.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"not valid JSON ({exc})", truncated=_looks_truncated(text, exc)) from None
    except RecursionError:
        raise JsonTextError("JSON nested too deeply", truncated=False) from None


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text.

    Raises:
        JsonTextError: not UTF-8; ``truncated`` when only the last character is cut short (a file being written).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.reason == "unexpected end of data" and exc.end == len(data)
        raise JsonTextError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", truncated=cut) from None
