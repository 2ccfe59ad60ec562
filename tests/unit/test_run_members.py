"""The test run's own check for pilot processes left behind (``tests/fixtures/processes.py``): what it counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import RUN_MARK, run_members


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_service_given_a_pilotlib_temporary_file_is_not_a_pilot_process(
        started: list[subprocess.Popen[bytes]]) -> None:
    """A real service (XRootD, munged) started by a session fixture gets a configuration file under a
    ``/tmp/pilotlib-...`` directory: it is not a pilot; a Python program running pilotlib's code is."""

    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "/tmp/pilotlib-xrootd-x/x.cfg"])
    library = subprocess.Popen([sys.executable, "-I", "-c", "import time; time.sleep(30)  # pilotlib"])
    started += [service, library]
    for proc in started:  # each has run its exec (its command line is its own, not this interpreter's)
        deadline = time.monotonic() + 10
        while b"sleep(30)" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
    members = run_members(os.environ[RUN_MARK])
    assert library.pid in members
    assert service.pid not in members
