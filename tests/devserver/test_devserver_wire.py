"""The local PanDA server's answers on the wire, checked with plain HTTP requests (not our client)."""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from panda_devserver import DevServer, DevServerError

pytestmark = pytest.mark.integration

JOB = {"PandaID": 101, "jobsetID": 7, "taskID": 9, "prodSourceLabel": "managed", "transformation": "run.sh",
       "jobPars": "-n 1", "inFiles": "", "outFiles": "log.tgz", "logFile": "log.tgz", "logGUID": "G"}
JSON = {"Accept": "application/json"}


def _post(server: DevServer, method: str, **kwargs: object) -> requests.Response:
    answer = requests.post(f"{server.url}/server/panda/{method}", timeout=10, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 200
    return answer


def _gz(body: dict[str, object]) -> dict[str, object]:
    """A legacy JSON request as pilot3 sends it: gzip-compressed, ``Content-Type: application/json``."""
    return {"data": gzip.compress(json.dumps(body).encode()),
            "headers": {"Content-Type": "application/json", **JSON}}


def _v1(server: DevServer, path: str, body: dict[str, object]) -> dict[str, object]:
    answer = requests.post(f"{server.url}/api/v1/{path}", json=body, timeout=10)
    assert answer.status_code == 200
    return answer.json()


def test_legacy_getjob_bulk_urlencoded(panda_legacy: DevServer) -> None:
    """Legacy getJob with nJobs answers url-encoded StatusCode=0 and ``jobs`` as a JSON string of full jobs."""
    panda_legacy.add_job(JOB)
    answer = urllib.parse.parse_qs(_post(panda_legacy, "getJob", data={"siteName": "Q", "nJobs": "1"}).text)
    assert answer["StatusCode"] == ["0"]
    jobs = json.loads(answer["jobs"][0])
    assert jobs == [{"StatusCode": 0, **JOB, "nSent": 0}]


def test_legacy_getjob_single_json_then_no_jobs(panda_legacy: DevServer) -> None:
    """Without nJobs the job's fields are the answer; the next getJob gets StatusCode 20 (each job goes once)."""
    panda_legacy.add_job(JOB)
    first = _post(panda_legacy, "getJob", **_gz({"siteName": "Q"})).json()
    assert first["StatusCode"] == 0 and first["PandaID"] == 101 and first["jobPars"] == "-n 1"
    second = _post(panda_legacy, "getJob", **_gz({"siteName": "Q"})).json()
    assert second == {"StatusCode": 20, "errorDialog": "no jobs in PanDA"}
    assert _post(panda_legacy, "getJob", data={"siteName": "Q"}).text == "StatusCode=20"
    assert panda_legacy.job_status(101) == "sent"


def test_legacy_gzip_json_body(panda_legacy: DevServer) -> None:
    """A gzip-compressed JSON body (as pilot3 sends it) is understood."""
    panda_legacy.add_job(JOB)
    body = gzip.compress(json.dumps({"siteName": "Q", "nJobs": 1}).encode())
    answer = _post(panda_legacy, "getJob", data=body,
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **JSON}).json()
    assert answer["jobs"][0]["PandaID"] == 101


def test_legacy_plain_json_body_is_a_server_error(panda_legacy: DevServer) -> None:
    """An uncompressed JSON body on the legacy API is a 500, as panda-server's ``parse_json_parameters_legacy``
    gunzips every JSON body; the job stays unsent."""
    panda_legacy.add_job(JOB)
    answer = requests.post(f"{panda_legacy.url}/server/panda/getJob", json={"siteName": "Q"}, headers=JSON, timeout=10)
    assert answer.status_code == 500
    assert panda_legacy.job_status(101) == "activated"


def test_v1_gzip_only_with_content_encoding(panda_server: DevServer) -> None:
    """A v1 JSON body is gunzipped only when ``Content-Encoding: gzip`` says so (``parse_json_parameters``)."""
    panda_server.add_job(JOB)
    body = gzip.compress(json.dumps({"site_name": "Q"}).encode())
    url = f"{panda_server.url}/api/v1/pilot/acquire_jobs"
    bare = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert bare.status_code == 500
    good = requests.post(url, data=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                         timeout=10)
    assert good.json()["data"]["jobs"][0]["PandaID"] == 101


