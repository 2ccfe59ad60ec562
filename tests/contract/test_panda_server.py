"""Contract tests against panda-server 1.0.4's own code (``.venv-panda``, ``scripts/setup.sh --panda-server``).

``panda_server_probe.py`` runs inside that venv: it builds job definitions with the server's ``JobSpec``/``FileSpec``
and ``Protocol.Response.appendJob`` and calls the real v1 handlers' ``request_validation``; pilotlib reads what it
prints. Nothing here compares pilotlib with a copy of its own lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from panda_devserver import _signatures
from pilotlib.errors import PilotError
from pilotlib.job import Job, parse_job
from pilotlib.panda import _answers
from pilotlib.panda._v1 import _APPLIED_THEN_FAILED, V1Dialect
from pilotlib.panda.base import EventRangeUpdate, JobRequest, JobUpdate, ZipRecord

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PILOTLIB_PANDA_VENV", REPO / ".venv-panda"))
PROBE = Path(__file__).with_name("panda_server_probe.py")

pytestmark = pytest.mark.integration


def _probe(command: Mapping[str, Any]) -> Any:
    if not (VENV / ".stamp").is_file():  # never a skip: make test installs it
        pytest.fail(f"no panda-server venv at {VENV}: run scripts/setup.sh --panda-server (make setup does)")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(VENV), "PANDA_HOME": str(VENV),
           "PANDA_BEHIND_REAL_LB": "1"}
    done = subprocess.run([str(VENV / "bin" / "python"), str(PROBE)], input=json.dumps(command), text=True,
                          capture_output=True, env=env, cwd=str(VENV), timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def server_jobs() -> dict[str, dict[str, str]]:
    return dict(_probe({"do": "jobs"}))


def _both_forms(answers: Mapping[str, str]) -> list[Job]:
    """The job parsed from the url-encoded (legacy default) and the JSON answer of ``Response.encode``."""
    jobs = []
    for text in (answers["urlencoded"], answers["json"]):
        answer = _answers.decode_legacy("getJob", text)
        assert answer["StatusCode"] == 0
        jobs.append(parse_job({k: v for k, v in answer.items() if k != "StatusCode"}))
    return jobs


def test_production_job_fields(server_jobs: dict[str, dict[str, str]]) -> None:
    """A production job built by panda-server 1.0.4 (``jobdispatcher/Protocol.py`` ``Response.appendJob`` from
    line 54 at tag 1.0.4, e.g. ``homepackage`` line 67, ``transferType`` 263, ``resource_type`` 287; unset columns
    read as ``"NULL"`` through ``JobSpec.__getattribute__``, ``taskbuffer/JobSpec.py`` line 244) reads field by
    field, in both answer forms; its ``"NULL"`` string columns read as unset."""
    for job in _both_forms(server_jobs["production"]):
        assert (job.panda_id, job.jobset_id, job.task_id, job.attempt_nr) == (1001, 77, 4242, 2)
        assert (job.prod_source_label, job.sw_release, job.transformation) == ("managed", "Atlas-23.0.1", "Sim_tf.py")
        assert (job.core_count, job.max_walltime, job.min_ram_count, job.max_disk_count) == (8, 7200, 2000, 5000)
        assert (job.job_pars, job.job_pars_base64) == ("--maxEvents=10", False)
        unset = (job.transfer_type, job.homepackage, job.cmtconfig, job.processing_type, job.destination_se,
                 job.resource_type)
        assert unset == ("",) * 6
        assert job.current_priority is None
        (infile,) = job.inputs
        assert (infile.lfn, infile.filesize, infile.checksum, infile.scope) == (
            "EVNT.01._000001.pool.root.1", 1000, "ad:0a1b2c3d", "mc23_13p6TeV")
        assert (infile.guid, infile.ddmendpoint, infile.dataset) == (
            "00000000-0000-0000-0000-000000000027", "CERN-PROD_DATADISK", "mc23_13p6TeV.ds_input")
        assert infile.storage_token is None
        (output,) = job.outputs
        assert (output.lfn, output.ddmendpoint, output.dataset, output.destination_se) == (
            "HITS.01._000001.pool.root.1", "CERN-PROD_DATADISK", "mc23_13p6TeV.ds_output", "CERN-PROD")
        assert job.log is not None and (job.log.lfn, job.log.guid, job.log.scope) == (
            "log.1001.tgz", "00000000-0000-0000-0000-000000000012", "mc23_13p6TeV")
        assert not job.event_service and not job.event_service_merge


def test_user_job_with_encoded_parameters(server_jobs: dict[str, dict[str, str]]) -> None:
    """A user job whose task sets ``encJobParams`` (``JobSpec.set_encode_job_params``): ``Response.appendJob``
    base64-encodes ``jobPars`` (``jobdispatcher/Protocol.py`` line 223 at 1.0.4), so ``--maxEvents=10`` arrives as
    ``LS1tYXhFdmVudHM9MTA=``, with no space in the decoded text; pilotlib decodes it. The transformation URL and
    the md5 checksum read as sent."""
    assert "jobPars=LS1tYXhFdmVudHM9MTA%3D" in server_jobs["user"]["urlencoded"]
    for job in _both_forms(server_jobs["user"]):
        assert (job.job_pars, job.job_pars_base64) == ("--maxEvents=10", True)
        assert job.prod_source_label == "user"
        assert job.transformation == "https://pandaserver.cern.ch/trf/user/runGen-00-00-02"
        (infile,) = job.inputs
        assert (infile.lfn, infile.checksum, infile.filesize) == ("user.a.in.root", "md5:" + "a" * 32, 20)


def test_event_service_job(server_jobs: dict[str, dict[str, str]]) -> None:
    """An event-service job (``specialHandling`` ``eventservice``, ``taskbuffer/EventServiceUtils.py`` line 41):
    ``appendJob`` sends ``eventService=True`` and the jobset (``jobdispatcher/Protocol.py`` lines 279 and 298 at
    1.0.4); pilotlib reads it as an event-service job with the jobset id that v1 ``event/acquire_event_ranges``
    needs."""
    for job in _both_forms(server_jobs["event_service"]):
        assert job.event_service and not job.event_service_merge
        assert (job.panda_id, job.jobset_id, job.task_id) == (1003, 77, 4242)
        assert [f.lfn for f in job.inputs] == ["EVNT.02._000001.pool.root.1"]


def test_merge_job(server_jobs: dict[str, dict[str, str]]) -> None:
    """An event-service merge job (``EventServiceUtils.setEventServiceMerge``): ``appendJob`` sends
    ``eventServiceMerge=True``, ``writeToFile`` and the input's ``prodDBlockToken`` from the job's metadata
    (``jobdispatcher/Protocol.py`` lines 134, 305 and 319 at 1.0.4)."""
    for job in _both_forms(server_jobs["merge"]):
        assert job.event_service_merge and not job.event_service
        assert job.write_to_file == "inputFor_HITS.02._000001.pool.root.1:HITS.02._000001.pool.root.1.1003-1"
        (infile,) = job.inputs
        assert (infile.lfn, infile.storage_token) == ("HITS.02._000001.pool.root.1.1003-1", "es_premerge")


def test_no_input_job(server_jobs: dict[str, dict[str, str]]) -> None:
    """A job without inputs (event generation): ``appendJob`` sends empty input lists (``inFiles=""``,
    ``prodDBlocks=""`` from ``strProdDBlock[:-1]``, ``jobdispatcher/Protocol.py`` lines 191 and 205 at 1.0.4); pilotlib
    reads no inputs and the one output plus the log."""
    for job in _both_forms(server_jobs["no_input"]):
        assert job.inputs == ()
        assert [f.lfn for f in job.outputs] == ["EVNT.03._000001.pool.root.1"]
        assert job.log is not None and job.log.lfn == "log.1005.tgz"


class _Replay:
    """A transport that records the request and answers a fixed text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.bodies: list[Mapping[str, Any]] = []

    def send(self, call: str, path: str, *, method: str = "POST", json_body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             compress: bool = False, max_attempts: int | None = None, check: object = None) -> str:
        self.bodies.append(dict(json_body or {}))
        return self.text


