"""Fixtures for the information service tests: example descriptions, a fake clock, a real HTTP server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
QUEUES = REPO / "examples" / "queues"


def load_example(name: str) -> dict[str, Any]:
    """A decoded example description from ``examples/queues``."""
    return json.loads((QUEUES / name).read_text())


class FakeClock:
    """A clock for cache ages: starts at the real time (file modification times are real), moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def ucore() -> dict[str, Any]:
    """The example grid queue CERN-PROD_UCORE."""
    return load_example("CERN-PROD_UCORE.json")


@pytest.fixture
def ddmendpoints() -> dict[str, Any]:
    """The example storage descriptions."""
    return load_example("ddmendpoints.json")
