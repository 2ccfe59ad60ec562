"""The pilotlib.panda package: every public name resolves, and the implementations load only when used."""

from __future__ import annotations

import subprocess
import sys

import pilotlib.panda


def test_every_public_name_resolves() -> None:
    """Each name in ``__all__`` is an attribute of the package (loaded on first use)."""
    for name in pilotlib.panda.__all__:
        assert getattr(pilotlib.panda, name) is not None, name


def test_base_interfaces_do_not_load_the_implementations() -> None:
    """Importing the interfaces does not import the dispatcher client (requests, ssl) nor the file protocols."""
    code = ("import sys, pilotlib.panda.base; "
            "print(sorted(m for m in ('requests', 'pilotlib.panda.client', 'pilotlib.panda.harvester') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
