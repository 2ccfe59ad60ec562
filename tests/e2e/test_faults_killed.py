"""A grid pilot killed at a stage of its job, end to end: real grid-pilot processes against the local PanDA server.

SIGTERM: the pilot ends within its budget with 128+15 and reports the job failed with SIGTERM (1201, pilot3's
``pilot/common/errorcodes.py`` SIGTERM) once; the final update of a job that had ended, held unanswered by the
server, is kept in the journal and delivered unchanged by the next pilot in the same place, once. SIGKILL: the next
pilot reports the job once. Stage-in and stage-out under SIGTERM are proven by test_stop_in_flight.py and
test_transfer_phases.py; SIGKILL mid-payload by test_pilot_lost.py and test_pilot_killed.py (the lifeline).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.ledger import Ledger
from fixtures.processes import left_in

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode

from .helpers import final_updates, job_definition, pilot_argv, run_grid_pilot, spawn_grid_pilot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]
BUDGET = 40.0  # seconds from SIGTERM to the pilot's end (its stopping calls are bounded at 10 s each)


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _states(server: DevServer, panda_id: int) -> list[object]:
    return [u["state"] for u in server.updates(panda_id)]


def _until(condition: Callable[[], bool], what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert alive(), f"the pilot ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM at retrieval, payload and final update")
@pytest.mark.parametrize("stage", ["retrieval", "payload", "final update"])
def test_sigterm_at_a_stage_reports_the_job_once(panda_server: DevServer, tmp_path: Path, ledger: Ledger,
                                                 stage: str) -> None:
    """SIGTERM while getJob hangs (no job taken: nothing reported, the job stays the server's), while the payload
    runs (failed 1201 once) or while the final update of the finished job hangs unapplied (the next pilot in the
    same place delivers it as it was: finished, once). The pilot ends within BUDGET with 128+15."""
    panda_server.add_job(job_definition(8701, sleep=60 if stage != "final update" else 0.5))
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1")
    if stage == "retrieval":
        panda_server.inject_fault("getJob", "hang", times=1, seconds=60)
    proc = spawn_grid_pilot(argv)
    try:
        if stage == "retrieval":
            _until(lambda: panda_server.request_count("getJob") >= 1, "getJob", lambda: proc.poll() is None)
            time.sleep(0.5)
        elif stage == "payload":
            _until(lambda: "running" in _states(panda_server, 8701), "running", lambda: proc.poll() is None)
        else:
            _until(lambda: "running" in _states(panda_server, 8701), "running", lambda: proc.poll() is None)
            sent = panda_server.request_count("updateJob")
            panda_server.inject_fault("updateJob", "hang", times=3, seconds=60)
            _until(lambda: panda_server.request_count("updateJob") > sent, "the final update sent",
                   lambda: proc.poll() is None)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        _out, err = proc.communicate(timeout=90)
        shutdown = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if stage == "final update":
        panda_server.faults.clear()  # the server comes back; the next pilot in the same place delivers the final
        status, _pid, err2 = run_grid_pilot(argv)
        assert status == 0, err2[-2000:]
    finals = final_updates(panda_server, 8701)
    expected_finals = 0 if stage == "retrieval" else 1
    left = left_in(tmp_path)
    ledger.add(faults_injected=1, jobs_lost=max(0, expected_finals - len(finals)),
               finals_duplicated=max(0, len(finals) - 1), processes_left=len(left))
    assert left == []
    assert proc.returncode == 128 + signal.SIGTERM, err.decode(errors="replace")[-2000:]
    assert shutdown < BUDGET, f"the pilot took {shutdown:.1f} s to stop"
    assert len(finals) == expected_finals, finals
    if stage == "payload":
        assert finals[0]["state"] == "failed" and int(str(finals[0]["pilotErrorCode"])) == ErrorCode.SIGTERM
        assert panda_server.final_state(8701) == "failed"
    elif stage == "final update":  # the job had ended: its final update is kept as it was, not turned into a kill
        assert finals[0]["state"] == "finished" and panda_server.final_state(8701) == "finished"
        assert panda_server.ignored_updates(8701) == []
        assert not list((tmp_path / "work" / "pilot-state").glob("8701/final_update.json.sending-*"))


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL at retrieval and final update, then a new pilot")
@pytest.mark.parametrize("stage", ["retrieval", "final update"])
def test_sigkill_at_a_stage_then_a_new_pilot_reports_once(panda_server: DevServer, tmp_path: Path, ledger: Ledger,
                                                          stage: str) -> None:
    """SIGKILL while getJob hangs (no job taken) or while the final update of the finished job hangs unapplied; the
    server then comes back and a new pilot in the same place runs: the job ends finished on the server exactly once
    (taken and run by the new pilot, or its kept final update delivered), nothing ignored as a repeat."""
    panda_server.add_job(job_definition(8702, sleep=0.5))
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1")
    if stage == "retrieval":
        panda_server.inject_fault("getJob", "hang", times=1, seconds=60)
    proc = spawn_grid_pilot(argv)
    try:
        if stage == "retrieval":
            _until(lambda: panda_server.request_count("getJob") >= 1, "getJob", lambda: proc.poll() is None)
        else:
            _until(lambda: "running" in _states(panda_server, 8702), "running", lambda: proc.poll() is None)
            sent = panda_server.request_count("updateJob")
            panda_server.inject_fault("updateJob", "hang", times=1, seconds=60)
            _until(lambda: panda_server.request_count("updateJob") > sent, "the final update sent",
                   lambda: proc.poll() is None)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    panda_server.faults.clear()
    status, _pid, err = run_grid_pilot(argv)
    finals = final_updates(panda_server, 8702)
    left = left_in(tmp_path)
    ledger.add(faults_injected=1, jobs_lost=max(0, 1 - len(finals)), finals_duplicated=max(0, len(finals) - 1),
               processes_left=len(left))
    assert left == []
    assert status == 0, err[-2000:]
    assert [f["state"] for f in finals] == ["finished"] and panda_server.final_state(8702) == "finished"
    assert panda_server.ignored_updates(8702) == []
