"""Fixtures of the dispatcher and Harvester file tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ap(tmp_path: Path) -> Path:
    """An empty access point (Harvester's worker directory)."""
    path = tmp_path / "access_point"
    path.mkdir()
    return path
