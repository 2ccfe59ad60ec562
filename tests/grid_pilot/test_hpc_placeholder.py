"""The hpc-pilot command exists but says plainly that it is not available yet (no silent success)."""

from __future__ import annotations

import subprocess
import sys


def test_hpc_pilot_says_not_available_and_fails() -> None:
    """``python -m apps.hpc_pilot`` exits 2 with a message pointing to the Harvester mode of the grid pilot."""
    done = subprocess.run([sys.executable, "-m", "apps.hpc_pilot"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "not available yet" in done.stderr and "--mode harvester" in done.stderr
