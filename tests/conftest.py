"""Shared pytest configuration: paths to the repository's example data."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import RUN_MARK, run_members

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["fixtures.rucio", "fixtures.xrootd", "fixtures.devserver", "fixtures.smallfs", "fixtures.rootfs",
                  "fixtures.podman", "fixtures.slurm", "fixtures.ledger", "pytester"]


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The repository's ``examples/`` folder."""
    return REPO / "examples"


def pytest_configure(config: pytest.Config) -> None:
    # every process this run starts inherits the mark: a pilot a test leaves behind is found, orphaned or not
    os.environ.setdefault(RUN_MARK, f"{os.getpid()}-{time.time_ns()}")


@pytest.fixture(autouse=True)
def _no_pilot_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a pilot (or a library process) of this run running: it would take the next test's
    jobs from the shared local server. The process is killed (it carries this run's mark, so it is ours)."""
    mark = os.environ[RUN_MARK]
    before = set(run_members(mark))
    yield
    deadline = time.monotonic() + 10
    left = {pid: cmd for pid, cmd in run_members(mark).items() if pid not in before}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid: cmd for pid, cmd in run_members(mark).items() if pid not in before}
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(f"{request.node.nodeid} left {len(left)} pilot process(es) running: {sorted(left.values())}")