def test_legacy_update_job_records_and_answers_command(panda_legacy: DevServer) -> None:
    """updateJob keeps every update in order, answers command=NULL, then the command that was set, once."""
    panda_legacy.add_job(JOB)
    _post(panda_legacy, "getJob", data={"siteName": "Q"})
    assert _post(panda_legacy, "updateJob", data={"jobId": "101", "state": "starting"}).text == (
        "StatusCode=0&command=NULL")
    panda_legacy.set_command(101, "tobekilled")
    running = _post(panda_legacy, "updateJob", data={"jobId": "101", "state": "running", "cpuConsumptionTime": "3"})
    assert urllib.parse.parse_qs(running.text) == {"StatusCode": ["0"], "command": ["tobekilled"]}
    final = _post(panda_legacy, "updateJob", **_gz({"jobId": 101, "state": "failed", "pilotErrorCode": 1099})).json()
    assert final == {"StatusCode": 0, "command": "NULL"}
    assert panda_legacy.updates(101) == [
        {"jobId": "101", "state": "starting"},
        {"jobId": "101", "state": "running", "cpuConsumptionTime": "3"},
        {"jobId": 101, "state": "failed", "pilotErrorCode": 1099},
    ]
    assert panda_legacy.final_state(101) == "failed"
    assert panda_legacy.job_status(101) == "holding"


def test_legacy_update_unknown_job_and_bad_state(panda_legacy: DevServer) -> None:
    """An unknown PandaID is StatusCode 30; an invalid state and jobId=NULL get a bare 0 and are not recorded."""
    assert _post(panda_legacy, "updateJob", data={"jobId": "999", "state": "running"}).text == "StatusCode=30"
    panda_legacy.add_job(JOB)
    assert _post(panda_legacy, "updateJob", data={"jobId": "101", "state": "dancing"}).text == "StatusCode=0"
    assert _post(panda_legacy, "updateJob", data={"jobId": "NULL", "state": "running"}).text == "StatusCode=0"
    assert panda_legacy.updates(101) == []


def test_legacy_update_with_an_unknown_field_is_a_server_error(panda_legacy: DevServer) -> None:
    """JobDispatcher.updateJob takes the fields as keywords: an unknown one is a 500 (single) or a failed bulk."""
    panda_legacy.add_job(JOB)
    answer = requests.post(f"{panda_legacy.url}/server/panda/updateJob", timeout=10,
                           data={"jobId": "101", "state": "running", "mood": "good"})
    assert answer.status_code == 500 and "mood" in answer.text
    job_list = json.dumps([{"jobId": 101, "state": "running", "mood": "good"}])
    bulk = _post(panda_legacy, "updateJobsInBulk", data={"jobList": job_list}).json()
    assert bulk[0] is False and "mood" in bulk[1]
    assert panda_legacy.updates(101) == []


def test_legacy_bulk_update(panda_legacy: DevServer) -> None:
    """updateJobsInBulk answers [true, [each updateJob answer]] and records each update."""
    panda_legacy.add_job(JOB)
    job_list = json.dumps([{"jobId": 101, "state": "running"}, {"jobId": 101, "state": "finished"}])
    answer = _post(panda_legacy, "updateJobsInBulk", data={"jobList": job_list}).json()
    assert answer == [True, ["StatusCode=0&command=NULL", "StatusCode=0&command=NULL"]]
    assert panda_legacy.final_state(101) == "finished"


