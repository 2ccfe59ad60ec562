"""The documentation builds without a warning, and every public API module it documents imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sphinx_builds_without_warnings(tmp_path: Path) -> None:
    """``sphinx -W`` turns every warning (a broken reference, a malformed table, a failed autodoc import) into a
    failure, so docs that do not build fail the suite."""
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(REPO / "docs"),
         str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "html" / "index.html").is_file()
    assert (tmp_path / "html" / "errors.html").is_file()
