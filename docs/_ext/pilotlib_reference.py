"""Sphinx directives that generate reference tables from the code, so the docs cannot drift from it.

- ``.. argparse-options:: apps.grid_pilot.cli:build_parser``: every option of the parser, with its help, choices and
  default (``:config-keys:`` instead lists the keys a TOML config file takes: the options' destinations).
- ``.. attrs-fields:: pilotlib.info:QueueDescription``: the fields of an attrs class, with their docstring's meaning.
- ``.. error-codes::``: the catalogue of :class:`pilotlib.errors.ErrorCode`
  (:func:`pilotlib.errors.render_error_table`).
  (:func:`pilotlib.errors.render_error_table`).

The ``render_*`` functions return reStructuredText; tests call them directly too.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

__all__ = ["load_parser", "render_attrs_fields", "render_config_keys", "render_error_codes", "render_options", "setup"]

_SKIPPED = (argparse._HelpAction,)


def load_parser(spec: str) -> argparse.ArgumentParser:
    """The parser that ``module:function`` builds (the function takes no argument)."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"expected module:function, got {spec!r}")
    parser = getattr(importlib.import_module(module_name), func_name)()
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"{spec} returned {type(parser).__name__}, not an ArgumentParser")
    return parser


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, _SKIPPED)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|").replace("_", "\\_")


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"``{action.metavar or action.dest}``"
    if action.nargs == 0:
        return ", ".join(f"``{flag}``" for flag in action.option_strings)
    metavar = action.metavar or (action.dest.upper() if action.choices is None else "{" + ",".join(
        str(c) for c in action.choices) + "}")
    return ", ".join(f"``{flag} {metavar}``" for flag in action.option_strings)


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or action.default == []:
        return ""
    return f"Default: ``{action.default!s}``." if action.default != "" else "Default: empty."


def render_options(parser: argparse.ArgumentParser) -> str:
    """Every option of ``parser`` as a definition list: its flags (with metavar or choices), help, choices, default.

    An option whose argparse default is None (grid-pilot's: unset options fall back to the config file) shows the
    default its help states.
    """
    lines: list[str] = []
    for action in _actions(parser):
        lines.append(_flags(action))
        text = _escape(action.help or "(no help)")
        text = text[0].upper() + text[1:]
        extra = [x for x in (
            "Repeatable." if isinstance(action, argparse._AppendAction) and "repeatable" not in text.lower() else "",
            _default(action) if "default" not in text.lower() else "",
        ) if x]
        lines += [f"   {text}" + ("" if text.endswith(".") else "."), *(f"   {x}" for x in extra), ""]
    return "\n".join(lines)


def render_config_keys(parser: argparse.ArgumentParser) -> str:
    """The keys a TOML config file takes: each option's destination, with ``-`` or ``_``, and its option."""
    lines = [
        ".. list-table:: Configuration file keys",
        "   :header-rows: 1",
        "   :widths: 30 30 40",
        "",
        "   * - Key",
        "     - Option",
        "     - Value",
    ]
    for action in _actions(parser):
        if action.dest == "config" or not action.option_strings:
            continue
        key = action.dest.replace("_", "-")
        if action.nargs == 0:
            value = f"``{str(action.const).lower()}``"
        elif isinstance(action, argparse._AppendAction):
            value = "a list of strings, or a table"
        elif action.choices is not None:
            value = " | ".join(f'``"{c}"``' for c in action.choices)
        else:
            value = "string or number"
        lines += [f"   * - ``{key}``", f"     - ``{action.option_strings[-1]}``", f"     - {value}"]
    return "\n".join(lines) + "\n"


def _attributes_section(doc: str) -> dict[str, str]:
    """The ``Attributes:`` entries of a Google-style docstring, by name (continuation lines joined)."""
    found: dict[str, str] = {}
    inside, current = False, ""
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if not stripped or (not line.startswith(" ") and stripped.endswith(":")):
            if found:
                break
            continue
        name, sep, text = stripped.partition(": ")
        if sep and name.isidentifier() and line.startswith("        ") and not line.startswith("         "):
            current = name
            found[name] = text
        elif current:
            found[current] += " " + stripped
    return found


def render_attrs_fields(spec: str) -> str:
    """The fields of the attrs class ``module:Class`` as a table: name, type, default, meaning (its docstring's
    ``Attributes:`` entry)."""
    import attrs  # noqa: PLC0415 - only this directive needs it

    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    meanings = _attributes_section(cls.__doc__ or "")
    lines = [
        f".. list-table:: ``{class_name}`` fields",
        "   :header-rows: 1",
        "   :widths: 20 25 15 40",
        "",
        "   * - Field",
        "     - Type",
        "     - Default",
        "     - Meaning",
    ]
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default = "(required)"
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = "empty"
        else:
            default = f"``{field.default!r}``"
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        lines += [f"   * - ``{field.name}``", f"     - ``{kind}``", f"     - {default}",
                  f"     - {meanings.get(field.name, '(not documented)')}"]
    return "\n".join(lines) + "\n"


def render_error_codes() -> str:
    """The error-code catalogue as a table (one row per :class:`pilotlib.errors.ErrorCode` member)."""
    from pilotlib.errors import render_error_table  # noqa: PLC0415 - the docs' sys.path is set by conf.py

    return render_error_table()


class _Generated(SphinxDirective):
    def _parse(self, text: str) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(text.splitlines(), source=self.get_source_info()[0]),
                                self.content_offset, container)
        return list(container.children)


class ArgparseOptions(_Generated):
    """``.. argparse-options:: module:function`` (option ``:config-keys:``: the config file's keys instead)."""

    required_arguments = 1
    option_spec: dict[str, Any] = {"config-keys": directives.flag}

    def run(self) -> list[nodes.Node]:
        """Render the parser's options (or config keys)."""
        parser = load_parser(self.arguments[0])
        module = self.arguments[0].partition(":")[0]
        self.env.note_dependency(importlib.import_module(module).__file__ or "")
        text = render_config_keys(parser) if "config-keys" in self.options else render_options(parser)
        return self._parse(text)


class AttrsFields(_Generated):
    """``.. attrs-fields:: module:Class``: the fields of an attrs class with their meanings."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Render the fields."""
        return self._parse(render_attrs_fields(self.arguments[0]))


class ErrorCodes(_Generated):
    """``.. error-codes::``: the error-code table."""

    def run(self) -> list[nodes.Node]:
        """Render the catalogue."""
        return self._parse(render_error_codes())


def setup(app: Any) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("argparse-options", ArgparseOptions)
    app.add_directive("error-codes", ErrorCodes)
    app.add_directive("attrs-fields", AttrsFields)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
