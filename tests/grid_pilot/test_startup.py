"""The grid pilot's start stays cheap: heavy libraries are loaded only when a mode needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_loading_the_pilot_does_not_load_requests_or_tomllib() -> None:
    """Importing the app (what every pilot pays at start) loads neither requests nor tomllib: a launch-directory
    pilot never needs HTTP and a pilot without --config never reads TOML (requests alone is about half of the
    pilot's import time on a small node)."""
    code = ("import sys, apps.grid_pilot.__main__; "
            "print(sorted(m for m in ('requests', 'urllib3', 'tomllib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "[]", out.stderr
