"""The local PanDA server against panda-server's and pilot3's own code (issue 9, "behaves like panda-server").

Peers, as read for these tests:
- panda-server (PanDAWMS/panda-server): tag 0.8.1 (the last release with ``jobdispatcher/JobDispatcher.py``) and
  HEAD 9cc36033 (1.x, ``PandaPkgInfo.py`` release 1.0.3); the line numbers of ``task_event_module.py`` and
  ``job_complex_module.py`` cited below are the same at both.
- pilot3 (PanDAWMS/pilot3) HEAD a090538b (tag 3.11.5.1).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from panda_devserver import DevServer
from pilotlib.panda.base import EventRangeUpdate
from pilotlib.panda.client import CallRetry, PandaClient, Timeouts

pytestmark = pytest.mark.integration

JOB = {"PandaID": 301, "jobsetID": 7, "taskID": 9, "prodSourceLabel": "managed", "transformation": "run.sh",
       "jobPars": "-n 1", "inFiles": "", "outFiles": "log.tgz", "logFile": "log.tgz", "logGUID": "G"}
RANGE = {"startEvent": 1, "lastEvent": 5, "LFN": "EVNT.root", "GUID": "g", "scope": "mc23"}


def _v1(server: DevServer, path: str, body: dict[str, object]) -> dict[str, object]:
    answer = requests.post(f"{server.url}/api/v1/{path}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    document: dict[str, object] = answer.json()
    return document


def _dispatch(server: DevServer, *ranges: dict[str, object]) -> None:
    """Queue JOB with event ranges and hand it to a pilot (status ``sent``)."""
    server.add_job(JOB)
    server.add_event_ranges(301, list(ranges) or [RANGE, {**RANGE, "startEvent": 6, "lastEvent": 9}])
    assert _v1(server, "pilot/acquire_jobs", {"site_name": "Q"})["success"] is True


def _zip_group(range_ids: list[str]) -> dict[str, object]:
    """One group as pilot3's generic executor reports finished ranges with their zip file
    (``pilot/eventservice/workexecutor/plugins/genericexecutor.py:107-118``)."""
    ranges = [{"eventRangeID": range_id, "eventStatus": "finished"} for range_id in range_ids]
    return {"zipFile": {"numEvents": len(ranges), "objstoreID": 1234, "lfn": "EVNT.zip", "fsize": 100,
                        "pathConvention": 1000, "adler32": "0a0b0c0d"},
            "eventRanges": ranges}


# ------------------------------------------------------------------------------------------------------- point 1
@contextlib.contextmanager
def _command(tmp_path: Path, *options: str) -> Iterator[str]:
    """``pilot-devserver --port 0 OPTIONS`` running; its URL (logged when serving starts)."""
    process = subprocess.Popen([sys.executable, "-m", "apps.devserver", "--port", "0", "--workdir",
                                str(tmp_path / "w"), *options], stderr=subprocess.PIPE, text=True)
    try:
        url = ""
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"devserver serving url=(\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the server did not start"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_serves_storage_descriptions(tmp_path: Path, examples_dir: Path) -> None:
    """``--storages FILE`` serves a CRIC ``ddmendpoints.json`` ({name: description}) at ``/cache/ddmendpoints.json``,
    the document pilot3 reads its storages from (``pilot/util/default.cfg:203``, ``storages_url``); without it a
    queue that names storages has none and stage-out fails with NOSTORAGE (1133)."""
    storages = examples_dir / "queues" / "ddmendpoints.json"
    with _command(tmp_path, "--storages", str(storages)) as url:
        served = requests.get(f"{url}/cache/ddmendpoints.json", timeout=10).json()
    assert served == json.loads(storages.read_text())


def test_cli_serves_legacy_only_when_asked(tmp_path: Path) -> None:
    """``pilot-devserver`` answers a legacy getJob 403 as panda-server 1.x does (``server/panda.py:343-348`` at
    9cc36033); with ``--legacy`` it answers as a server before 1.0 (no job: ``StatusCode=20``)."""
    with _command(tmp_path) as url:
        assert requests.post(f"{url}/server/panda/getJob", data={"siteName": "Q"}, timeout=10).status_code == 403
    with _command(tmp_path, "--legacy") as url:
        answer = requests.post(f"{url}/server/panda/getJob", data={"siteName": "Q"}, timeout=10)
    assert answer.status_code == 200 and urllib.parse.parse_qs(answer.text) == {"StatusCode": ["20"]}


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "storage descriptions must be a JSON object"),
    ("{not json", "cannot read storage descriptions"),
])
def test_cli_bad_storage_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    """A ``--storages`` file in neither CRIC form stops the command with exit status 2, naming the file."""
    storages = tmp_path / "ddm.json"
    storages.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "apps.devserver", "--port", "0", "--workdir", str(tmp_path / "w"), "--storages",
         str(storages)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------------------- point 2
def test_v1_update_event_ranges_version_1_groups(panda_server: DevServer) -> None:
    """Version 1 updates are groups sharing a ``zipFile`` (pilot3 ``genericexecutor.py:107-118`` sends
    ``{'version': 1, 'eventRanges': json.dumps([group])}``); panda-server flattens them, each range carrying its
    group's zip file (``task_event_module.py:375-393``) and answers one result per range (True for ``finished``)."""
    _dispatch(panda_server)
    group = _zip_group(["1-301-1-1-1", "1-301-1-2-1"])
    answer = _v1(panda_server, "event/update_event_ranges", {"event_ranges": json.dumps([group]), "version": 1})
    assert answer == {"success": True, "message": "", "data": {"Returns": [True, True], "Commands": {}}}
    recorded = panda_server.event_range_updates(301)
    assert [item["eventRangeID"] for item in recorded] == ["1-301-1-1-1", "1-301-1-2-1"]
    assert all(item["zipFile"] == group["zipFile"] for item in recorded)