def test_legacy_event_ranges(panda_legacy: DevServer) -> None:
    """getEventRanges hands out ranges once (JSON string inside the url-encoded answer); updates are kept."""
    panda_legacy.add_job(JOB)
    _post(panda_legacy, "getJob", data={"siteName": "Q"})  # ranges are served to a dispatched job only
    panda_legacy.add_event_ranges(101, [{"startEvent": 1, "lastEvent": 5, "LFN": "f", "GUID": "g", "scope": "s"},
                                        {"startEvent": 6, "lastEvent": 9, "LFN": "f", "GUID": "g", "scope": "s"}])
    first = urllib.parse.parse_qs(_post(panda_legacy, "getEventRanges",
                                        data={"pandaID": "101", "jobsetID": "7", "nRanges": "1"}).text)
    ranges = json.loads(first["eventRanges"][0])
    assert ranges == [{"startEvent": 1, "lastEvent": 5, "LFN": "f", "GUID": "g", "scope": "s",
                       "eventRangeID": "1-101-1-1-1"}]
    left = _post(panda_legacy, "checkEventsAvailability", data={"pandaID": "101", "jobsetID": "7", "taskID": "9"})
    assert left.json() == {"StatusCode": 0, "nEventRanges": 1}
    updates = [{"eventRangeID": "1-101-1-1-1", "eventStatus": "finished"},
               {"eventRangeID": "1-101-1-2-1", "eventStatus": "running"}, {"eventRangeID": "bad", "eventStatus": "x"}]
    answer = urllib.parse.parse_qs(_post(panda_legacy, "updateEventRanges",
                                         data={"eventRanges": json.dumps(updates)}).text)
    assert answer["StatusCode"] == ["0"]
    assert json.loads(answer["Returns"][0]) == [True, None, False]
    assert json.loads(answer["Command"][0]) == {}
    assert panda_legacy.event_range_updates(101) == updates[:2]


def test_v1_acquire_update_and_no_jobs(panda_server: DevServer) -> None:
    """v1 acquire_jobs/update_job answer {success, message, data}; snake_case is kept under legacy names."""
    panda_server.add_job(JOB)
    answer = _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q", "n_jobs": 1})
    assert answer["success"] is True and answer["data"]["jobs"][0]["PandaID"] == 101  # type: ignore[index]
    assert _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q"}) == {
        "success": False, "message": "No jobs in PanDA", "data": None}
    update = {"job_id": 101, "job_status": "finished", "max_rss": 10, "job_output_report": "<x/>",
              "cpu_consumption_time": 3, "pilot_id": "p", "meta_data": "{}"}
    assert _v1(panda_server, "pilot/update_job", update) == {
        "success": True, "message": "", "data": {"StatusCode": 0, "command": None}}
    assert panda_server.updates(101) == [{"jobId": 101, "state": "finished", "maxRSS": 10, "xml": "<x/>",
                                          "cpuConsumptionTime": 3, "pilotID": "p", "metaData": "{}"}]
    bad = _v1(panda_server, "pilot/update_job", {"job_id": 101, "job_status": "dancing"})
    assert bad == {"success": False, "message": "Invalid job status: dancing", "data": {"StatusCode": 50}}


def test_v1_creds_are_get_calls(panda_server: DevServer) -> None:
    """creds/get_proxy must be a GET (request_validation); over plain HTTP there is no DN to serve it to."""
    assert _v1(panda_server, "creds/get_proxy", {}) == {
        "success": False, "message": "expecting GET, received POST", "data": None}
    answer = requests.get(f"{panda_server.url}/api/v1/creds/get_proxy", timeout=10).json()
    assert answer["success"] is False and "DN" in answer["message"]


def test_info_endpoints(panda_server: DevServer) -> None:
    """Queue descriptions at both schedconfig paths, all storages at ddmendpoints.json (by name, with what the
    session's earlier tests added), unknown queue 404."""
    panda_server.add_queue("TEST_Q", {"name": "TEST_Q", "maxwdir": 1000})
    panda_server.add_storage("DISK", {"name": "DISK", "type": "DATADISK"})
    panda_server.add_storage("TAPE", {"name": "TAPE", "type": "DATATAPE"})
    for path in ("TEST_Q.all.json", "TEST_Q.json"):
        assert requests.get(f"{panda_server.url}/cache/schedconfig/{path}", timeout=10).json()["maxwdir"] == 1000
    storages = requests.get(f"{panda_server.url}/cache/ddmendpoints.json", timeout=10).json()
    assert storages["DISK"] == {"name": "DISK", "type": "DATADISK"}
    assert storages["TAPE"] == {"name": "TAPE", "type": "DATATAPE"}
    assert requests.get(f"{panda_server.url}/cache/schedconfig/NOPE.json", timeout=10).status_code == 404


@pytest.mark.parametrize(("kind", "status"), [("http500", 500), ("http503", 503)])
def test_fault_http_status(panda_legacy: DevServer, kind: str, status: int) -> None:
    """An injected 5xx answers that status for the given number of requests, then the server answers again."""
    panda_legacy.inject_fault("getJob", kind, times=2)
    codes = [requests.post(f"{panda_legacy.url}/server/panda/getJob", data={"siteName": "Q"}, timeout=10).status_code
             for _ in range(3)]
    assert codes == [status, status, 200]
    assert panda_legacy.request_count("getJob") == 3


