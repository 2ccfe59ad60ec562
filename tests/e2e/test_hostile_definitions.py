"""Hostile job definitions and payloads, end to end: a real grid-pilot process refuses them, in every source.

Each definition arrives the way its source delivers one: the v1 dispatcher's JSON answer
(``{"success", "message", "data": {"StatusCode", "jobs"}}``, panda-server ``pandaserver/api/v1/pilot_api.py``
``acquire_jobs``), the legacy dispatcher's JSON answer (``{"StatusCode": 0, "jobs": [...]}``) and its url-encoded one
(``StatusCode=0&PandaID=...``, ``pandaserver/jobdispatcher/Protocol.py`` ``Response.encode``), Harvester's job file
(``{"<PandaID>": {...}}`` then ``worker_pandaids.json``, HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py`` ``feed_jobs``) and an ARC CE's ``pandaJobData.out``.
The dispatcher is a loopback HTTP server answering those exact bytes (a hostile or broken server: the local PanDA
server stores definitions in SQLite and JSON, which cannot hold a 4301-digit integer or a PandaID beyond 64 bits).

What panda-server can send: ``PandaID`` comes from the ``ATLAS_PANDA.JOBSDEFINED4_PANDAID_SEQ`` sequence
(``pandaserver/taskbuffer/JobSpec.py:175`` at 9cc3603) into ``NUMBER(11)`` columns (PanDAWMS/panda-database
``schema/oracle/ATLAS_PANDA.sql``, e.g. FILESTABLE4's ``"PANDAID" NUMBER(11,0)``; ``bigint`` on PostgreSQL), and goes
out as that integer (``pandaserver/jobdispatcher/Protocol.py:61``, ``self.data["PandaID"] = job.PandaID``; the v1
``update_job`` declares ``job_id: int``, ``pandaserver/api/v1/pilot_api.py:334``): always positive and far inside
64 bits. pilot3 keeps
``PandaID`` as a string without any check (``pilot/info/jobdata.py:70``, ``jobid ... forced to be a string``) and turns
an integer field it cannot convert into the field's default with a warning (``pilot/info/basedata.py``
``clean_numeric``), so a hostile value runs on into the payload or the work directory's name. pilotlib refuses it
where it is parsed: CONVERSIONFAILURE (1302) naming the field, no traceback, no job directory, no retry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apps.grid_pilot.settings import STATE_DIR_NAME
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode, process_exit_code
from pilotlib.transfer.paths import deterministic_path

from .helpers import adler32, final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PANDA_ID = 8101
HUGE = "1" + "0" * 4300  # 4301 digits: one more than Python's int/str conversion limit
BEYOND_64_BITS = 2**64


class RawDispatcher(ThreadingHTTPServer):
    """A loopback HTTP server that answers one fixed body to the job request and counts every request by path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RawDispatcher

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(self.path)
        content_type, body = self.server.answers.get(self.path, ("text/plain", b"not found"))
        self.send_response(200 if self.path in self.server.answers else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def dispatcher() -> Iterator[RawDispatcher]:
    """The raw dispatcher, serving in a thread for the test."""
    server = RawDispatcher()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------------------------------------ definitions
def _json_definition(case: str) -> tuple[str, str]:
    """(the definition as JSON text, its PandaID as the wrapper's key) with the hostile value of ``case``."""
    definition: dict[str, object] = {**job_definition(PANDA_ID), "PandaID": PANDA_ID}
    raw_values = {"huge-integer": ("attemptNr", HUGE), "panda-id-beyond-64-bits": ("PandaID", str(BEYOND_64_BITS)),
                  "panda-id-negative": ("PandaID", "-8101"), "panda-id-zero": ("PandaID", "0")}
    if case == "nul-in-jobpars":
        definition["jobPars"] = "SLEEP=0\x00 sh payload.sh"
        return json.dumps(definition), str(PANDA_ID)
    field, literal = raw_values[case]
    definition[field] = "@@"
    text = json.dumps(definition).replace('"@@"', literal)  # a JSON number literal, as panda-server's json.dumps
    return text, (literal if field == "PandaID" else str(PANDA_ID))


def _form_definition(case: str) -> str:
    """The legacy url-encoded answer (``StatusCode=0&PandaID=...``) with the hostile value of ``case``."""
    values = {"huge-integer": ("attemptNr", HUGE), "panda-id-beyond-64-bits": ("PandaID", str(BEYOND_64_BITS)),
              "panda-id-negative": ("PandaID", "-8101"), "panda-id-zero": ("PandaID", "0"),
              "nul-in-jobpars": ("jobPars", "SLEEP=0\x00 sh payload.sh")}
    field, value = values[case]
    return urllib.parse.urlencode({"StatusCode": "0", **job_definition(PANDA_ID), field: value})


FIELDS = {"huge-integer": "attemptNr", "nul-in-jobpars": "jobPars", "panda-id-beyond-64-bits": "PandaID",
          "panda-id-negative": "PandaID", "panda-id-zero": "PandaID"}


# ------------------------------------------------------------------------------------------------------ sources
def _serve_v1(dispatcher: RawDispatcher, definition: bytes) -> None:
    body = b'{"success": true, "message": "", "data": {"StatusCode": 0, "jobs": [' + definition + b"]}}"
    dispatcher.answers["/api/v1/pilot/acquire_jobs"] = ("application/json", body)


def _place(source: str, tmp_path: Path, dispatcher: RawDispatcher, case: str,
           document: bytes | None = None) -> list[str]:
    """Put the hostile definition where ``source`` delivers it; the pilot's arguments for that source."""
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps({"nickname": "Q", "state": "ACTIVE", "status": "online"}))
    text, key = _json_definition(case) if document is None else (document.decode("utf-8", "replace"), str(PANDA_ID))
    data = document if document is not None else text.encode()
    if source == "v1":
        _serve_v1(dispatcher, data)
        return ["--url", dispatcher.url, "--api", "v1", "--queuedata-file", str(queue)]
    if source == "legacy-json":  # a server before 1.0 answering the pilot's Accept: application/json
        body = b'{"StatusCode": 0, "jobs": [' + data + b"]}"
        dispatcher.answers["/server/panda/getJob"] = ("application/json", body)
        return ["--url", dispatcher.url, "--api", "legacy", "--queuedata-file", str(queue)]
    if source == "legacy-form":
        dispatcher.answers["/server/panda/getJob"] = ("text/html", _form_definition(case).encode())
        return ["--url", dispatcher.url, "--api", "legacy", "--queuedata-file", str(queue)]
    if source == "harvester":
        access_point = tmp_path / "access_point"
        access_point.mkdir()
        (access_point / "HPCJobs.json").write_bytes(b'{"' + key.encode() + b'": ' + data + b"}")
        (access_point / "worker_pandaids.json").write_text(f"[{key}]")
        return ["--mode", "harvester", "--harvester-workdir", str(access_point), "--queuedata-file", str(queue)]
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_bytes(data)
    return ["--mode", "arc", "--launch-dir", str(launch), "--queuedata-file", str(queue)]


