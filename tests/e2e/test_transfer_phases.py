"""End to end: what happens while files move (heartbeats, the server's kill, a signal) and the work directory after.

Real parts: the devserver over HTTP, the pipeline, the ``lsm`` copytool running site commands ``lsm-get``/``lsm-put``
that are shell scripts placed on PATH by the test: ``lsm-get`` records each call, then waits until the test creates
a release file before copying (a slow transfer, deterministic).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.grid_pilot.cli import parse_settings
from apps.grid_pilot.compose import run_grid_pilot
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.stop import Stop
from pilotlib.transfer.paths import deterministic_path
from pilotlib.workflow import Outcome

from .helpers import SLOW_LSM_GET, adler32, final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

LSM_PUT = """#!/bin/sh
exit 1
"""


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs; no storages: the places)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _site_commands(tmp_path: Path) -> Path:
    """``bin/lsm-get`` (slow, see the module) and ``bin/lsm-put``; returns the bin directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lsm-get").write_text(SLOW_LSM_GET.format(calls=tmp_path / "calls.txt", release=tmp_path / "release",
                                                    pids=tmp_path / "pids.txt"))
    (bin_dir / "lsm-put").write_text(LSM_PUT)
    for name in ("lsm-get", "lsm-put"):
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _many_inputs(panda_id: int, inputs: Path, count: int) -> dict[str, str]:
    """The helpers' job plus ``count`` more small inputs ``extra<i>.dat``."""
    job = job_definition(panda_id, sleep=0.2)
    for i in range(count):
        data = f"extra {i}\n".encode()
        (inputs / f"extra{i}.dat").write_bytes(data)
        for key, value in (("inFiles", f"extra{i}.dat"), ("scopeIn", "e2e"), ("GUID", f"gx{i}"),
                           ("fsize", str(len(data))), ("checksum", f"ad:{adler32(data)}"),
                           ("ddmEndPointIn", "LOCAL")):
            job[key] += "," + value
    return job


def _argv(server: DevServer, tmp_path: Path, *extra: str) -> list[str]:
    make_inputs(tmp_path / "in")
    return ["-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"), "--input-dir",
            str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool-in", "lsm",
            "--copytool-out", "cp", "--heartbeat", "0.2", "--log-level", "INFO", *extra]


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_tobekilled_during_a_slow_stage_in_fails_the_job_with_pandakill(
    panda_server: DevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Heartbeats go on during a long stage-in (state ``starting``); a tobekilled answer to one ends the copies under
    way (the site's ``lsm-get``, which would wait a minute, is killed within seconds; nothing releases it) and
    fails the job with PANDAKILL 1144 before its payload; the log is staged out and the final state reported."""
    monkeypatch.setenv("PATH", f"{_site_commands(tmp_path)}:{os.environ['PATH']}")
    panda_server.add_job(job_definition(8101))
    settings = parse_settings(_argv(panda_server, tmp_path))
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(run_grid_pilot(settings, Stop())))
    thread.start()
    pids = tmp_path / "pids.txt"
    try:
        _until(lambda: pids.exists() and len(pids.read_text().split()) == 2, "both copies to start")
        copy_pids = [int(x) for x in pids.read_text().split()]
        _until(lambda: [u["state"] for u in panda_server.updates(8101)].count("starting") >= 2,
               "a heartbeat during stage-in")
        panda_server.set_command(8101, "tobekilled")
        count = len(panda_server.updates(8101))
        _until(lambda: len(panda_server.updates(8101)) >= count + 1, "a heartbeat answered with tobekilled")
        killed_by = time.monotonic() + 10
        _until(lambda: not any(_alive(pid) for pid in copy_pids), "the copies to be ended by the kill", timeout=10)
        assert time.monotonic() < killed_by
        thread.join(60)
    finally:
        (tmp_path / "release").touch()
        thread.join(120)
    assert not thread.is_alive()
    assert len(_calls(tmp_path)) == 2  # in.dat and payload.sh, each once: no retry was started
    updates = panda_server.updates(8101)
    final = final_update(updates)
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.PANDAKILL
    assert "running" not in [u["state"] for u in updates]
    assert all("cpuConsumptionTime" not in u for u in updates if u["state"] == "starting")
    assert not (tmp_path / "work" / "8101" / "payload.stdout").exists()
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
    for lfn in ("in.dat", "payload.sh"):  # each copy ended with the kill's code
        assert f"stage-in failed lfn={lfn} tool=lsm code=1144" in caplog.text


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM during a slow stage-in: no new copy, within budget")
def test_sigterm_during_a_slow_stage_in_starts_no_new_copy_and_ends_within_the_budget(
    panda_server: DevServer, tmp_path: Path
) -> None:
    """SIGTERM to the pilot process while two slow copies of eight inputs run: no further copy starts, the pilot
    exits with 143 well within two minutes, the final update says SIGTERM (1201) and the log is staged out."""
    bin_dir = _site_commands(tmp_path)
    argv = _argv(panda_server, tmp_path)
    panda_server.add_job(_many_inputs(8102, tmp_path / "in", 6))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _until(lambda: len(_calls(tmp_path)) >= 2 or proc.poll() is not None, "two copies under way")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        pilot_log = tmp_path / "work" / "pilot-state" / "pilotlog.txt"
        _until(lambda: b"pilot stopping code=1201" in pilot_log.read_bytes(), "the stop logged")
        (tmp_path / "release").touch()  # the copies under way end now
        out, err = proc.communicate(timeout=120)
        shutdown = time.monotonic() - signalled
    finally:
        (tmp_path / "release").touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()[-2000:]
    assert len(_calls(tmp_path)) == 2, _calls(tmp_path)  # six inputs were never started
    assert shutdown < 120
    final = final_update(panda_server.updates(8102))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.SIGTERM
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
    assert b"job 8102: failed pilotErrorCode=1201" in out
