"""Event ranges whose outputs were zipped into one stored file, reported by the dispatcher client to the local PanDA
server over real HTTP in both dialects (``updateEventRanges`` version 1 with a ``zipFile`` group).

Peers: pilot3 a090538b ``pilot/eventservice/workexecutor/plugins/genericexecutor.py:93-118`` (the group it sends for
a zipped output) and ``pilot/eventservice/communicationmanager/plugins/pandacommunicator.py:252`` (posted to the
legacy ``updateEventRanges``); panda-server 9cc36033 ``pandaserver/taskbuffer/db_proxy_mods/task_event_module.py``
(same lines at 0.8.1) and ``pandaserver/api/v1/event_api.py:266``.
"""

from __future__ import annotations

import random

import pytest
from fixtures.ledger import Ledger

from panda_devserver import DevServer
from pilotlib.panda.base import EventRangeUpdate, JobRequest, JobUpdate, ZipRecord
from pilotlib.panda.client import CallRetry, PandaClient, Timeouts

pytestmark = pytest.mark.integration

DIALECTS = ["legacy", "v1"]
JOB = {"PandaID": 4242, "jobsetID": 11, "taskID": 77, "prodSourceLabel": "managed", "transformation": "run.sh",
       "jobPars": "--events 4", "outFiles": "log.1.tgz", "logFile": "log.1.tgz", "logGUID": "L-G",
       "eventService": "True"}
REQUEST = JobRequest(site_name="TEST_Q", queue="TEST_Q", node="wn01")
ZIP = ZipRecord(lfn="EVNT.4242._000001.zip", fsize=123456, adler32="0a1b2c3d", objstore_id=1234, num_events=3)
#: ``ZIP`` by panda-server's names, as each range of the group is to be recorded with it.
ZIP_WIRE = {"lfn": "EVNT.4242._000001.zip", "fsize": 123456, "adler32": "0a1b2c3d", "objstoreID": 1234,
            "numEvents": 3, "pathConvention": 1000}
RANGE_IDS = [f"77-4242-1-{n}-1" for n in (1, 2, 3, 4)]


@pytest.fixture
def served(request: pytest.FixtureRequest, dialect: str) -> DevServer:
    """The local server for the test's dialect (a server before 1.0 for legacy, what 1.x serves for v1), holding
    JOB and its four event ranges."""
    server: DevServer = request.getfixturevalue("panda_legacy" if dialect == "legacy" else "panda_server")
    server.add_job(JOB)
    server.add_event_ranges(4242, [{"eventRangeID": range_id, "startEvent": n, "lastEvent": n, "LFN": "EVNT.1.root",
                                    "GUID": "A-B", "scope": "mc23"} for n, range_id in enumerate(RANGE_IDS, 1)])
    return server


def _client(server: DevServer, dialect: str, attempts: int = 3) -> PandaClient:
    return PandaClient(server.url, dialect,  # type: ignore[arg-type]
                       timeouts=Timeouts(connect=5, read=5), rng=random.Random(1), sleep=lambda _s: None,
                       retry=CallRetry(attempts=attempts, total_seconds=30, backoff=0.01, max_backoff=0.02))


def _finished(*range_ids: str) -> list[EventRangeUpdate]:
    return [EventRangeUpdate(range_id, "finished", 4242) for range_id in range_ids]


def _dispatched(served: DevServer, dialect: str, attempts: int = 3) -> PandaClient:
    """A client holding JOB and its four ranges, handed out by the server (job ``sent``, ranges ``sent``)."""
    client = _client(served, dialect, attempts)
    (job,) = client.get_jobs(REQUEST)
    assert [item.event_range_id for item in client.get_event_ranges(job, 4)] == RANGE_IDS
    return client