def test_legacy_update_event_ranges_version_1_groups(panda_legacy: DevServer) -> None:
    """The legacy ``updateEventRanges`` with ``version=1`` (pilot3 ``pandacommunicator.py:252`` posts the executor's
    message to ``/server/panda/updateEventRanges``) records every range of the group; ``TaskBuffer.updateEventRanges``
    returns version-1 answers without ``json.dumps`` (``TaskBuffer.py:1733-1734`` at 0.8.1), so JSON holds lists."""
    _dispatch(panda_legacy)
    group = _zip_group(["1-301-1-1-1", "1-301-1-2-1"])
    answer = requests.post(f"{panda_legacy.url}/server/panda/updateEventRanges",
                           data={"eventRanges": json.dumps([group]), "version": "1"},
                           headers={"Accept": "application/json"}, timeout=10).json()
    assert answer == {"StatusCode": 0, "Returns": [True, True], "Command": {}}
    assert len(panda_legacy.event_range_updates(301)) == 2


# ------------------------------------------------------------------------------------------------------- point 3
def test_event_ranges_served_only_to_a_dispatched_job(panda_server: DevServer) -> None:
    """``DBProxy.getEventRanges`` serves ranges only while the job is ``sent``/``running``/``starting``
    (``task_event_module.py:161``; an empty list otherwise): none before the job was dispatched, then the range."""
    panda_server.add_job(JOB)
    panda_server.add_event_ranges(301, [RANGE])
    request = {"job_id": 301, "jobset_id": 7, "task_id": 9, "n_ranges": 5}
    assert _v1(panda_server, "event/acquire_event_ranges", request)["data"] == []
    assert _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q"})["success"] is True
    assert [item["eventRangeID"] for item in _v1(panda_server, "event/acquire_event_ranges", request)["data"]] == [
        "1-301-1-1-1"]


