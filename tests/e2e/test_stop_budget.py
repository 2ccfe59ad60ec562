"""SIGTERM ends the pilot within the stop budget in every server-facing stage (real grid-pilot processes).

Each test starts ``python -m apps.grid_pilot`` against the local PanDA server, makes the server misbehave where the
stage talks to it (the devserver's ``hang`` fault: the call is held unanswered), sends SIGTERM, and asserts the exit
status (128 + 15), what the server recorded and the seconds from the signal to the exit. The budget is two minutes
(``docs/pipeline.rst``, "Stopping: the budget"); with these settings every case ends in well under 30 s. Before, a
held call kept the pilot for the 120 s read timeout (and a trickling server for ever), and a 10 MB ``jobPars`` never
finished splitting, SIGTERM or not.

pilot3's codes: SIGTERM fails the job with 1201 (``pilot/common/errorcodes.py:80`` ``SIGTERM``); a job definition
that cannot be used is ``CONVERSIONFAILURE`` 1302 (same file, line 107; pilot3 HEAD a090538b).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode

from .helpers import final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

#: What the tests allow from SIGTERM to the pilot's exit (the documented budget is 120 s).
WITHIN = 30.0


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _start(server: DevServer, tmp_path: Path, *extra: str, heartbeat: float = 600.0) -> subprocess.Popen[bytes]:
    make_inputs(tmp_path / "in")
    config = tmp_path / "pilot.toml"
    config.write_text("final_retry = 5\npayload_grace = 3\n")
    argv = ["-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"),
            "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
            "--heartbeat", str(heartbeat), "--config", str(config), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _until(proc: subprocess.Popen[bytes], condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the pilot ended before {what}: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _sigterm(proc: subprocess.Popen[bytes]) -> tuple[float, str]:
    """Send SIGTERM; return the seconds until the pilot exited (killed after WITHIN + 15 s) and its stderr."""
    proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    try:
        _out, err = proc.communicate(timeout=WITHIN + 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return time.monotonic() - began, err.decode(errors="replace")


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_sigterm_while_getjob_hangs_exits_143_at_once(panda_server: DevServer, tmp_path: Path) -> None:
    """Retrieval: the server holds getJob unanswered; SIGTERM ends the pilot with 143 within seconds (the call is
    woken by the stop), no job was taken."""
    panda_server.inject_fault("getJob", "hang", times=5, seconds=300)
    proc = _start(panda_server, tmp_path)
    try:
        _until(proc, lambda: panda_server.request_count("getJob") >= 1, "getJob")
        elapsed, err = _sigterm(proc)
    finally:
        _stopped(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert elapsed < WITHIN, err[-2000:]
    assert panda_server.request_count("getJob") == 1
    assert not (tmp_path / "work" / "9101").exists()


def test_sigterm_during_payload_with_a_heartbeat_stuck_in_a_call(panda_server: DevServer, tmp_path: Path) -> None:
    """Payload: a long payload runs while a heartbeat is held unanswered by the server; SIGTERM stops the payload,
    the stuck heartbeat does not hold the final update: exit 143 within seconds, the job failed with 1201."""
    panda_server.add_job(job_definition(9102, sleep=300))
    proc = _start(panda_server, tmp_path, heartbeat=0.3)
    try:
        _until(proc, lambda: "running" in [u["state"] for u in panda_server.updates(9102)], "the payload")
        sent = panda_server.request_count("updateJob")
        panda_server.inject_fault("updateJob", "hang", times=1, seconds=300)
        _until(proc, lambda: panda_server.request_count("updateJob") > sent, "a heartbeat to hang")
        elapsed, err = _sigterm(proc)
    finally:
        _stopped(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert elapsed < WITHIN, err[-2000:]
    final = final_update(panda_server.updates(9102))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.SIGTERM == 1201
    assert panda_server.final_state(9102) == "failed"


def _pending_final(root: Path, panda_id: int) -> dict[str, object]:
    """The final update of ``panda_id`` kept on disk for the next pilot (wherever the pilot keeps its state)."""
    pending = [p for p in root.rglob("final_update.json") if p.parent.name == str(panda_id)]
    assert len(pending) == 1, f"no pending final update under {root}: {sorted(map(str, root.rglob('final_*')))}"
    body: dict[str, object] = json.loads(pending[0].read_text())
    return body


def test_sigterm_while_the_final_update_hangs_leaves_it_for_the_next_pilot(panda_server: DevServer,
                                                                          tmp_path: Path) -> None:
    """Final update: the job finished, the server holds its final update unanswered; SIGTERM ends the pilot with
    143 within seconds, the final update (finished) stays on disk, and the next pilot sends it: the server then
    records the job finished."""
    panda_server.add_job(job_definition(9103, sleep=2))
    proc = _start(panda_server, tmp_path)
    try:
        _until(proc, lambda: "running" in [u["state"] for u in panda_server.updates(9103)], "the payload")
        sent = panda_server.request_count("updateJob")
        panda_server.inject_fault("updateJob", "hang", times=20, seconds=300)
        _until(proc, lambda: panda_server.request_count("updateJob") > sent, "the final update to hang")
        elapsed, err = _sigterm(proc)
    finally:
        _stopped(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert elapsed < WITHIN, err[-2000:]
    assert panda_server.final_state(9103) is None
    assert _pending_final(tmp_path / "work", 9103)["state"] == "finished"

    panda_server.faults.clear()  # the server answers again; the next pilot in the same work area sends it
    nxt = _start(panda_server, tmp_path)
    try:
        _out, err = nxt.communicate(timeout=60)
    finally:
        _stopped(nxt)
    assert nxt.returncode == 0, err.decode()[-2000:]
    assert panda_server.final_state(9103) == "finished"


def test_10mb_jobpars_are_refused_at_once(panda_server: DevServer, tmp_path: Path) -> None:
    """Hostile input on the job's path: 10 MB of jobPars (splitting took for ever and SIGTERM could not stop it) are
    refused with CONVERSIONFAILURE 1302 within seconds of the job's start; the pilot reports it and exits 0."""
    definition = job_definition(9104)
    definition["jobPars"] = "--data=" + "x" * (10 * 1024 * 1024)
    panda_server.add_job(definition)
    began = time.monotonic()
    proc = _start(panda_server, tmp_path)
    try:
        _until(proc, lambda: panda_server.final_state(9104) is not None, "the final update", seconds=WITHIN)
        _out, err = proc.communicate(timeout=WITHIN)
    finally:
        _stopped(proc)
    assert time.monotonic() - began < WITHIN
    assert proc.returncode == 0, err.decode()[-2000:]
    final = final_update(panda_server.updates(9104))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.CONVERSIONFAILURE == 1302
    assert "jobPars" in str(final["pilotErrorDiag"]) and "10485767 bytes" in str(final["pilotErrorDiag"])