def test_v1_acquire_jobs_answer_reads_as_the_jobs() -> None:
    """Our v1 ``pilot/acquire_jobs`` request goes through panda-server 1.0.4's real handler
    (``pandaserver/api/v1/pilot_api.py`` ``acquire_jobs``, line 55 at 1.0.4, with a stand-in task buffer whose
    ``getJobs`` hands out JobSpecs and a stand-in site mapper); the handler's answer (``data.jobs``, each built by
    ``Response.appendJob`` with ``nSent``) reads in our v1 dialect as the five jobs, field by field; the handler
    passed our queue, label, memory and disk to ``getJobs``."""
    request = JobRequest(site_name="CERN-PROD", queue="CERN-PROD_UCORE", node="wn1.cern.ch", mem_mb=2000,
                         disk_mb=5000, resource_type="SCORE", n_jobs=5)
    asked = _Replay(json.dumps({"success": False, "message": "No jobs in PanDA", "data": None}))
    assert V1Dialect().get_jobs(asked, request) == []  # type: ignore[arg-type]
    result = _probe({"do": "acquire", "body": asked.bodies[0]})
    (call,) = result["get_jobs_args"]
    assert call[:6] == [5, "CERN-PROD", "managed", 2000, 5000, "wn1.cern.ch"] and call[7] == "CERN-PROD_UCORE"
    jobs = [parse_job(d) for d in V1Dialect().get_jobs(_Replay(json.dumps(result["answer"])), request)]  # type: ignore[arg-type]
    assert [j.panda_id for j in jobs] == [1001, 1002, 1003, 1004, 1005]
    production, user, event_service, merge, no_input = jobs
    assert production.inputs[0].checksum == "ad:0a1b2c3d" and production.transfer_type == ""
    assert (user.job_pars, user.job_pars_base64) == ("--maxEvents=10", True)
    assert event_service.event_service and event_service.jobset_id == 77
    assert merge.event_service_merge and merge.inputs[0].storage_token == "es_premerge"
    assert no_input.inputs == () and no_input.log is not None and no_input.log.lfn == "log.1005.tgz"
    assert production.extra["nSent"] == 0


