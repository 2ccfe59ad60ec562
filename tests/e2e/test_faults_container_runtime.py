"""The container runtime itself misbehaves, end to end: a real grid-pilot process against the local PanDA server runs a
job on a queue whose ``container_type`` is ``apptainer:pilot``, and the ``apptainer`` it finds first on its ``PATH``
(the runtime's only executable setting: ``ApptainerRuntime.program`` looks its name up on the pilot's ``PATH``,
``pilotlib/containers/_program.py``) is a wrapper that

- fails to start: ``--version`` fails (the pilot's check of the runtime, once per pilot), or ``exec`` prints an
  Apptainer ``FATAL`` line and exits 255 as Apptainer does, running nothing;
- hangs: answers ``--version``, then sleeps forever ignoring SIGTERM (the job's wall-time limit ends it);
- is killed: starts the real runtime (the Apptainer stand-in of ``tests/fixtures/apptainer_standin.py``, which runs
  the payload with bubblewrap in the busybox image), waits until the payload runs, then SIGKILLs itself.

Each time the job fails with the code the pilot gives, within a bounded time, its final state reported once; the
pilot exits 0 (a failed job is not a pilot failure) and no process of the wrapper, the runtime or the payload is left.
Heartbeats are off (600 s) as in ``test_faults_server.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.apptainer_standin import make_standin, recorded
from fixtures.ledger import Ledger
from fixtures.processes import RUN_MARK, descendants, naming, process_gone, run_members

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode

from .helpers import REPO, final_updates, job_definition, pilot_argv, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VERSION = 'if [ "$1" = --version ]; then echo "apptainer version 1.3.4"; exit 0; fi\n'

#: --version fails: the pilot's check that the runtime answers gives APPTAINERNOTINSTALLED (1372; pilot3's
#: ``APPTAINERNOTINSTALLED = 1372``, ``pilot/common/errorcodes.py``).
NO_ANSWER = ("#!/bin/sh\necho 'apptainer: error while loading shared libraries: libseccomp.so.2: cannot open shared "
             "object file: No such file or directory' >&2\nexit 127\n")
#: exec fails as Apptainer does (exit 255, a FATAL line no more precise pattern matches): SINGULARITYGENERALFAILURE
#: (1306; pilot3 ``SINGULARITYGENERALFAILURE = 1306``).
FATAL_LINE = "FATAL:   container creation failed: unable to start container process: exec: starter-suid: killed"
NO_START = f"#!/bin/sh\n{VERSION}echo '{FATAL_LINE}' >&2\nexit 255\n"
#: exec hangs, deaf to SIGTERM (its ``sleep`` children too: an ignored signal stays ignored across exec).
HANG = f"#!/bin/sh\n{VERSION}trap '' TERM\nwhile :; do sleep 1; done\n"
#: exec starts the real runtime, waits until the payload has written ``started`` in its work directory (the wrapper's
#: working directory), lets it sleep half a second, then SIGKILLs itself.
KILLED = ("#!/bin/sh\n" + VERSION + '"{real}" "$@" &\n'
          "n=0; while [ ! -e started ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done\nsleep 0.5\nkill -9 $$\n")


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE with Apptainer as the pilot's container runtime."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online",
                                           "container_type": "apptainer:pilot"})


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class RuntimeRun:
    """One pilot run with a wrapper ``apptainer`` first on its ``PATH``; ``markers`` find every process of the
    wrapper, the runtime and the payload (all their command lines name this test's directory or the payload's
    unique sleep)."""

    def __init__(self, tmp_path: Path, server: DevServer, image: Path, panda_id: int) -> None:
        self.tmp, self.server, self.image, self.panda_id = tmp_path, server, image, panda_id
        self.sleep = f"3{panda_id}"
        self.markers = (str(tmp_path), f"sleep {self.sleep}")
        self.seen: dict[int, str] = {}
        self.pid = 0

    def wrapper(self, text: str) -> None:
        bindir = self.tmp / "bin"
        bindir.mkdir()
        (bindir / "apptainer").write_text(text)
        (bindir / "apptainer").chmod(0o755)

    def run(self, monkeypatch: pytest.MonkeyPatch, max_walltime: int = 600) -> tuple[int, str, float]:
        """Run the pilot for one job to its end, watching its descendants; (exit status, stderr, seconds)."""
        job = job_definition(self.panda_id)
        job.update({"transformation": "/bin/sh", "jobPars": f"-c 'echo up > started; sleep {self.sleep}'",
                    "container_name": str(self.image), "maxWalltime": str(max_walltime)})
        self.server.add_job(job)
        (self.tmp / "pilot.toml").write_text("payload_grace = 2\n")
        monkeypatch.setenv("PATH", f"{self.tmp / 'bin'}{os.pathsep}{os.environ['PATH']}")
        argv = pilot_argv(self.server, self.tmp, "--heartbeat", "600", "--max-jobs", "1",
                          "--config", str(self.tmp / "pilot.toml"))
        stderr = self.tmp / "pilot.stderr"
        began = time.monotonic()
        with stderr.open("wb") as err:  # a file, not a pipe nobody reads while the pilot runs
            proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO,
                                    env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=err)
        self.pid = proc.pid
        try:
            while proc.poll() is None and time.monotonic() - began < 90:
                for pid in descendants(proc.pid):
                    self.seen.setdefault(pid, _cmdline(pid))
                time.sleep(0.05)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, stderr.read_text(errors="replace"), time.monotonic() - began

    def saw(self, text: str) -> bool:
        """A descendant of the pilot ran with ``text`` in its command line."""
        return any(text in cmdline for cmdline in self.seen.values())

    def _still(self) -> list[int]:
        """The pilot's descendants seen while it ran that still run the same command, the processes the markers
        find, and any process of the pilot or the library this test run started."""
        return sorted({*self._own(), *run_members(os.environ[RUN_MARK])})

    def _own(self) -> set[int]:
        """The descendants seen that still run the same command, and the processes the markers find."""
        seen = {pid for pid, cmdline in self.seen.items() if not process_gone(pid) and _cmdline(pid) == cmdline}
        return {*seen, *naming(*self.markers)}

    def left(self) -> list[int]:
        """What is left after a few seconds' wait for it to go."""
        wait_for(lambda: not self._still(), 10)
        return self._still()

    def kill_left(self) -> None:
        for pid in self._own():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runtime_run(tmp_path: Path, panda_server: DevServer, busybox_rootfs: Path,
                request: pytest.FixtureRequest) -> Iterator[RuntimeRun]:
    made = RuntimeRun(tmp_path, panda_server, busybox_rootfs, request.param)
    try:
        yield made
    finally:
        made.kill_left()


