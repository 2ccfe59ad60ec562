"""A grid pilot killed with SIGKILL takes its payload with it (issue 10): the lifeline ends the payload's session.

The pilot runs as a real process in ARC mode (a launch directory, no server), in a session of its own so that its
process group can be killed as a batch system kills a job. Its payload starts a child, a double-forked daemon that
writes into the work directory, and a process in another process group of the session that writes too.

pilot3 starts its payload in a new session too (``pilot/util/container.py:94``, HEAD a090538b) and cleans up orphans
only from a living pilot (``kill_orphans``, ``pilot/util/processes.py:450``): a SIGKILLed pilot3 leaves them running,
which is the behaviour these tests rule out.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import process_gone, session_members

from .helpers import adler32, job_definition, make_inputs, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

PAYLOAD = """#!/bin/sh
# the leader, a child, a double-forked daemon and a process in another process group of the session; the last
# two write into the work directory every 0.1 s; pids.txt lists them once all are started
sleep 300 &
echo $! > child.pid
sh -c '(while :; do echo x >> daemon.ticks; sleep 0.1; done) & echo $! > daemon.pid'
"$PY" -c 'import os, time
os.setpgid(0, 0)
while True:
    with open("group.ticks", "a") as f:
        f.write("x")
    time.sleep(0.1)' &
echo $! > group.pid
cat child.pid daemon.pid group.pid > pids.tmp && echo $$ >> pids.tmp && mv pids.tmp pids.txt
exec sleep 300
"""


def _tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory``: (size, mtime in ns)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file()}


def _lifeline_pid(work: Path) -> int:
    match = re.search(r"lifeline started pid=(\d+)", (work / "pilot-state" / "pilotlog.txt").read_text())
    assert match, "the pilot started no lifeline"
    return int(match.group(1))


class Pilot:
    """A grid pilot process in ARC mode, in its own session; its stderr in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.work = tmp_path / "work"
        self.stderr = tmp_path / "pilot.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, definition: dict[str, str]) -> subprocess.Popen[bytes]:
        launch = self.tmp / "launch"
        launch.mkdir()
        (launch / "pandaJobData.out").write_text(json.dumps(definition))
        argv = ["--mode", "arc", "--launch-dir", str(launch), "-a", str(self.work), "--input-dir",
                str(self.tmp / "in"), "--output-dir", str(self.tmp / "storage"), "--copytool", "mv",
                "--log-level", "INFO"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                                         stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        return self.proc


@pytest.fixture
def pilot(tmp_path: Path) -> Iterator[Pilot]:
    """The pilot; at the end anything left of it, its payload's session and its lifeline is killed."""
    made = Pilot(tmp_path)
    try:
        yield made
    finally:
        leftovers = []
        pids = made.work / "9301" / "pids.txt"
        if pids.exists():
            leftovers = session_members(int(pids.read_text().split()[-1]))
        if made.proc is not None:
            if made.proc.poll() is None:
                made.proc.kill()
            made.proc.wait()
        log_file = made.work / "pilot-state" / "pilotlog.txt"
        if log_file.exists() and "lifeline started" in log_file.read_text():
            leftovers.append(_lifeline_pid(made.work))
        for pid in leftovers:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


def _killer_definition(tmp_path: Path) -> dict[str, str]:
    make_inputs(tmp_path / "in")
    (tmp_path / "in" / "payload.sh").write_text(PAYLOAD)
    definition = job_definition(9301, env=f"PY={sys.executable}")
    data = (tmp_path / "in" / "in.dat").read_bytes()
    definition["fsize"] = f"{len(data)},{len(PAYLOAD.encode())}"
    definition["checksum"] = f"ad:{adler32(data)},ad:{adler32(PAYLOAD.encode())}"
    return definition


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL mid-payload: the lifeline ends the payload session")
@pytest.mark.parametrize("kill", ["pilot", "process_group"])
def test_payload_session_dies_with_a_sigkilled_pilot(pilot: Pilot, tmp_path: Path, kill: str) -> None:
    """SIGKILL to the pilot, or to the pilot's whole process group (``kill -9 -<pgid>``), once its payload runs:
    within 5 s the payload, its child, its double-forked daemon and its process in another process group are gone,
    nothing is left in the payload's session, the work directory stops changing, and the lifeline says what it
    killed and exits."""
    proc = pilot.start(_killer_definition(tmp_path))
    workdir = pilot.work / "9301"
    assert wait_for(lambda: (workdir / "pids.txt").exists() or proc.poll() is not None, 60.0)
    assert proc.poll() is None, pilot.stderr.read_text()[-2000:]
    pids = [int(p) for p in (workdir / "pids.txt").read_text().split()]
    leader = pids[-1]
    assert all(not process_gone(p) for p in pids)
    if kill == "pilot":
        proc.kill()
    else:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    begin = time.monotonic()
    running = lambda: [p for p in pids if not process_gone(p)]  # noqa: E731
    assert wait_for(lambda: not running(), 5.0), f"still running: {running()}"
    assert session_members(leader) == []
    print(f"payload session gone {time.monotonic() - begin:.2f} s after the kill")
    before = _tree(workdir)
    time.sleep(0.5)  # the writers wrote every 0.1 s
    assert _tree(workdir) == before
    lifeline = _lifeline_pid(pilot.work)
    assert wait_for(lambda: process_gone(lifeline), 5.0)
    assert "lifeline: the pilot is gone; killed" in pilot.stderr.read_text()


@pytest.mark.reliability("faults", "pilot killed", "no lifeline left after a normal end")
def test_no_lifeline_is_left_after_a_normal_end(pilot: Pilot, tmp_path: Path) -> None:
    """A pilot that ends normally (job finished, exit 0) leaves no lifeline process behind: it was told goodbye
    and waited for."""
    make_inputs(tmp_path / "in")
    proc = pilot.start(job_definition(9302, sleep=0.2))
    assert proc.wait(120) == 0, pilot.stderr.read_text()[-2000:]
    lifeline = _lifeline_pid(pilot.work)
    assert not Path(f"/proc/{lifeline}").exists()
    assert json.loads((tmp_path / "launch" / "heartbeat.json").read_text())["state"] == "finished"
    assert "lifeline: the pilot is gone" not in pilot.stderr.read_text()
