"""The event service against a misbehaving server, and a pilot killed between ranges, end to end (issue 16).

A real grid-pilot process runs an event-service job (the reference payload over the real channel) against the local
PanDA server, which fails ``getEventRanges`` or ``updateEventRanges`` twice in a row. The transport retries (three
attempts in the grid pilot, ``DISPATCHER_RETRY`` in ``pilotlib/workflow/modes.py``); every range ends finished and
its status reaches the server once. A repeat of an applied range report (``apply_http500``: applied, then answered
500) is the same report again, which panda-server takes as a no-op (``taskbuffer/db_proxy_mods/task_event_module.py``
lines 343-345 at 9cc36033: a range already in a final status is not updated again).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from fixtures.ledger import Ledger
from fixtures.processes import RUN_MARK, run_members

from panda_devserver import DevServer

from .helpers import es_job, es_ranges, final_update, pilot_argv, run_grid_pilot, spawn_grid_pilot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RANGES = 20
FINAL_RANGE_STATES = ("finished", "failed", "fatal", "cancelled")


def _argv(server: DevServer, tmp_path: Path) -> list[str]:
    server.add_queue("ES_QUEUE", {"nickname": "ES_QUEUE", "state": "ACTIVE", "status": "online", "zip_time_gap": 1})
    return pilot_argv(server, tmp_path, "-q", "ES_QUEUE", "--max-jobs", "1")


def _reports(server: DevServer, panda_id: int) -> Counter[tuple[str, str, str]]:
    """How many times each (range, final status, tar) was reported."""
    return Counter((str(u["eventRangeID"]), str(u["eventStatus"]), str((u.get("zipFile") or {}).get("lfn")))
                   for u in server.event_range_updates(panda_id) if u.get("eventStatus") in FINAL_RANGE_STATES)


@pytest.mark.reliability("faults", "event service", "getEventRanges fails twice (5xx, dropped, garbage, hung)")
@pytest.mark.parametrize(("kind", "seconds"), [("http503", 0.0), ("drop", 0.0), ("garbage_json", 0.0), ("hang", 1.0)])
def test_ranges_are_fetched_despite_a_failing_get_event_ranges(panda_server: DevServer, tmp_path: Path,
                                                              ledger: Ledger, kind: str, seconds: float) -> None:
    """The first ``getEventRanges`` fails twice: the third attempt gets the ranges; all finish, each reported once."""
    panda_server.add_job(es_job(9901, "--sleep", "0.01"))
    panda_server.add_event_ranges(9901, es_ranges(RANGES))
    panda_server.inject_fault("getEventRanges", kind, times=2, seconds=seconds)
    status, _pid, err = run_grid_pilot(_argv(panda_server, tmp_path))
    reports = _reports(panda_server, 9901)
    ledger.add(faults_injected=2, jobs_lost=0 if panda_server.final_state(9901) else 1,
               finals_duplicated=sum(n - 1 for n in reports.values()))
    assert status == 0, err[-2000:]
    assert final_update(panda_server.updates(9901))["state"] == "finished"
    statuses = panda_server.event_range_statuses(9901)
    assert len(statuses) == RANGES and set(statuses.values()) == {"finished"}
    assert sorted({r for r, _s, _z in reports}) == sorted(statuses) and set(reports.values()) == {1}


@pytest.mark.reliability("faults", "event service", "updateEventRanges fails twice (5xx, drop, garbage, applied+500)")
@pytest.mark.parametrize("kind", ["http500", "drop", "garbage_json", "apply_http500"])
def test_range_statuses_arrive_once_despite_a_failing_update_event_ranges(panda_server: DevServer, tmp_path: Path,
                                                                         ledger: Ledger, kind: str) -> None:
    """The first ``updateEventRanges`` fails twice: it is sent again; every range ends finished with one outcome and
    one tar; only a report the server applied before failing (``apply_http500``) reaches it again, unchanged."""
    panda_server.add_job(es_job(9902, "--sleep", "0.01"))
    panda_server.add_event_ranges(9902, es_ranges(RANGES))
    panda_server.inject_fault("updateEventRanges", kind, times=2)
    status, _pid, err = run_grid_pilot(_argv(panda_server, tmp_path))
    reports = _reports(panda_server, 9902)
    per_range = Counter(r for r, _s, _z in reports)
    ledger.add(faults_injected=2, jobs_lost=0 if panda_server.final_state(9902) else 1,
               finals_duplicated=0 if kind == "apply_http500" else sum(n - 1 for n in reports.values()))
    assert status == 0, err[-2000:]
    assert final_update(panda_server.updates(9902))["state"] == "finished"
    statuses = panda_server.event_range_statuses(9902)
    assert len(statuses) == RANGES and set(statuses.values()) == {"finished"}
    assert set(per_range.values()) == {1}, per_range  # one outcome and one tar per range
    assert sorted(per_range) == sorted(statuses)
    if kind != "apply_http500":
        assert set(reports.values()) == {1}, reports
    else:
        assert max(reports.values()) <= 3, reports  # the same report again, never another outcome


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL of an event-service job between ranges, then a new pilot")
def test_sigkill_between_ranges_then_a_new_pilot(panda_server: DevServer, tmp_path: Path, ledger: Ledger) -> None:
    """A pilot SIGKILLed once some ranges are reported: its payload is ended by the lifeline; the next pilot in the
    same place reports the job failed once (KILLSIGNAL) and no range again; each range reported keeps its one
    outcome; nothing of the old job is left running."""
    panda_server.add_job(es_job(9903, "--sleep", "0.1"))
    panda_server.add_event_ranges(9903, es_ranges(100))
    argv = _argv(panda_server, tmp_path)
    first = spawn_grid_pilot(argv)
    try:
        deadline = time.monotonic() + 90
        while len(_reports(panda_server, 9903)) < 10:
            assert time.monotonic() < deadline and first.poll() is None, "no ranges reported"
            time.sleep(0.05)
        before = dict(_reports(panda_server, 9903))
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    deadline = time.monotonic() + 20
    left = run_members(os.environ[RUN_MARK])
    while any(_is_job(pid, 9903) for pid in left) and time.monotonic() < deadline:
        time.sleep(0.1)
        left = run_members(os.environ[RUN_MARK])
    old = [cmd for pid, cmd in left.items() if _is_job(pid, 9903)]
    status, _pid, err = run_grid_pilot(argv)
    reports = _reports(panda_server, 9903)
    finals = [u for u in panda_server.updates(9903) if u.get("state") in ("finished", "failed", "holding")]
    ledger.add(faults_injected=1, jobs_lost=0 if panda_server.final_state(9903) else 1,
               finals_duplicated=max(0, len(finals) - 1) + sum(n - 1 for n in reports.values()),
               processes_left=len(old))
    assert old == []
    assert status == 0, err[-2000:]
    assert [f["state"] for f in finals] == ["failed"] and panda_server.final_state(9903) == "failed"
    assert int(str(finals[0]["pilotErrorCode"])) == 1200
    assert all(reports[key] == 1 for key in before), reports
    assert set(reports.values()) == {1}
    assert len({r for r, _s, _z in reports}) == len(reports)


def _is_job(pid: int, panda_id: int) -> bool:
    """Whether process ``pid`` works in job ``panda_id``'s directory."""
    try:
        return os.readlink(f"/proc/{pid}/cwd").endswith(f"/{panda_id}")
    except OSError:
        return False