def _run_pilot(tmp_path: Path, argv: list[str]) -> tuple[int, str, float]:
    """Run a grid-pilot process; (exit status, its stderr, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "apps.grid_pilot", "-q", "Q", "-a", str(tmp_path / "work"), "--copytool", "cp",
               "--input-dir", str(tmp_path / "in"), "--log-level", "INFO", *argv]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stderr, time.monotonic() - started


def _assert_refused(status: int, stderr: str, tmp_path: Path, field: str) -> None:
    assert status == process_exit_code(ErrorCode.CONVERSIONFAILURE), stderr[-3000:]
    assert f"job retrieval failed code={int(ErrorCode.CONVERSIONFAILURE)}" in stderr, stderr[-3000:]
    assert f"bad job definition field {field}=" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr and "INTERNALPILOTPROBLEM" not in stderr
    work = tmp_path / "work"
    # no job directory was made (the pilot's own state directory is there)
    assert not [path.name for path in work.iterdir() if path.is_dir() and path.name != STATE_DIR_NAME]


SOURCES = ["v1", "legacy-json", "legacy-form", "harvester", "arc"]


@pytest.mark.parametrize("case", sorted(FIELDS))
@pytest.mark.parametrize("source", SOURCES)
def test_hostile_value_is_refused_at_parsing_naming_the_field(
    source: str, case: str, tmp_path: Path, dispatcher: RawDispatcher
) -> None:
    """A 4301-digit integer, a NUL in ``jobPars``, a PandaID beyond 64 bits, negative or zero: the pilot ends with
    CONVERSIONFAILURE (1302) naming the field, without a traceback, without making a job directory, after one job
    request (the server is not asked again and gets no update)."""
    status, stderr, _ = _run_pilot(tmp_path, _place(source, tmp_path, dispatcher, case))
    _assert_refused(status, stderr, tmp_path, FIELDS[case])
    if source.startswith(("v1", "legacy")):
        assert len(dispatcher.requests) == 1 and dispatcher.requests[0].endswith(("acquire_jobs", "getJob"))


BROKEN = {
    "not-utf8": (b'{"PandaID": 8101, "jobName": "caf\xe9 \xff", "jobPars": "x"}', "not UTF-8 text"),
    "nested-10000-deep": (b'{"PandaID": 8101, "extra": ' + b"[" * 10000 + b"]" * 10000 + b"}",
                          "JSON nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("source", ["v1", "harvester", "arc"])
def test_broken_document_is_a_final_error_at_once(
    source: str, case: str, tmp_path: Path, dispatcher: RawDispatcher
) -> None:
    """Bytes that are not UTF-8 and JSON nested 10000 deep end the pilot at once with a code (1302 for a job file,
    1318 for a dispatcher answer) and the reason, no traceback: a job file is read once (the pilot's debug log has no
    "job file not complete yet", the line of each read again until the reading deadline: 30 s in Harvester mode,
    10 s in ARC mode); a dispatcher answer that does not decode is asked for again like any broken answer (the
    transport's three attempts, ``DISPATCHER_RETRY`` in ``pilotlib/workflow/modes.py``; pilot3 asks again after an
    answer it cannot read, ``pilot/control/job.py`` ``retrieve`` line 2315), then the error is final."""
    document, reason = BROKEN[case]
    argv = [*_place(source, tmp_path, dispatcher, "nul-in-jobpars", document), "--log-level", "DEBUG"]
    status, stderr, _ = _run_pilot(tmp_path, argv)
    code = ErrorCode.COMMUNICATIONFAILURE if source == "v1" else ErrorCode.CONVERSIONFAILURE
    assert status == process_exit_code(code), stderr[-3000:]
    assert f"job retrieval failed code={int(code)}" in stderr and reason in stderr, stderr[-3000:]
    assert "Traceback" not in stderr and "still unreadable" not in stderr
    assert "job file not complete yet" not in stderr, "the file was read again"
    if source == "v1":
        assert dispatcher.requests == ["/api/v1/pilot/acquire_jobs"] * 3


@pytest.mark.reliability("bad input", "file names",
                         "payload output symlinked out of the work directory (real pilot): refused, never read")
def test_output_linked_out_of_the_work_directory_is_refused_and_never_read(
    panda_server: DevServer, tmp_path: Path
) -> None:
    """A payload that leaves its output as a symbolic link to a file outside the work directory (``out.dat ->
    <elsewhere>/secret``): the job is reported failed with BADOUTPUTFILENAME (1371), the storage never gets
    ``out.dat``, the file behind the link is never read (its access time does not move, so it was neither
    checksummed nor uploaded), and the log is staged out all the same. A real grid-pilot process, the local PanDA
    server, the real payload and the ``cp`` copytool."""
    secret = tmp_path / "elsewhere" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(b"site secret\n")
    info = secret.stat()
    os.utime(secret, (info.st_mtime - 3600, info.st_mtime))  # any read now moves the access time (relatime)
    atime = secret.stat().st_atime
    panda_server.add_queue("Q", {"nickname": "Q", "state": "ACTIVE", "status": "online"})
    panda_server.add_job(job_definition(PANDA_ID, sleep=0.1, env=f"LINK_OUT={secret}"))
    make_inputs(tmp_path / "in")
    status, stderr, _ = _run_pilot(tmp_path, ["--url", panda_server.url, "--api", "v1", "--output-dir",
                                              str(tmp_path / "storage"), "--heartbeat", "0.2"])
    assert status == 0, stderr[-3000:]
    final = final_update(panda_server.updates(PANDA_ID))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.BADOUTPUTFILENAME, final
    assert "out.dat" in str(final["pilotErrorDiag"]) and "symbolic link" in str(final["pilotErrorDiag"])
    assert not (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).exists()
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
    assert secret.stat().st_atime == atime and secret.read_bytes() == b"site secret\n"


REPORT_PAYLOAD = """#!/bin/sh
# writes a hostile jobReport.json ($DEPTH levels of nested lists, or an integer of $DIGITS digits), then exits 0
cat in.dat > out.dat
python3 -c "import os, sys; d = int(os.environ.get('DEPTH', '0')); n = int(os.environ.get('DIGITS', '0'));
x = '[' * d + ']' * d if d else '1' * n
sys.stdout.write('{\\"exitCode\\": 0, \\"exitMsg\\": \\"OK\\", \\"x\\": ' + x + '}')" > jobReport.json
"""


@pytest.mark.parametrize("hostile", ["DEPTH=10000", "DEPTH=900", "DIGITS=4301"])
def test_hostile_job_report_never_breaks_the_final_update(
    panda_server: DevServer, tmp_path: Path, hostile: str
) -> None:
    """A payload whose ``jobReport.json`` is nested 10000 (or 900) deep or holds a 4301-digit integer: the job is still
    reported once with a final state (the report is not taken as ``metaData``), no stage crashes (no
    INTERNALPILOTPROBLEM 1319, no traceback), and the log is staged out."""
    inputs = make_inputs(tmp_path / "in")
    (inputs / "payload.sh").write_text(REPORT_PAYLOAD)
    definition = job_definition(PANDA_ID, env=hostile)
    script = REPORT_PAYLOAD.encode()
    sizes, sums = definition["fsize"].split(","), definition["checksum"].split(",")
    definition["fsize"] = f"{sizes[0]},{len(script)}"
    definition["checksum"] = f"{sums[0]},ad:{adler32(script)}"
    panda_server.add_queue("Q", {"nickname": "Q", "state": "ACTIVE", "status": "online"})
    panda_server.add_job(definition)
    status, stderr, _ = _run_pilot(tmp_path, ["--url", panda_server.url, "--api", "v1", "--output-dir",
                                              str(tmp_path / "storage"), "--heartbeat", "0.2"])
    assert status == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "code=1319" not in stderr, stderr[-3000:]
    final = final_update(panda_server.updates(PANDA_ID))
    assert final["state"] in ("finished", "failed") and int(final["pilotErrorCode"]) != ErrorCode.INTERNALPILOTPROBLEM
    assert "metaData" not in final or '"x"' not in str(final["metaData"])
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
