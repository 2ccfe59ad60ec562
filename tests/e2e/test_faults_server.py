"""A PanDA server that misbehaves, end to end: a real grid-pilot process against the local PanDA server (issue 16).

The server refuses, fails (5xx), hangs, answers garbage or truncated bodies on ``getJob`` and on the final
``updateJob``, or applies the final update and answers 500; the pilot retries within its budget (four attempts, see
``pilotlib/panda/_transport.py``), ends 0, and the server's record holds the job's final state exactly once: a
repeat of an applied final update is answered ``alreadydone`` and not applied, as panda-server 1.0.4 answers it
(``api/v1/pilot_api.py:649-662``). Heartbeats are off (600 s) so that the update after ``running`` is the final one.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from panda_devserver import DevServer

from .helpers import final_updates, job_definition, pilot_argv, run_grid_pilot, spawn_grid_pilot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# every kind that leaves the call unapplied or applied-and-failed; hang and delay are held a little, not an hour
KINDS = [("http500", 0.0), ("http503", 0.0), ("drop", 0.0), ("garbage", 0.0), ("garbage_html", 0.0),
         ("garbage_json", 0.0), ("hang", 1.0), ("delay", 1.0), ("trickle", 0.01)]
SLOW = ("delay", "trickle")  # slow but whole answers: one request each
# a 200 answer that does not decode (garbage, an HTML page, broken JSON) is retried like a 5xx, as pilot3 asks again
# after a getJob whose answer it could not read (pilot3 pilot/control/job.py retrieve, line 2315: no usable answer
# counts one of getjob_failures, and the loop asks again)
GET_JOB_KINDS = KINDS


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


@pytest.mark.reliability("faults", "server", "getJob fails twice (5xx, dropped, hung, garbage, trickled)")
@pytest.mark.parametrize(("kind", "seconds"), GET_JOB_KINDS)
def test_job_is_fetched_and_finished_despite_a_failing_get_job(panda_server: DevServer, tmp_path: Path, ledger: Ledger,
                                                               kind: str, seconds: float) -> None:
    """getJob fails twice with ``kind`` (or is slow twice: delay, trickle): the pilot's third attempt (its first)
    gets the job, which ends finished, reported
    once; the pilot ends 0 within a bounded time."""
    panda_server.add_job(job_definition(8601, sleep=0.2))
    panda_server.inject_fault("getJob", kind, times=2, seconds=seconds)
    began = time.monotonic()
    status, _pid, err = run_grid_pilot(pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1"))
    took = time.monotonic() - began
    finals = final_updates(panda_server, 8601)
    ledger.add(faults_injected=2, jobs_lost=0 if panda_server.final_state(8601) else 1,
               finals_duplicated=max(0, len(finals) - 1))
    assert status == 0, err[-2000:]
    assert [f["state"] for f in finals] == ["finished"] and panda_server.final_state(8601) == "finished"
    assert panda_server.request_count("getJob") == (1 if kind in SLOW else 3)
    assert took < 90


@pytest.mark.reliability("faults", "server", "final updateJob fails twice (5xx, dropped, hung, garbage, applied+500)")
@pytest.mark.parametrize(("kind", "seconds"), [*KINDS, ("apply_http500", 0.0)])
def test_final_update_is_applied_once_despite_a_failing_server(panda_server: DevServer, tmp_path: Path, ledger: Ledger,
                                                               kind: str, seconds: float) -> None:
    """The final updateJob fails twice with ``kind``: the pilot sends it again within its budget, the server holds
    ``finished`` once (a repeat of an applied update is ignored, answered ``alreadydone``), the pilot ends 0 with
    nothing left in its journal of unacknowledged finals."""
    panda_server.add_job(job_definition(8602, sleep=1.0))
    proc = spawn_grid_pilot(pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1"))
    began = time.monotonic()
    try:
        while "running" not in [u["state"] for u in panda_server.updates(8602)]:
            assert time.monotonic() - began < 60 and proc.poll() is None, "payload never reported running"
            time.sleep(0.02)
        panda_server.inject_fault("updateJob", kind, times=2, seconds=seconds)
        _out, err_bytes = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    took = time.monotonic() - began
    err = err_bytes.decode(errors="replace")
    finals = final_updates(panda_server, 8602)
    ledger.add(faults_injected=2, jobs_lost=0 if panda_server.final_state(8602) else 1,
               finals_duplicated=max(0, len(finals) - 1))
    assert proc.returncode == 0, err[-2000:]
    assert [f["state"] for f in finals] == ["finished"] and panda_server.final_state(8602) == "finished"
    repeats = panda_server.ignored_updates(8602)
    if kind == "apply_http500":  # applied, the answer lost: the repeat is ignored
        assert repeats and all(r["answer"] == "alreadydone" for r in repeats), repeats
    assert not list((tmp_path / "work" / "pilot-state").glob("8602/final_update.json.sending-*"))
    assert took < 90


def _wait_running(server: DevServer, panda_id: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while "running" not in [u["state"] for u in server.updates(panda_id)]:
        assert time.monotonic() < deadline and proc.poll() is None, "payload never reported running"
        time.sleep(0.02)


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> str:
    try:
        _out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err.decode(errors="replace")


def _short_final_budget(tmp_path: Path) -> str:
    config = tmp_path / "pilot.toml"
    config.write_text("final_retry = 2\n")  # seconds to keep trying the final update
    return str(config)


@pytest.mark.reliability("faults", "server", "goes away before the final update, comes back: the next pilot reports")
def test_server_away_at_the_final_update_and_back_later(tmp_path: Path, ledger: Ledger) -> None:
    """The server stops between the job's last heartbeat and its final update (connections refused): the pilot keeps
    the final update on disk and exits 1 (its own job's final not acknowledged: ``pilotlib/workflow/pilot.py``
    ``exit_code``); the server comes back on the same port with the
    same records, and the next pilot in the same place sends the kept update first: ``finished`` once, nothing kept."""
    server = DevServer(tmp_path / "server").start()
    port = int(server.url.rsplit(":", 1)[1])
    server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})
    server.add_job(job_definition(8611, sleep=1.5))
    argv = pilot_argv(server, tmp_path, "--heartbeat", "600", "--max-jobs", "1", "--config",
                      _short_final_budget(tmp_path))
    try:
        proc = spawn_grid_pilot(argv)
        _wait_running(server, 8611, proc)
        server.stop()
        err = _finish(proc, 90)
        assert proc.returncode == 1, err[-2000:]
        assert "final update left for recovery panda_id=8611" in err
        kept = list((tmp_path / "work" / "pilot-state").glob("8611/final_update.json*"))
        assert [p.name for p in kept] == ["final_update.json"], kept
        server = DevServer(tmp_path / "server", port=port).start()
        assert server.final_state(8611) is None
        status, _pid, err = run_grid_pilot(argv)
        finals = final_updates(server, 8611)
        ledger.add(faults_injected=1, jobs_lost=0 if server.final_state(8611) else 1,
                   finals_duplicated=max(0, len(finals) - 1))
        assert status == 0, err[-2000:]
        assert [f["state"] for f in finals] == ["finished"] and server.final_state(8611) == "finished"
        assert server.ignored_updates(8611) == []
        kept = list((tmp_path / "work" / "pilot-state").glob("8611/final_update.json*"))
        assert [p.name for p in kept] == ["final_update.json.sent"], kept
    finally:
        server.stop()


@pytest.mark.reliability("faults", "server", "answers the final update only after the pilot gave up")
def test_final_update_applied_after_the_pilot_gave_up(panda_server: DevServer, tmp_path: Path, ledger: Ledger) -> None:
    """The server holds the final update past the pilot's bound for the call (30 s, ``DISPATCHER_RETRY`` in
    ``pilotlib/workflow/modes.py``) and applies it only then: the pilot has given up, kept it on disk and exited 1;
    the next pilot sends it again at its start. Whichever arrives second is a repeat, answered ``alreadydone`` and
    not applied (panda-server 1.0.4 ``api/v1/pilot_api.py:649-662``): the server holds ``finished`` once."""
    panda_server.add_job(job_definition(8612, sleep=1.0))
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1", "--config",
                      _short_final_budget(tmp_path))
    proc = spawn_grid_pilot(argv)
    _wait_running(panda_server, 8612, proc)
    panda_server.inject_fault("updateJob", "delay", times=1, seconds=36)
    err = _finish(proc, 90)
    assert proc.returncode == 1, err[-2000:]
    assert panda_server.final_state(8612) is None  # still held
    status, _pid, err = run_grid_pilot(argv)
    assert status == 0, err[-2000:]
    deadline = time.monotonic() + 30
    while len(panda_server.ignored_updates(8612)) < 1:  # the held one, applied late, is the repeat
        assert time.monotonic() < deadline, "the held final update never arrived"
        time.sleep(0.1)
    finals = final_updates(panda_server, 8612)
    ledger.add(faults_injected=1, jobs_lost=0 if panda_server.final_state(8612) else 1,
               finals_duplicated=max(0, len(finals) - 1))
    assert [f["state"] for f in finals] == ["finished"] and panda_server.final_state(8612) == "finished"
    (repeat,) = panda_server.ignored_updates(8612)
    assert repeat["answer"] == "alreadydone" and repeat["fields"]["state"] == "finished"