_PATHS = sorted(_signatures.SIGNATURES)


def _annotation_types(text: str) -> set[str]:
    """``<class 'int'>`` -> {"int"}; ``dict | str`` -> {"dict", "str"}; ``typing.List`` -> {"list"}; none -> set()."""
    if not text:
        return set()
    if text.startswith("<class '"):
        return {text[len("<class '"):-2]}
    parts = (part.strip().split("[")[0] for part in text.split("|"))
    return {part.removeprefix("typing.").lower() if part.startswith("typing.") else part for part in parts}


def test_devserver_signatures_equal_the_real_handlers() -> None:
    """The development server's v1 argument lists (``panda_devserver/_signatures.py``) are those of panda-server
    1.0.4's handlers (``pandaserver/api/v1/pilot_api.py``, ``event_api.py``, ``credential_management_api.py``, read
    with ``inspect.signature`` as ``request_validation`` does, ``api/v1/common.py`` line 310): same names, same
    required arguments and defaults, same annotated types."""
    real = _probe({"do": "signatures", "paths": _PATHS})
    for path in _PATHS:
        ours = _signatures.SIGNATURES[path]
        assert sorted(ours) == sorted(real[path]), path
        for name, (annotation, default) in real[path].items():
            types, our_default = ours[name]
            assert {t.__name__ for t in types} == _annotation_types(annotation) - {"NoneType"}, (path, name)
            expected = _signatures.REQUIRED if default == "<required>" else default
            assert our_default == expected, (path, name)


class _Capture:
    """A transport that records what the v1 dialect sends and answers a success with no data."""

    def __init__(self, data: Any) -> None:
        self.sent: list[tuple[str, str, Mapping[str, Any]]] = []
        self.data = data

    def send(self, call: str, path: str, *, method: str = "POST", json_body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             compress: bool = False, max_attempts: int | None = None, check: object = None) -> str:
        self.sent.append((method, path.removeprefix("api/v1/"), dict(json_body or query or {})))
        return json.dumps({"success": True, "message": "", "data": self.data})


def _captured(call: Any, data: Any) -> tuple[str, str, Mapping[str, Any]]:
    capture = _Capture(data)
    with contextlib.suppress(PilotError):  # the stand-in answer may not suit the call; only the request matters
        call(capture)
    (sent,) = capture.sent
    return sent


def _job() -> Job:
    return parse_job({"PandaID": "4001", "jobsetID": "77", "taskID": "4242", "jobPars": "x"})


