"""The dispatcher client against the local PanDA server over real HTTP, in both dialects."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.panda.base import EventRangeUpdate, JobRequest, JobUpdate, ServerCommand
from pilotlib.panda.client import CallRetry, PandaClient, Timeouts
from pilotlib.panda.errors import CommunicationError, ServerAnswerError, ServerHTTPError, ServerRefusedError

pytestmark = pytest.mark.integration

DIALECTS = ["legacy", "v1"]
JOB = {"PandaID": 4242, "jobsetID": 11, "taskID": 77, "prodSourceLabel": "managed", "transformation": "run.sh",
       "jobPars": "--events 10", "inFiles": "EVNT.1.root", "GUID": "A-B", "fsize": "100", "checksum": "ad:0000abcd",
       "scopeIn": "mc23", "outFiles": "HITS.1.root,log.1.tgz", "scopeOut": "mc23", "scopeLog": "mc23",
       "logFile": "log.1.tgz", "logGUID": "L-G", "eventService": "True"}
REQUEST = JobRequest(site_name="TEST_Q", queue="TEST_Q", node="wn01", mem_mb=2000, disk_mb=5000)


@pytest.fixture
def served(request: pytest.FixtureRequest, dialect: str) -> DevServer:
    """The local server for the test's dialect: a legacy test asks for a server before 1.0 (both dialects), a v1
    test gets what panda-server 1.x serves (v1 only)."""
    server: DevServer = request.getfixturevalue("panda_legacy" if dialect == "legacy" else "panda_server")
    return server


def _client(server: DevServer, dialect: str, retry: CallRetry | None = None,
            sleeps: list[float] | None = None) -> PandaClient:
    return PandaClient(server.url, dialect,  # type: ignore[arg-type]
                       timeouts=Timeouts(connect=5, read=2), rng=random.Random(1),
                       retry=retry or CallRetry(attempts=3, total_seconds=30, backoff=0.01, max_backoff=0.02),
                       sleep=(sleeps.append if sleeps is not None else lambda _s: None))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_full_job_cycle(served: DevServer, dialect: str) -> None:
    """A job is fetched, updated starting/running/finished with event range updates; the server keeps exactly that."""
    served.add_job(JOB)
    served.add_event_ranges(4242, [
        {"eventRangeID": f"77-4242-1-{n}-1", "startEvent": n, "lastEvent": n, "LFN": "EVNT.1.root",
         "GUID": "A-B", "scope": "mc23"} for n in (1, 2)])
    client = _client(served, dialect)

    (job,) = client.get_jobs(REQUEST)
    assert (job.panda_id, job.task_id, job.job_pars) == (4242, 77, "--events 10")
    assert client.get_jobs(REQUEST) == ()
    ranges = client.get_event_ranges(job, 5)
    assert [(r.event_range_id, r.start_event, r.lfn) for r in ranges] == [
        ("77-4242-1-1-1", 1, "EVNT.1.root"), ("77-4242-1-2-1", 2, "EVNT.1.root")]
    assert client.get_event_ranges(job, 5) == ()

    starting = client.update_job(JobUpdate(4242, "starting", {"node": "wn01"}))
    running = client.update_job(JobUpdate(4242, "running", {"cpuConsumptionTime": 12, "maxRSS": 1000}))
    event_answer = client.update_event_ranges([
        EventRangeUpdate("77-4242-1-1-1", "finished", 4242), EventRangeUpdate("77-4242-1-2-1", "failed", 4242)])
    final = client.update_job(JobUpdate(4242, "finished", {"xml": "{}", "pilotErrorCode": 0}, final=True))

    assert starting.accepted and running.accepted and final.accepted and event_answer.accepted
    assert starting.command is None and final.command is None
    assert served.updates(4242) == [
        {"jobId": 4242, "state": "starting", "node": "wn01"},
        {"jobId": 4242, "state": "running", "cpuConsumptionTime": 12, "maxRSS": 1000},
        {"jobId": 4242, "state": "finished", "xml": "{}", "pilotErrorCode": 0},
    ]
    assert served.event_range_updates(4242) == [
        {"eventRangeID": "77-4242-1-1-1", "eventStatus": "finished"},
        {"eventRangeID": "77-4242-1-2-1", "eventStatus": "failed"},
    ]
    assert served.final_state(4242) == "finished"
    assert served.job_status(4242) == "holding"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("command", "expected", "text"), [
    ("tobekilled", ServerCommand.TOBEKILLED, ""), ("softkill", ServerCommand.SOFTKILL, ""),
    ("debug", ServerCommand.DEBUG, ""), ("tail -n 20 payload.stdout", ServerCommand.DEBUG_COMMAND,
                                         "tail -n 20 payload.stdout"),
    ("debug,tobekilled", ServerCommand.TOBEKILLED, ""), ("debugoff", ServerCommand.DEBUGOFF, ""),
    ("alreadydone", None, ""), ("badattemptnr", None, "")])
def test_back_channel_command(served: DevServer, dialect: str, command: str,
                              expected: ServerCommand | None, text: str) -> None:
    """A command set on the server arrives as a typed ServerCommand in the next update answer, once; tobekilled wins
    in a comma-separated list, and server words that are not pilot commands (alreadydone) are ignored."""
    served.add_job(JOB)
    client = _client(served, dialect)
    client.get_jobs(REQUEST)
    served.set_command(4242, command)
    answer = client.update_job(JobUpdate(4242, "running"))
    assert (answer.command, answer.command_text) == (expected, text)
    assert client.update_job(JobUpdate(4242, "running")).command is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_bulk_updates_and_worker_status(served: DevServer, dialect: str) -> None:
    """Bulk updates give one answer per update and are all kept; the worker status reaches the server."""
    served.add_job(JOB)
    served.add_job({**JOB, "PandaID": 4243})
    client = _client(served, dialect)
    answers = client.update_jobs([JobUpdate(4242, "running"), JobUpdate(4243, "failed", {"pilotErrorCode": 1099})])
    assert [a.accepted for a in answers] == [True, True]
    assert served.updates(4243) == [{"jobId": 4243, "state": "failed", "pilotErrorCode": 1099}]
    assert served.final_state(4243) == "failed"
    client.update_worker_status(site="TEST_Q", worker_id="9", harvester_id="h1", status="started")
    assert served.worker_statuses()[-1]["status"] == "started"
    with pytest.raises(ServerRefusedError) as refused:
        client.update_worker_status(site="TEST_Q", worker_id="9", harvester_id="h1", status="dancing")
    assert refused.value.code == ErrorCode.COMMUNICATIONFAILURE


@pytest.mark.parametrize("dialect", DIALECTS)
def test_update_of_unknown_job_is_refused(served: DevServer, dialect: str) -> None:
    """The server refuses an update for a job it does not know: ServerRefusedError, code 1318, StatusCode 30."""
    with pytest.raises(ServerRefusedError) as refused:
        _client(served, dialect).update_job(JobUpdate(999, "running"))
    assert refused.value.code == ErrorCode.COMMUNICATIONFAILURE == 1318
    assert refused.value.status_code == 30


@pytest.mark.reliability("faults", "server", "answers 5xx or drops, then answers (client)")
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", ["http500", "http503", "drop"])
def test_retried_faults_then_success(served: DevServer, dialect: str, kind: str) -> None:
    """5xx answers and dropped connections are retried with growing backoff; the call then succeeds."""
    served.add_job(JOB)
    served.inject_fault("getJob", kind, times=2)
    sleeps: list[float] = []
    client = _client(served, dialect, CallRetry(attempts=3, total_seconds=30, backoff=0.01), sleeps)
    (job,) = client.get_jobs(REQUEST)
    assert job.panda_id == 4242
    assert served.request_count("getJob") == 3
    assert len(sleeps) == 2 and 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02


@pytest.mark.reliability("faults", "server", "keeps failing: retries bounded in count (client)")
@pytest.mark.parametrize("dialect", DIALECTS)
def test_retries_are_bounded_in_count(served: DevServer, dialect: str) -> None:
    """When every attempt fails, the client gives up after `attempts` requests with a CommunicationError 1318 (a
    ServerHTTPError keeping the last HTTP status)."""
    served.inject_fault("updateJob", "http503", times=10)
    with pytest.raises(CommunicationError) as failed:
        _client(served, dialect, CallRetry(attempts=4, backoff=0.001)).update_job(JobUpdate(1, "running"))
    assert type(failed.value) is ServerHTTPError and failed.value.code == ErrorCode.COMMUNICATIONFAILURE
    assert failed.value.status_code == 503
    assert "after 4 attempt(s)" in str(failed.value) and "HTTP 503" in str(failed.value)
    assert served.request_count("updateJob") == 4


@pytest.mark.reliability("faults", "server", "keeps failing: retries bounded in time (client)")
def test_retries_are_bounded_in_time(panda_legacy: DevServer) -> None:
    """No retry starts when its backoff would pass the total time budget: one request only."""
    panda_legacy.inject_fault("getJob", "http500", times=5)
    policy = CallRetry(attempts=5, total_seconds=1.0, backoff=10.0, max_backoff=10.0)
    with pytest.raises(CommunicationError):
        _client(panda_legacy, "legacy", policy).get_jobs(REQUEST)
    assert panda_legacy.request_count("getJob") == 1


@pytest.mark.reliability("faults", "server", "slower than the read timeout (client)")
@pytest.mark.parametrize("dialect", DIALECTS)
def test_delay_beyond_read_timeout_is_retried(served: DevServer, dialect: str) -> None:
    """A server slower than the read timeout counts as a retryable failure; the next attempt succeeds."""
    served.add_job(JOB)
    served.inject_fault("getJob", "delay", times=1, seconds=1.5)
    client = PandaClient(served.url, dialect, timeouts=Timeouts(connect=5, read=0.5),  # type: ignore[arg-type]
                         retry=CallRetry(attempts=2, backoff=0.01), sleep=lambda _s: None)
    assert [job.panda_id for job in client.get_jobs(REQUEST)] == [4242]
    assert served.request_count("getJob") == 2


@pytest.mark.reliability("faults", "server", "answers garbage (client)")
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", ["garbage", "garbage_html", "garbage_json"])
def test_a_garbage_answer_is_retried_and_the_next_one_taken(served: DevServer, dialect: str, kind: str,
                                                            ledger: Ledger) -> None:
    """An HTML page, bytes or truncated JSON instead of an answer is retried like a 5xx (pilot3 asks again after an
    answer it cannot read: pilot/control/job.py ``retrieve``, line 2315): the second answer is taken."""
    served.add_job(JOB)
    served.inject_fault("updateJob", kind, times=1)
    client = _client(served, dialect)
    client.get_jobs(REQUEST)
    assert client.update_job(JobUpdate(4242, "running")).accepted
    assert served.request_count("updateJob") == 2
    ledger.add(faults_injected=1)


@pytest.mark.reliability("faults", "server", "answers garbage every time (client)")
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", ["garbage_html", "garbage_json"])
def test_garbage_answers_every_time_are_a_typed_error(served: DevServer, dialect: str, kind: str,
                                                      ledger: Ledger) -> None:
    """Garbage at every attempt is a ServerAnswerError (1318) naming the call, after the policy's attempts."""
    served.inject_fault("updateJob", kind, times=10)
    with pytest.raises(ServerAnswerError) as bad:
        _client(served, dialect).update_job(JobUpdate(1, "running"))
    assert bad.value.code == ErrorCode.COMMUNICATIONFAILURE and bad.value.call == "updateJob"
    assert "malformed answer" in str(bad.value)
    assert served.request_count("updateJob") == 3
    ledger.add(faults_injected=3)