def test_event_range_updates_accepted_only_for_a_dispatched_job(panda_server: DevServer) -> None:
    """``DBProxy.updateEventRanges`` applies an update only while the job is ``sent``/``running``/``starting``/
    ``transferring`` (``ok_job_status``, ``task_event_module.py:403``; False otherwise, ``:502-504``): refused
    before dispatch and after the pilot's final update (``holding``), recorded in between."""
    panda_server.add_job(JOB)
    panda_server.add_event_ranges(301, [RANGE])
    update = {"event_ranges": json.dumps([{"eventRangeID": "1-301-1-1-1", "eventStatus": "finished"}])}
    assert _v1(panda_server, "event/update_event_ranges", update)["data"] == {"Returns": [False], "Commands": {}}
    assert panda_server.event_range_updates(301) == []
    _v1(panda_server, "pilot/acquire_jobs", {"site_name": "Q"})
    assert _v1(panda_server, "event/update_event_ranges", update)["data"]["Returns"] == [True]  # type: ignore[index]
    _v1(panda_server, "pilot/update_job", {"job_id": 301, "job_status": "finished"})
    assert panda_server.job_status(301) == "holding"
    assert _v1(panda_server, "event/update_event_ranges", update)["data"]["Returns"] == [False]  # type: ignore[index]
    assert len(panda_server.event_range_updates(301)) == 1


def test_version_2_updates_are_accepted_before_dispatch(panda_server: DevServer) -> None:
    """Version 2 (fine-grained processing: events updated before being dispatched) also accepts an ``activated`` job
    (``task_event_module.py:404-405``); version 0 refuses it."""
    panda_server.add_job(JOB)
    panda_server.add_event_ranges(301, [RANGE])
    ranges = json.dumps([{"eventRangeID": "1-301-1-1-1", "eventStatus": "finished"}])
    refused = _v1(panda_server, "event/update_event_ranges", {"event_ranges": ranges, "version": 0})
    accepted = _v1(panda_server, "event/update_event_ranges", {"event_ranges": ranges, "version": 2})
    assert (refused["data"]["Returns"], accepted["data"]["Returns"]) == ([False], [True])  # type: ignore[index]
    assert len(panda_server.event_range_updates(301)) == 1


def test_event_range_update_of_an_unknown_job_is_refused_with_tobekilled(panda_server: DevServer) -> None:
    """A range whose PandaID the server does not know answers False and the command ``tobekilled``
    (``task_event_module.py:488-492``; commands are keyed by PandaID, ``:633``)."""
    update = {"event_ranges": json.dumps([{"eventRangeID": "1-999-1-1-1", "eventStatus": "finished"}])}
    assert _v1(panda_server, "event/update_event_ranges", update)["data"] == {
        "Returns": [False], "Commands": {"999": "tobekilled"}}


# ------------------------------------------------------------------------------------------------------- point 4
def test_second_final_update_is_alreadydone(panda_server: DevServer) -> None:
    """After a final update the job is ``holding`` with no dispatcher diagnostic; another final update is answered
    with the command ``alreadydone`` (``job_complex_module.py:173-182``) and its outputs are not added
    (``api/v1/pilot_api.py:633``): the devserver keeps the first final and lists the second as ignored."""
    _dispatch(panda_server)
    first = _v1(panda_server, "pilot/update_job", {"job_id": 301, "job_status": "finished"})
    assert first["data"] == {"StatusCode": 0, "command": None}
    second = _v1(panda_server, "pilot/update_job", {"job_id": 301, "job_status": "failed", "pilot_error_code": 1})
    assert second == {"success": True, "message": "", "data": {"StatusCode": 0, "command": "alreadydone"}}
    assert [update["state"] for update in panda_server.updates(301)] == ["finished"]
    assert panda_server.final_state(301) == "finished"
    assert panda_server.ignored_updates(301) == [
        {"fields": {"jobId": 301, "state": "failed", "pilotErrorCode": 1}, "answer": "alreadydone"}]