@pytest.mark.parametrize("dialect", DIALECTS)
def test_zipped_ranges_are_recorded_each_with_the_zip_file(served: DevServer, dialect: str) -> None:
    """Three ranges zipped into one file are sent as one version-1 group (pilot3 ``genericexecutor.py:107-118``): the
    server records three finished ranges, each with the zip's lfn, fsize, adler32, objstoreID, pathConvention and
    numEvents (``task_event_module.py:375-393``), stores the zip file once (``:509-549``) and accepts every range
    (True each). A version-0 update of the fourth range as failed still works beside it, without a zip file."""
    client = _dispatched(served, dialect)

    zipped = client.update_zipped_ranges(ZIP, _finished(*RANGE_IDS[:3]))
    failed = client.update_event_ranges([EventRangeUpdate(RANGE_IDS[3], "failed", 4242, {"errorCode": 1224})])

    assert (zipped.accepted, zipped.possibly_applied, zipped.command, zipped.message) == (True, False, None, "")
    assert (failed.accepted, failed.possibly_applied, failed.message) == (True, False, "")
    assert served.event_range_updates(4242) == [
        *({"eventRangeID": range_id, "eventStatus": "finished", "zipFile": ZIP_WIRE} for range_id in RANGE_IDS[:3]),
        {"eventRangeID": RANGE_IDS[3], "eventStatus": "failed", "errorCode": 1224}]
    assert served.event_range_statuses(4242) == dict(zip(RANGE_IDS, ["finished"] * 3 + ["failed"], strict=True))
    assert served.zip_files(4242) == {ZIP.lfn: ZIP_WIRE}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_zipped_ranges_of_a_job_the_server_no_longer_runs_are_refused(served: DevServer, dialect: str) -> None:
    """After the pilot's final update the job is ``holding`` and range updates are refused, one False per range
    (``ok_job_status``, ``task_event_module.py:403``, ``:502-505``): the zipped update is not accepted and says how
    many were refused; nothing is recorded and no zip file is stored."""
    client = _dispatched(served, dialect)
    assert client.update_job(JobUpdate(4242, "finished", {"xml": "{}"}, final=True)).accepted
    answer = client.update_zipped_ranges(ZIP, _finished(*RANGE_IDS[:3]))
    assert (answer.accepted, answer.possibly_applied, answer.message) == (False, False,
                                                                         "3 event range update(s) refused")
    assert served.event_range_updates(4242) == [] and served.zip_files(4242) == {}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.reliability("faults", "event service",
                         "server fails a zipped updateEventRanges: not accepted, none applied")
def test_a_zip_file_the_server_cannot_store_applies_nothing(served: DevServer, dialect: str) -> None:
    """panda-server reads a new zip file's ``fsize`` with ``int()`` (``task_event_module.py:530-531``); on failure it
    rolls the whole update back and answers the values so far plus one False (``:660-666``): one answer for three
    ranges. The client answers not accepted, saying that none was applied; the ranges stay ``sent``."""
    client = _dispatched(served, dialect)
    bad = ZipRecord(lfn="EVNT.zip", fsize="12 kB", adler32="0a1b2c3d",  # type: ignore[arg-type]  # a caller's bug
                    objstore_id=1234, num_events=3)

    answer = client.update_zipped_ranges(bad, _finished(*RANGE_IDS[:3]))

    assert (answer.accepted, answer.possibly_applied) == (False, False)
    assert answer.message == "the server failed the update of 3 event range(s) (1 answer(s)): none applied"
    assert served.event_range_updates(4242) == [] and served.zip_files(4242) == {}
    assert set(served.event_range_statuses(4242).values()) == {"sent"}


@pytest.mark.reliability("faults", "event service",
                         "updateEventRanges applied, answered 500: two attempts, possibly applied")
def test_v1_zipped_update_answered_500_is_possibly_applied(panda_server: DevServer, ledger: Ledger) -> None:
    """panda-server 1.x applies every v1 ``event/update_event_ranges``, then fails building the answer: for version 1
    the set ``{"Returns", [...], ...}`` cannot hold the list (``api/v1/event_api.py:266``), an HTTP 500. The zipped
    update shares the version-0 handling: two attempts at most, accepted and ``possibly_applied``, and the ranges
    were applied with their zip file."""
    server = panda_server
    server.add_job(JOB)
    server.add_event_ranges(4242, [{"eventRangeID": RANGE_IDS[0], "startEvent": 1, "lastEvent": 1, "LFN": "E",
                                    "GUID": "G", "scope": "mc23"}])
    client = _client(server, "v1", attempts=6)
    client.get_jobs(REQUEST)
    server.inject_fault("updateEventRanges", "apply_http500", times=100)

    answer = client.update_zipped_ranges(ZIP, _finished(RANGE_IDS[0]))

    assert (answer.accepted, answer.possibly_applied) == (True, True)
    assert server.request_count("updateEventRanges") == 2
    assert server.event_range_updates(4242) == [
        {"eventRangeID": RANGE_IDS[0], "eventStatus": "finished", "zipFile": ZIP_WIRE}] * 2
    assert server.zip_files(4242) == {ZIP.lfn: ZIP_WIRE}
    ledger.add(faults_injected=2)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_ranges_send_nothing(served: DevServer, dialect: str) -> None:
    """A zipped update of no range is accepted without a request (as for version 0)."""
    answer = _client(served, dialect).update_zipped_ranges(ZIP, [])
    assert answer.accepted and served.request_count("updateEventRanges") == 0