def test_fault_garbage_and_drop(panda_legacy: DevServer) -> None:
    """garbage alternates an HTML page and truncated JSON; drop closes the connection without an answer."""
    panda_legacy.inject_fault("updateJob", "garbage", times=2)
    first = requests.post(f"{panda_legacy.url}/server/panda/updateJob", timeout=10)
    second = requests.post(f"{panda_legacy.url}/server/panda/updateJob", timeout=10)
    assert first.text.startswith("<!DOCTYPE HTML") and second.text == '{"StatusCode": 0, "jobs": [{"PandaID": 12'
    panda_legacy.inject_fault("schedconfig", "drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{panda_legacy.url}/cache/schedconfig/Q.json", timeout=10)
    assert panda_legacy.request_count("schedconfig") == 1


def test_bad_fault_kind_and_bad_job(panda_server: DevServer, tmp_path: Path) -> None:
    """An unknown fault kind and a job file that is not a job definition are refused with clear errors."""
    with pytest.raises(ValueError, match="unknown fault kind 'boom'"):
        panda_server.inject_fault("getJob", "boom")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(DevServerError, match="cannot read job definitions"):
        panda_server.add_job(bad)


def test_add_job_from_example_file(panda_legacy: DevServer, examples_dir: Path) -> None:
    """A job file is queued as its definition; the SQLite file is in the workdir."""
    assert panda_legacy.add_job(examples_dir / "jobs" / "production.json") == [6100000001]
    answer = _post(panda_legacy, "getJob", data={"siteName": "Q"}, headers=JSON).json()
    assert answer["PandaID"] == "6100000001" and answer["inFiles"] == "EVNT.36000001._000001.pool.root.1"
    assert (panda_legacy.workdir / "panda.sqlite").is_file()


def test_v1_refuses_unknown_missing_and_mistyped_arguments(panda_server: DevServer) -> None:
    """As ``request_validation`` does: an unknown or missing argument is an ``Argument error``, a mistyped one a
    ``Type error``, each ``success: false``; a wrong type inside a bulk update refuses that element only."""
    panda_server.add_job(JOB)
    unknown = _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q", "siteName": "Q"})
    assert unknown == {"success": False, "message": "Argument error: got an unexpected keyword argument 'siteName'",
                       "data": None}
    missing = _v1(panda_server, "pilot/update_job", {"job_status": "running"})
    assert missing["message"] == "Argument error: missing a required argument: 'job_id'"
    mistyped = _v1(panda_server, "pilot/update_job", {"job_id": 101, "job_status": "running", "start_time": 1.5})
    assert mistyped["message"] == "Type error: 'start_time' must be of type str, got float."
    bulk = _v1(panda_server, "pilot/update_jobs_bulk", {"job_list": [
        {"job_id": "101", "job_status": "running"}, {"job_id": 101, "job_status": "running"}]})
    assert [item["success"] for item in bulk["data"]] == [False, True]  # type: ignore[union-attr]
    assert panda_server.updates(101) == [{"jobId": 101, "state": "running"}]


def test_a_delayed_request_that_outlives_a_clear_is_not_applied(panda_server: DevServer) -> None:
    """A ``delay`` fault's request still waiting when the server is cleared (the next test begins) is dropped
    unapplied: applied late, it took the next test's job of the same PandaID (seen as a flaky getJob with no job in
    tests/panda/test_client_zipped_ranges.py after test_client_devserver.py's delayed getJob)."""
    panda_server.inject_fault("getJob", "delay", times=1, seconds=2.0)
    late: list[BaseException | requests.Response] = []

    def ask() -> None:
        try:
            late.append(requests.post(f"{panda_server.url}/api/v1/pilot/acquire_jobs", json={"site_name": "Q"},
                                      timeout=10))
        except requests.RequestException as exc:
            late.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(0.5)
    panda_server.clear()
    panda_server.add_job(JOB)
    asker.join(10)

    assert isinstance(late[0], requests.ConnectionError)
    assert panda_server.job_status(101) == "activated"
    taken = _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q"})
    assert [job["PandaID"] for job in taken["data"]["jobs"]] == [101]  # type: ignore[index]