def test_legacy_second_final_update_is_alreadydone(panda_legacy: DevServer) -> None:
    """The legacy ``updateJob`` answers ``command=alreadydone`` to a second final update (``JobDispatcher.py:346-356``
    at 0.8.1 passes the ``updateJobStatus`` string on as ``command``)."""
    _dispatch(panda_legacy)
    for state in ("finished", "finished"):
        answer = requests.post(f"{panda_legacy.url}/server/panda/updateJob",
                               data={"jobId": "301", "state": state}, timeout=10)
    assert urllib.parse.parse_qs(answer.text) == {"StatusCode": ["0"], "command": ["alreadydone"]}
    assert len(panda_legacy.updates(301)) == 1 and len(panda_legacy.ignored_updates(301)) == 1


@pytest.mark.parametrize("value", ["1764630000.5", "2026-12-01T23:00:00", "2026-12-01 23:00"])
def test_times_the_server_cannot_parse_are_recorded_as_dropped(panda_server: DevServer, value: str) -> None:
    """panda-server parses ``start_time``/``end_time`` with ``time.strptime(value, "%Y-%m-%d %H:%M:%S")`` and drops
    any other form (``api/v1/pilot_api.py:553-557``; ``JobDispatcher.py:1186-1195`` at 0.8.1): such a value is
    listed by ``dropped_fields``; a value in the server's form is not."""
    _dispatch(panda_server)
    _v1(panda_server, "pilot/update_job", {"job_id": 301, "job_status": "running", "start_time": value,
                                           "end_time": "2026-12-01 23:10:00"})
    assert panda_server.dropped_fields(301) == [("startTime", value)]


# ------------------------------------------------------------------------------------------------------- point 5
_NO_CRYPTOGRAPHY = textwrap.dedent("""
    import sys, tempfile, urllib.request
    from pathlib import Path

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "cryptography" or name.startswith("cryptography."):
                raise ImportError("No module named 'cryptography' (blocked)")
            return None

    sys.meta_path.insert(0, Block())
    from panda_devserver import DevServer, DevServerError
    import apps.devserver.__main__
    with DevServer(Path(tempfile.mkdtemp())) as server:
        request = urllib.request.Request(server.url + "/api/v1/pilot/acquire_jobs", data=b'{"site_name": "Q"}',
                                         headers={"Content-Type": "application/json"})
        print(urllib.request.urlopen(request, timeout=10).read().decode())
    try:
        DevServer(Path(tempfile.mkdtemp()), tls=True)
    except DevServerError as exc:
        print("tls:", exc)
    print("cryptography" in sys.modules)
""")


