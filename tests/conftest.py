"""Shared pytest configuration: paths to the repository's example data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["fixtures.rucio", "fixtures.xrootd", "fixtures.devserver", "fixtures.smallfs", "fixtures.rootfs",
                  "fixtures.podman", "fixtures.slurm", "fixtures.ledger", "pytester"]


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The repository's ``examples/`` folder."""
    return REPO / "examples"
