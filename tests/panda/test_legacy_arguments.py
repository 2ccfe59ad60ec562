"""The legacy dialect's requests against the legacy dispatcher's argument lists (panda-server 0.7.2)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from panda_devserver._signatures import LEGACY_ARGUMENTS
from pilotlib.job import parse_job
from pilotlib.panda._legacy import LegacyDialect
from pilotlib.panda.base import EventRangeUpdate, JobRequest, JobUpdate


class _Capture:
    """A transport that records each legacy call's fields and answers StatusCode=0."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, call: str, path: str, *, method: str = "POST", json_body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             compress: bool = False, max_attempts: int | None = None, check: object = None) -> str:
        self.sent.append((path.rsplit("/", 1)[-1], dict(json_body or query or {})))
        return json.dumps({"StatusCode": 0})


def test_legacy_requests_name_only_arguments_the_legacy_dispatcher_takes() -> None:
    """Every legacy call our client makes sends only argument names that panda-server 0.7.2's
    ``pandaserver/jobdispatcher/JobDispatcher.py`` functions accept (``getJob`` line 843, ``updateJob`` 969,
    ``getEventRanges`` 1266, ``updateEventRanges`` 1365, ``getKeyPair`` 1416, ``getProxy`` 1432,
    ``updateWorkerPilotStatus`` 1576; an unknown keyword is a TypeError there), and all the required ones."""
    dialect, capture = LegacyDialect(), _Capture()
    job = parse_job({"PandaID": "4001", "jobsetID": "77", "taskID": "4242"})
    calls = [
        lambda: dialect.get_jobs(capture, JobRequest(site_name="S", queue="Q", node="wn", mem_mb=2000, disk_mb=5000,
                                                     resource_type="SCORE", job_type="managed", harvester_id="h",
                                                     worker_id="1", task_id=4242, n_jobs=2)),
        lambda: dialect.update_job(capture, JobUpdate(4001, "finished", {
            "xml": "{}", "startTime": 1.0, "endTime": 2.0, "coreCount": 8, "maxRSS": 1, "pilotTiming": "1|2",
            "jobMetrics": "a=1", "attemptNr": 1, "siteName": "S", "node": "wn", "batchID": "b"}, final=True)),
        lambda: dialect.get_event_ranges(capture, job, 4),
        lambda: dialect.update_event_ranges(capture, [EventRangeUpdate("4001-1-1-1-1", "finished", 4001)]),
        lambda: dialect.get_key_pair(capture, "pub", "priv"),
        lambda: dialect.get_proxy(capture, "production"),
        lambda: dialect.update_worker_status(capture, site="S", worker_id="1", harvester_id="h", status="started",
                                             node_id="wn"),
    ]
    for call in calls:
        with contextlib.suppress(Exception):  # a bare StatusCode=0 may not suit the call; the request matters
            call()
    assert [method for method, _ in capture.sent] == [
        "getJob", "updateJob", "getEventRanges", "updateEventRanges", "getKeyPair", "getProxy",
        "updateWorkerPilotStatus"]
    for method, fields in capture.sent:
        required, accepted = LEGACY_ARGUMENTS[method]
        assert set(fields) <= accepted, (method, sorted(set(fields) - accepted))
        assert required <= set(fields), (method, sorted(required - set(fields)))