def test_plain_server_runs_without_cryptography(tmp_path: Path) -> None:
    """``pip install pilotlib`` does not bring ``cryptography`` (pyproject.toml: only the ``devserver`` extra does):
    with it unimportable, the plain-HTTP server and the command's module still import and answer; asking for TLS
    is a DevServerError naming the package, not an ImportError."""
    done = subprocess.run([sys.executable, "-c", _NO_CRYPTOGRAPHY], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == {"success": False, "message": "No jobs in PanDA", "data": None}
    assert lines[1].startswith("tls: TLS needs the cryptography package") and lines[2] == "False"


# ------------------------------------------------------------------------------------------------------- point 6
def test_legacy_getjob_is_forbidden_by_default(panda_server: DevServer) -> None:
    """By default the devserver serves what panda-server 1.x serves: ``/server/panda/getJob`` fails
    ``validate_method`` and is answered ``403 Forbidden``, ``text/plain``, ``ERROR : method getJob is forbidden``
    (``server/panda.py:343-348`` at 9cc36033), and nothing is handed out; with the legacy dialect asked for
    (``legacy``, ``pilot-devserver --legacy``) getJob answers as a server before 1.0 (``JobDispatcher.py`` at 0.8.1)."""
    panda_server.add_job(JOB)
    answer = requests.post(f"{panda_server.url}/server/panda/getJob", data={"siteName": "Q"}, timeout=10)
    assert (answer.status_code, answer.headers["Content-Type"], answer.text) == (
        403, "text/plain", "ERROR : method getJob is forbidden")
    assert panda_server.job_status(301) == "activated"
    panda_server.legacy = True
    answer = requests.post(f"{panda_server.url}/server/panda/getJob", data={"siteName": "Q"}, timeout=10)
    assert answer.status_code == 200 and urllib.parse.parse_qs(answer.text)["PandaID"] == ["301"]


# ------------------------------------------------------------------------------------------------------- point 7
def test_apply_http500_fault_applies_the_update(panda_server: DevServer) -> None:
    """The ``apply_http500`` fault plays panda-server 1.x's ``event/update_event_ranges``: the update is applied
    (``task_event_module.py`` commits it), then building the answer fails at ``api/v1/event_api.py:266``
    (``{"Returns", ..., "Commands", ...}`` is a set; with version 1's list inside it raises ``unhashable type:
    'list'``) and the WSGI entry answers 500 with the exception's text (``server/panda.py:409-430``)."""
    _dispatch(panda_server)
    panda_server.inject_fault("updateEventRanges", "apply_http500")
    answer = requests.post(f"{panda_server.url}/api/v1/event/update_event_ranges", timeout=10,
                           json={"event_ranges": json.dumps([_zip_group(["1-301-1-1-1"])]), "version": 1})
    assert (answer.status_code, answer.text) == (500, "unhashable type: 'list'")
    assert [item["eventRangeID"] for item in panda_server.event_range_updates(301)] == ["1-301-1-1-1"]


def test_client_takes_a_500_on_update_event_ranges_as_possibly_applied(panda_server: DevServer) -> None:
    """Against panda-server 1.x every v1 ``event/update_event_ranges`` is applied, then answered 500
    (``api/v1/event_api.py:266``): the client tries twice at most (not its whole retry policy), does not raise, and
    answers accepted and ``possibly_applied``, so the ranges are not counted as failed or lost."""
    _dispatch(panda_server)
    panda_server.inject_fault("updateEventRanges", "apply_http500", times=100)
    sleeps: list[float] = []
    client = PandaClient(panda_server.url, "v1", timeouts=Timeouts(connect=5, read=5), sleep=sleeps.append,
                         retry=CallRetry(attempts=6, total_seconds=60, backoff=0.01, max_backoff=0.02))
    started = time.monotonic()
    answer = client.update_event_ranges([EventRangeUpdate("1-301-1-1-1", "finished", 301),
                                         EventRangeUpdate("1-301-1-2-1", "finished", 301)])
    assert answer.accepted and answer.possibly_applied and answer.command is None
    assert panda_server.request_count("updateEventRanges") == 2 and len(sleeps) == 1
    assert time.monotonic() - started < 30
    received = panda_server.event_range_updates(301)  # both attempts arrived and were applied
    assert sorted(item["eventRangeID"] for item in received) == ["1-301-1-1-1"] * 2 + ["1-301-1-2-1"] * 2


# ------------------------------------------------------------------------------------------------------- point 8
def _served(request: pytest.FixtureRequest, dialect: str) -> DevServer:
    server: DevServer = request.getfixturevalue("panda_legacy" if dialect == "legacy" else "panda_server")
    return server


def _update_ranges(server: DevServer, dialect: str, ranges: list[object], version: int) -> object:
    """The ``Returns`` of a raw ``updateEventRanges`` in either dialect (legacy: as pilot3's communicator posts it,
    ``pandacommunicator.py:252``)."""
    if dialect == "v1":
        body = {"event_ranges": json.dumps(ranges), "version": version}
        return _v1(server, "event/update_event_ranges", body)["data"]["Returns"]  # type: ignore[index]
    answer = requests.post(f"{server.url}/server/panda/updateEventRanges", timeout=10,
                           data={"eventRanges": json.dumps(ranges), "version": str(version)},
                           headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    return answer.json()["Returns"]


def _without(record: dict[str, object], key: str) -> dict[str, object]:
    return {name: value for name, value in record.items() if name != key}


ZIP_RECORD = _zip_group(["1-301-1-1-1"])["zipFile"]
assert isinstance(ZIP_RECORD, dict)
MALFORMED_ZIPS = {
    "no lfn": _without(ZIP_RECORD, "lfn"),  # task_event_module.py:510, a KeyError
    "no objstoreID": {**_without(ZIP_RECORD, "objstoreID"), "lfn": "EVNT.2.zip"},  # :540
    "fsize not a number": {**ZIP_RECORD, "lfn": "EVNT.2.zip", "fsize": "100 bytes"},  # :531, int() raises
    "not an object": "EVNT.2.zip",  # :510, a string cannot be indexed by "lfn"
}


@pytest.mark.parametrize("dialect", ["legacy", "v1"])
@pytest.mark.parametrize("malformed", MALFORMED_ZIPS.values(), ids=MALFORMED_ZIPS.keys())
def test_malformed_zip_file_rolls_the_whole_update_back(request: pytest.FixtureRequest, dialect: str,
                                                        malformed: object) -> None:
    """panda-server stores a final range's new zip file inside the update's one transaction
    (``task_event_module.py:509-549``); a zip file it cannot store raises there: the whole update is rolled back,
    the earlier group's valid range too, and the answer is the answers so far plus one False (``:660-666``). The
    ranges keep their status; no zip file is kept."""
    server = _served(request, dialect)
    _dispatch(server)
    groups: list[object] = [_zip_group(["1-301-1-1-1"]), {"zipFile": malformed, "eventRanges": [
        {"eventRangeID": "1-301-1-2-1", "eventStatus": "finished"}]}]
    assert _update_ranges(server, dialect, groups, 1) == [True, False]
    assert server.event_range_updates(301) == [] and server.zip_files(301) == {}
    assert server.event_range_statuses(301) == {"1-301-1-1-1": "ready", "1-301-1-2-1": "ready"}  # not handed out


@pytest.mark.parametrize("dialect", ["legacy", "v1"])
def test_known_zip_file_is_found_by_its_name(request: pytest.FixtureRequest, dialect: str) -> None:
    """A zip file the job already has is found by its ``lfn`` (``task_event_module.py:512-519``) and nothing else of
    the record is read: a later group naming it alone is applied, and the stored file stays the first one."""
    server = _served(request, dialect)
    _dispatch(server)
    assert _update_ranges(server, dialect, [_zip_group(["1-301-1-1-1"])], 1) == [True]
    by_name = {"zipFile": {"lfn": "EVNT.zip"}, "eventRanges": [{"eventRangeID": "1-301-1-2-1",
                                                                "eventStatus": "finished"}]}
    assert _update_ranges(server, dialect, [by_name], 1) == [True]
    assert server.zip_files(301) == {"EVNT.zip": ZIP_RECORD}
    assert [item["zipFile"] for item in server.event_range_updates(301)] == [ZIP_RECORD, {"lfn": "EVNT.zip"}]
    assert server.event_range_statuses(301) == {"1-301-1-1-1": "finished", "1-301-1-2-1": "finished"}


def test_zip_file_is_read_only_for_a_final_status(panda_server: DevServer) -> None:
    """A ``running`` range is answered None before its zip file is looked at (``task_event_module.py:461-465``
    come before ``:509``): a malformed zip file there fails nothing and is not stored."""
    _dispatch(panda_server)
    group = {"zipFile": MALFORMED_ZIPS["no lfn"], "eventRanges": [{"eventRangeID": "1-301-1-1-1",
                                                                   "eventStatus": "running"}]}
    assert _update_ranges(panda_server, "v1", [group], 1) == [None]
    assert panda_server.zip_files(301) == {}


def test_zip_file_of_a_version_0_range_is_checked_too(panda_server: DevServer) -> None:
    """The zip file check does not depend on the version (``task_event_module.py:509``): a version-0 range carrying
    a ``zipFile`` without ``objstoreID`` fails the update as well."""
    _dispatch(panda_server)
    ranges: list[object] = [{"eventRangeID": "1-301-1-1-1", "eventStatus": "finished", "zipFile": {"lfn": "E.zip"}}]
    assert _update_ranges(panda_server, "v1", ranges, 0) == [False]
    assert panda_server.event_range_updates(301) == []