def test_no_jobs_is_empty_not_error(panda_legacy: DevServer) -> None:
    """A no-jobs answer (legacy StatusCode 20, v1 success false) is an empty result in both dialects."""
    for dialect in DIALECTS:
        assert _client(panda_legacy, dialect).get_jobs(REQUEST) == ()


def test_job_file_round_trip(panda_server: DevServer, examples_dir: Path) -> None:
    """A job loaded from the example file comes to the client with the same definition."""
    panda_server.add_job(examples_dir / "jobs" / "production.json")
    (job,) = _client(panda_server, "v1").get_jobs(REQUEST)
    source = json.loads((examples_dir / "jobs" / "production.json").read_text())
    assert job.panda_id == int(source["PandaID"]) and job.inputs[0].lfn == source["inFiles"]


def test_legacy_update_sends_only_known_fields_and_server_times(panda_legacy: DevServer) -> None:
    """The legacy server takes updateJob's fields as keywords (an unknown one is a 500) and parses startTime/endTime
    with ``%Y-%m-%d %H:%M:%S``: the client leaves unknown fields out and formats epoch times; the update is kept."""
    panda_legacy.add_job(JOB)
    client = _client(panda_legacy, "legacy")
    client.get_jobs(REQUEST)
    fields = {"startTime": 86400.25, "endTime": 86461, "notAnUpdateJobArgument": "x", "coreCount": 2}
    assert client.update_job(JobUpdate(4242, "running", fields)).accepted
    (update,) = panda_legacy.updates(4242)
    assert update["startTime"] == "1970-01-02 00:00:00" and update["endTime"] == "1970-01-02 00:01:01"
    assert "notAnUpdateJobArgument" not in update and str(update["coreCount"]) == "2"


