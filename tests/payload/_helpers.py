"""Helpers for the payload tests: polling with deadlines, process checks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fixtures.processes import process_gone

__all__ = ["PY", "process_gone", "wait_for_file", "wait_gone"]

PY = sys.executable


def wait_for_file(path: Path, deadline: float = 10.0) -> str:
    """Poll (with a deadline) until ``path`` exists and is non-empty; return its text."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists() and path.stat().st_size > 0:
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {deadline} s")


def wait_gone(pids: list[int], deadline: float = 10.0) -> bool:
    """Poll (with a deadline) until all ``pids`` are gone."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if all(process_gone(p) for p in pids):
            return True
        time.sleep(0.02)
    return False
