"""The generated reference cannot drift: every option of both apps' parsers and every error code is in the built
HTML, rendered by the directives of ``docs/_ext/pilotlib_reference.py`` from the code itself."""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from apps.grid_pilot import cli as grid_cli
from apps.hpc_pilot import cli as hpc_cli
from pilotlib.errors import ErrorCode
from pilotlib.info import QueueDescription

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import pilotlib_reference  # noqa: E402 - docs/_ext is not a package

_SMART = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "--",
                        "\u2014": "---", "\u2026": "..."})


def _html(page: Path) -> str:
    """The page's HTML with Sphinx's smart quotes and dashes (outside literals) turned back into ASCII."""
    return page.read_text(encoding="utf-8").translate(_SMART)


def _text(page: Path) -> str:
    """The page's text: tags removed, entities decoded, smart quotes and dashes as ASCII."""
    return html.unescape(re.sub(r"<[^>]+>", "", _html(page))).translate(_SMART)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings if flag not in ("-h", "--help")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built once with ``sphinx -W`` (a warning fails the build)."""
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(REPO / "docs"), str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_grid_pilot_page_lists_every_option_and_config_key(built: Path) -> None:
    """Each flag of ``grid-pilot``'s parser, its help, and each config-file key is on grid-pilot.html."""
    parser = grid_cli.build_parser()
    text = _text(built / "grid-pilot.html")
    assert len(_options(parser)) > 40
    for flag in _options(parser):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), flag
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "config"):
            assert action.dest.replace("_", "-") in text, action.dest
            first_words = (action.help or "").split(",")[0][1:40]
            assert first_words in text, action.help
    # the hand-written table is gone: the generated list is the only one
    assert "================================== ===" not in (REPO / "docs" / "grid-pilot.rst").read_text()


@pytest.mark.slow
def test_hpc_pilot_page_lists_every_option_with_its_default(built: Path) -> None:
    """Each flag of ``hpc-pilot``'s parser is on hpc-pilot.html, a default its help does not state shown."""
    parser = hpc_cli.build_parser()
    text = _text(built / "hpc-pilot.html")
    for flag in _options(parser):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), flag
    assert "Default: 30.0." in text  # --grace's default, not in its help
    assert "Default: 300.0." in text  # --heartbeat


@pytest.mark.slow
def test_errors_page_lists_every_code(built: Path) -> None:
    """Every :class:`ErrorCode` member's name, number and message is on errors.html, with its recoverable flag."""
    page = html.unescape(_html(built / "errors.html")).translate(_SMART)
    text = _text(built / "errors.html")
    assert len(ErrorCode) > 100
    for code in ErrorCode:
        assert code.name in text, code.name
        assert re.search(rf"<td><p>{int(code)}</p></td>\s*<td><p>{re.escape(code.message)}"
                         rf"</p></td>\s*<td><p>{'yes' if code.recoverable else 'no'}</p></td>", page), code.name


@pytest.mark.slow
def test_info_page_lists_every_queue_description_field(built: Path) -> None:
    """Every attrs field of :class:`QueueDescription` is on info.html with the meaning its docstring gives."""
    text = _text(built / "info.html")
    meanings = pilotlib_reference._attributes_section(QueueDescription.__doc__ or "")
    for field in attrs.fields(QueueDescription):
        assert field.name in meanings, field.name  # the docstring documents the field
        assert field.name in text, field.name
        assert meanings[field.name].replace("``", "")[:30] in text, field.name


def test_a_new_option_appears_in_the_rendered_reference() -> None:
    """An option added to a parser is in the rendering without a docs edit: the reference follows the code."""
    parser = hpc_cli.build_parser()
    parser.add_argument("--brand-new-option", type=int, default=7, help="a new knob")
    rendered = pilotlib_reference.render_options(parser)
    assert "``--brand-new-option BRAND_NEW_OPTION``\n   A new knob.\n   Default: ``7``." in rendered
    keys = pilotlib_reference.render_config_keys(grid_cli.build_parser())
    assert "   * - ``job-label``\n     - ``--joblabel``\n     - string or number" in keys
    assert "   * - ``config``" not in keys


def test_a_bad_directive_argument_is_refused() -> None:
    """``module:function`` is required; a function that does not return a parser is refused."""
    with pytest.raises(ValueError, match="expected module:function"):
        pilotlib_reference.load_parser("apps.grid_pilot.cli")
    with pytest.raises(TypeError, match="not an ArgumentParser"):
        pilotlib_reference.load_parser("pilotlib.errors:render_error_table")
