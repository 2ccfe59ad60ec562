"""Fixtures for the payload tests: small Python payloads written into a temporary work directory."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotlib.payload import PayloadCommand

from ._helpers import PY

MakeCommand = Callable[[str], PayloadCommand]


@pytest.fixture
def make_command(tmp_path: Path) -> MakeCommand:
    """Write a Python payload script into a fresh work directory and return the command that runs it."""
    workdir = tmp_path / "work"
    workdir.mkdir()

    def make(source: str) -> PayloadCommand:
        script = workdir / "payload.py"
        script.write_text(textwrap.dedent(source))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return PayloadCommand(
            argv=(PY, str(script)),
            env=env,
            workdir=workdir,
            stdout=workdir / "payload.stdout",
            stderr=workdir / "payload.stderr",
        )

    return make