def test_v1_arguments_have_the_types_the_server_declares(panda_server: DevServer) -> None:
    """panda-server's v1 refuses mistyped arguments (``request_validation``), so the client sends each ``update_job``
    and ``acquire_jobs`` argument in its declared type: epoch times as ``%Y-%m-%d %H:%M:%S`` UTC text, counts as
    ints, a JSON report as text, a numeric worker id as an int; the server keeps the update."""
    panda_server.add_job(JOB)
    client = _client(panda_server, "v1")
    request = JobRequest(site_name="TEST_Q", queue="TEST_Q", worker_id="17", harvester_id="h1")
    (job,) = client.get_jobs(request)
    fields = {"startTime": 86400.25, "endTime": 86461, "cpuConsumptionTime": "12", "meanCoreCount": 2.0,
              "metaData": {"exitCode": 0}, "pilotID": 12345, "attemptNr": "2", "maxRSS": "1000"}
    assert client.update_job(JobUpdate(job.panda_id, "finished", fields, final=True)).accepted
    assert panda_server.updates(4242) == [{
        "jobId": 4242, "state": "finished", "startTime": "1970-01-02 00:00:00", "endTime": "1970-01-02 00:01:01",
        "cpuConsumptionTime": 12, "meanCoreCount": 2, "metaData": '{"exitCode": 0}', "pilotID": "12345",
        "attemptNr": 2, "maxRSS": 1000}]