def _check(run: RuntimeRun, ledger: Ledger, status: int, err: str, took: float, code: int, bound: float) -> None:
    finals = final_updates(run.server, run.panda_id)
    left = run.left()
    ledger.add(faults_injected=1, jobs_lost=0 if run.server.final_state(run.panda_id) else 1,
               finals_duplicated=max(0, len(finals) - 1), processes_left=len(left))
    assert status == 0, err[-3000:]
    assert [(f["state"], f.get("pilotErrorCode")) for f in finals] == [("failed", code)], finals
    assert run.server.final_state(run.panda_id) == "failed"
    assert took < bound, f"the pilot took {took:.1f} s"
    assert not left, left
    print(f"pilot ended in {took:.1f} s with {code}")


@pytest.mark.reliability("faults", "container runtime", "apptainer fails to start (no answer to --version, FATAL)")
@pytest.mark.parametrize(("runtime_run", "wrapper", "code"), [
    (7101, NO_ANSWER, (ErrorCode.APPTAINERNOTINSTALLED, 1372)),
    (7102, NO_START, (ErrorCode.SINGULARITYGENERALFAILURE, 1306)),
], indirect=["runtime_run"], ids=["version-fails", "exec-fatal"])
def test_a_runtime_that_fails_to_start_fails_the_job_with_its_code(runtime_run: RuntimeRun, ledger: Ledger,
                                                                   monkeypatch: pytest.MonkeyPatch, wrapper: str,
                                                                   code: tuple[ErrorCode, int]) -> None:
    """``apptainer --version`` exits 127 (1372, the pilot's check of the runtime) or ``apptainer exec`` prints a
    FATAL line and exits 255 (1306): the job is failed with that code, reported once, the payload never ran
    (no ``started``), within 30 s; the pilot ends 0 and nothing of the wrapper is left."""
    runtime_run.wrapper(wrapper)
    status, err, took = runtime_run.run(monkeypatch)
    assert int(code[0]) == code[1]
    _check(runtime_run, ledger, status, err, took, code[1], 30)
    assert not runtime_run.saw(f"sleep {runtime_run.sleep}"), "the payload ran"


@pytest.mark.reliability("faults", "container runtime", "apptainer hangs, ignoring SIGTERM")
@pytest.mark.parametrize("runtime_run", [7103], indirect=True)
def test_a_hanging_runtime_is_ended_by_the_wall_time_limit(runtime_run: RuntimeRun, ledger: Ledger,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``apptainer exec`` sleeps forever with SIGTERM ignored; the job's ``maxWalltime`` is 3 s: the wall-time
    monitor ends it (TERM, 2 s grace, KILL of the payload's session) and the job fails with REACHEDMAXTIME (1213,
    pilot3's ``REACHEDMAXTIME = 1213``), reported once, the pilot ending 0 within 30 s with no wrapper left."""
    runtime_run.wrapper(HANG)
    status, err, took = runtime_run.run(monkeypatch, max_walltime=3)
    assert runtime_run.saw(f"{runtime_run.tmp / 'bin' / 'apptainer'} exec "), "the wrapper never hung in exec"
    assert took >= 3, "ended before the wall-time limit"
    _check(runtime_run, ledger, status, err, took, ErrorCode.REACHEDMAXTIME, 30)
    assert int(ErrorCode.REACHEDMAXTIME) == 1213


@pytest.mark.reliability("faults", "container runtime", "apptainer SIGKILLed while the payload runs")
@pytest.mark.parametrize("runtime_run", [7104], indirect=True)
def test_a_killed_runtime_fails_the_job_with_the_kill_signal(runtime_run: RuntimeRun, ledger: Ledger,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``apptainer exec`` starts the real runtime (the stand-in: bubblewrap in the busybox image), waits for the
    payload to run, and SIGKILLs itself: the pilot sees its payload process killed by SIGKILL and fails the job with
    KILLSIGNAL (1200, pilot3's ``KILLSIGNAL = 1200``), reported once, within 30 s; the pilot ends 0, and neither the
    runtime nor the payload's ``sleep`` in the container is left."""
    real = make_standin(runtime_run.tmp / "real", "apptainer", runtime_run.tmp / "argv.jsonl")
    runtime_run.wrapper(KILLED.format(real=real))
    status, err, took = runtime_run.run(monkeypatch)
    assert len(recorded(runtime_run.tmp / "argv.jsonl")) == 1, "the real runtime was not started"
    assert runtime_run.saw(f"sleep {runtime_run.sleep}"), "the payload never ran in the container"
    with tarfile.open(next((runtime_run.tmp / "storage").rglob("log.tgz"))) as log:
        assert "log/started" in log.getnames()
    _check(runtime_run, ledger, status, err, took, ErrorCode.KILLSIGNAL, 30)
    assert int(ErrorCode.KILLSIGNAL) == 1200