def _requests() -> list[tuple[str, str, Mapping[str, Any]]]:
    dialect = V1Dialect()
    request = JobRequest(site_name="CERN-PROD", queue="CERN-PROD_UCORE", node="wn1.cern.ch", mem_mb=2000,
                         disk_mb=5000, resource_type="SCORE", job_type="managed", harvester_id="cern_harvester",
                         worker_id="123", task_id=4242, n_jobs=2)
    final = JobUpdate(panda_id=4001, state="finished", final=True, fields={
        "xml": "{}", "startTime": 1700000000.0, "endTime": 1700000100.0, "coreCount": 8, "cpuConsumptionTime": 90,
        "pilotErrorCode": 0, "transExitCode": 0, "maxRSS": 1024, "avgPSS": 512.5, "jobMetrics": "coreCount=8",
        "pilotTiming": "1|2|3|4|5|6", "attemptNr": 2, "node": "wn1", "schedulerID": "s", "pilotID": "p",
        "batchID": "b", "siteName": "CERN-PROD", "cpuConsumptionUnit": "s", "cpuConversionFactor": 1.0,
        "metaData": {"exitCode": 0}})
    ranges = [EventRangeUpdate(event_range_id="4001-1-1-1-1", status="finished", panda_id=4001)]
    return [
        _captured(lambda t: dialect.get_jobs(t, request), {"jobs": [], "StatusCode": 0}),
        _captured(lambda t: dialect.update_job(t, final), {"StatusCode": 0}),
        _captured(lambda t: dialect.update_jobs(t, [final]), []),
        _captured(lambda t: dialect.get_event_ranges(t, _job(), 4), []),
        _captured(lambda t: dialect.update_event_ranges(t, ranges), {}),
        _captured(lambda t: dialect.get_key_pair(t, "pub", "priv"), {}),
        _captured(lambda t: dialect.get_proxy(t, "production"), {}),
        _captured(lambda t: dialect.update_worker_status(t, site="CERN-PROD", worker_id="123",
                                                         harvester_id="cern_harvester", status="started",
                                                         node_id="wn1"), None),
    ]


def test_client_requests_pass_the_real_request_validation() -> None:
    """Every v1 request our client sends (captured from ``V1Dialect`` with a fake transport) passes panda-server
    1.0.4's own ``request_validation`` (``pandaserver/api/v1/common.py`` lines 263-400 at 1.0.4: arguments bound to
    the handler's signature, each one an instance of its annotation), called through the real decorated handler
    with a stand-in request; GET arguments arrive as text, as they do over HTTP."""
    sent = _requests()
    assert [path for _, path, _ in sent] == [
        "pilot/acquire_jobs", "pilot/update_job", "pilot/update_jobs_bulk", "event/acquire_event_ranges",
        "event/update_event_ranges", "creds/get_key_pair", "creds/get_proxy", "pilot/update_worker_status"]
    for method, path, sent_body in sent:
        body = {key: str(value) for key, value in sent_body.items()} if method == "GET" else dict(sent_body)
        answer = _probe({"do": "validate", "path": path, "method": method, "body": body})
        assert answer["validated"], (path, answer["message"], body)


def test_real_validation_refuses_a_mistyped_request() -> None:
    """The probe can fail: panda-server's ``request_validation`` refuses ``jobset_id=None`` for
    ``event/acquire_event_ranges`` (declared ``jobset_id: int``, ``pandaserver/api/v1/event_api.py`` line 110 at 1.0.4)
    with a type error; this is what pilotlib's own check now prevents before sending."""
    answer = _probe({"do": "validate", "path": "event/acquire_event_ranges", "method": "POST",
                     "body": {"job_id": 4001, "jobset_id": None, "task_id": 4242, "n_ranges": 4}})
    assert not answer["validated"]
    assert answer["message"].startswith("Type error: 'jobset_id'")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


def test_a_zipped_range_report_applied_by_the_real_handler_fails_with_the_text_the_client_recognises() -> None:
    """Our client's version 1 ``event/update_event_ranges`` body, given to panda-server 1.0.4's real handler once
    the task buffer applied it: building the answer raises (``pandaserver/api/v1/event_api.py`` line 266 at 1.0.4,
    the set ``{"Returns", <list>, "Commands", <dict>}``), and the WSGI entry answers HTTP 500 with that text
    (``server/panda.py`` lines 409-430). The client takes exactly such a 500 as possibly applied
    (``pilotlib/panda/_v1.py`` ``_APPLIED_THEN_FAILED``) and any other 500 as a failure to send again."""
    record = ZipRecord(lfn="EventService_premerge_4001-1-1-1-1.tar", fsize=10, adler32="0000abcd", objstore_id=-1,
                       num_events=1)
    ranges = [EventRangeUpdate(event_range_id="4001-1-1-1-1", status="finished", panda_id=4001)]
    _method, path, body = _captured(lambda t: V1Dialect().update_zipped_ranges(t, record, ranges), {})
    assert path == "event/update_event_ranges" and body["version"] == 1
    answer = _probe({"do": "update_ranges", "body": dict(body)})
    assert "raised" in answer, answer
    assert any(sign in answer["raised"].encode() for sign in _APPLIED_THEN_FAILED), answer["raised"]
