"""Load: 50 real ``grid-pilot`` processes at once against one local PanDA server of their own, each taking 10 short
jobs, beside 10 pilots each taking an event-service job of 100 ranges (the scenario is
``tests/fixtures/load_scenario.py``, shared with ``benchmarks/load.py``).

What the server holds afterwards is the proof: every job's final state applied exactly once (a repeat the server
acknowledged without applying it, ``ignored_updates``, as panda-server's ``JobDispatcher.updateJob`` answers a job
already done, is not a duplicate), every job taken by exactly one pilot, every range's final status applied exactly
once; and no error on either side: every pilot exits 0, no ERROR record or traceback in any pilot's output, no
exception caught by the server's HTTP layer (``DevHTTPServer.handle_error``), no pilot or library process left.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from fixtures.ledger import Ledger
from fixtures.load_scenario import LoadResult, Pilot, check, prepare, run_load

from panda_devserver import DevServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PILOTS, JOBS_PER_PILOT, ES_JOBS, RANGES = 50, 10, 10, 100


@pytest.mark.reliability("load", "50 pilots",
                         "50 pilots x 10 short jobs + 10 event-service jobs x 100 ranges against one server")
@pytest.mark.timeout(600)
def test_fifty_pilots_at_once_record_every_final_state_and_range_once(tmp_path: Path, ledger: Ledger) -> None:
    """500 short jobs and 10 event-service jobs of 100 ranges through 60 pilots started at once: no job lost or
    reported final twice, none taken twice, all finished; every range finished and reported final once; every
    pilot exits 0 with no error in its output; the server caught no exception; no process of the run is left."""
    with DevServer(tmp_path / "server") as server:
        result = run_load(server, tmp_path, pilots=PILOTS, jobs_per_pilot=JOBS_PER_PILOT, es_jobs=ES_JOBS,
                          ranges=RANGES)
        records = check(server, result)
    ledger.add(jobs_lost=len(records.jobs_lost) + len(records.ranges_lost),
               finals_duplicated=len(records.finals_duplicated) + len(records.ranges_duplicated),
               processes_left=len(result.left))
    assert len(result.short_ids) == PILOTS * JOBS_PER_PILOT and len(result.es_ids) == ES_JOBS
    assert records.jobs_lost == [] and records.finals_duplicated == []
    assert records.taken_twice == []
    assert records.not_finished == {}
    assert records.ranges_lost == [] and records.ranges_duplicated == [] and records.ranges_not_finished == {}
    assert records.range_updates >= ES_JOBS * RANGES
    assert records.pilots_failed == {}, [p.output[-2000:] for p in result.pilots if p.status][:3]
    assert records.error_lines == []
    assert records.server_errors == []
    assert result.left == {}


def test_the_check_counts_a_lost_job_a_refused_repeat_and_a_missing_range(tmp_path: Path) -> None:
    """The scenario's check is not blind: a job never reported is lost; a final update repeated is a repeat the
    server refused (``ignored_updates``), not a duplicate; a range never reported is lost; a job no pilot logged
    taking counts as not taken once; an ERROR record in a pilot's output is an error line."""
    with DevServer(tmp_path / "server") as server:
        short_ids, es_ids = prepare(server, tmp_path, pilots=1, jobs_per_pilot=2, es_jobs=1, ranges=2)
        url = f"{server.url}/api/v1/pilot/update_job"
        for _ in range(2):  # the same final update twice: applied once, the repeat refused
            requests.post(url, json={"job_id": short_ids[0], "job_status": "finished"}, timeout=10).raise_for_status()
        output = f"x INFO job taken panda_id={short_ids[0]} number=1\nx ERROR   boom\n"
        result = LoadResult(short_ids, es_ids, 2, [Pilot(0, 0, output)], 0.1, {})
        records = check(server, result)
    assert records.jobs_lost == [short_ids[1], es_ids[0]]
    assert records.finals_duplicated == [] and records.repeats_refused == 1
    assert records.ranges_lost == [f"1-{es_ids[0]}-1-1-1", f"1-{es_ids[0]}-1-2-1"]
    assert records.taken_twice == [short_ids[1], es_ids[0]]
    assert records.error_lines == ["pilot 0: x ERROR   boom"] and records.pilots_failed == {}
