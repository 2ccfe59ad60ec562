"""The dev server's monitor page (``GET /monitor``, ``panda_devserver/monitor.py``), for real: three jobs run by the
real grid pilot against a :class:`DevServer` (one finishes, one fails for a missing output: 1165
``MISSINGOUTPUTFILE``, one event-service job of six ranges of which the payload fails one), then the page is read
over HTTP and rendered by headless Chromium (Debian's ``chromium``: ``--dump-dom`` for the DOM it built,
``--screenshot`` for the pixels it drew).

``pilotTiming`` is ``getjob|stagein|payload|stageout|initial_setup|setup`` in whole seconds
(``pilotlib/report.py`` ``pilot_timing``; pilot3 ``pilot/util/timing.py`` ``get_time_measurement`` reports the same
six); the ``xml`` field is pilot3's file info (``pilot/control/data.py`` ``generate_fileinfo``).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from tests.e2e.helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration

FAILING_RANGE = "1-7003-1-4-1"
CHROMIUM_TIMEOUT = 120.0
PILOT_TIMEOUT = 120.0
REPO = Path(__file__).resolve().parents[2]


def _es_job(panda_id: int, *knobs: str) -> dict[str, str]:
    job = job_definition(panda_id)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": sys.executable,
                "jobPars": " ".join(["-m", "pilotlib.eventservice.reference_payload", *knobs])})
    return job


def _run_pilot(server: DevServer, work: Path, batch_id: str) -> None:
    """One grid pilot process (its own ``pilotID``, ``grid-pilot-<pid>``) in a "batch job" ``batch_id``
    (``SLURM_JOB_ID``, the pilot's ``batchID``)."""
    make_inputs(work / "in")
    command = [sys.executable, "-m", "apps.grid_pilot", "-q", "MON_QUEUE", "--url", server.url, "--api", "v1",
               "-a", str(work / "work"), "--input-dir", str(work / "in"), "--output-dir", str(work / "storage"),
               "--copytool", "cp", "--heartbeat", "0.2"]
    env = {**os.environ, "SLURM_JOB_ID": batch_id, "PYTHONPATH": str(REPO)}
    subprocess.run(command, env=env, capture_output=True, timeout=PILOT_TIMEOUT, check=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A dev server on which three pilots ran 7001 (finishes), 7002 (fails: no output) and 7003 (event service)."""
    work = tmp_path_factory.mktemp("monitor")
    with DevServer(work / "server") as dev:
        dev.add_queue("MON_QUEUE", {"nickname": "MON_QUEUE", "state": "ACTIVE", "status": "online",
                                    "zip_time_gap": 1})
        dev.add_job(job_definition(7001, sleep=2.0))
        dev.add_job(job_definition(7002, env="NO_OUTPUT=1"))
        dev.add_job(_es_job(7003, "--fail", FAILING_RANGE))
        dev.add_event_ranges(7003, [{"startEvent": 10 * n + 1, "lastEvent": 10 * n + 10, "LFN": "in.dat",
                                     "GUID": "g1", "scope": "e2e"} for n in range(6)])
        for number in range(3):
            _run_pilot(dev, work / f"pilot{number}", f"batch-{number}")
        assert [dev.final_state(i) for i in (7001, 7002, 7003)] == ["finished", "failed", "finished"]
        yield dev


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _section(page: str, panda_id: int) -> str:
    match = re.search(rf'<section class="job" id="job-{panda_id}".*?</section>', page, re.S)
    assert match, f"no section for job {panda_id}"
    return match.group(0)


def _chromium(tmp_path: Path, *args: str) -> str:
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=True).stdout


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows (RGB(A) bytes) of an 8-bit non-interlaced PNG, as Chromium writes it."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    idat = b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        idat += body if kind == b"IDAT" else b""
        chunks.setdefault(kind, body)
        offset += 12 + length
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0
    size = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * size, [], bytes(width * size)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - size] if x >= size else 0
            b, c = previous[x], previous[x - size] if x >= size else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[x] = (line[x] + (0, a, b, (a + b) // 2, paeth)[kind]) & 0xFF
        rows.append(bytes(line) if size == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        previous = bytes(line)
    return width, height, rows


def test_the_page_lists_the_jobs_their_updates_timeline_transfers_and_ranges(server: DevServer) -> None:
    """``GET /monitor`` is HTML with every job: its state, the failing job's code and diagnostics, each job's updates
    in arrival order, a timeline segment per stage that took time, the final update's files, the ranges' states."""
    status, content_type, page = _get(f"{server.url}/monitor")
    assert status == 200 and content_type.startswith("text/html")
    assert _get(f"{server.url}/")[2] == page
    finished, failed, events = _section(page, 7001), _section(page, 7002), _section(page, 7003)
    assert 'class="state" style="background:#2e7d32">finished' in finished
    assert 'class="state" style="background:#c62828">failed' in failed
    assert f'<span class="code">{int(ErrorCode.MISSINGOUTPUTFILE)}</span>' in failed
    assert "output file out.dat not found" in failed
    states = re.findall(r'<td><span class="state"[^>]*>(\w+)</span></td>', finished.split("<h3>Updates</h3>")[1])
    assert states == [u["state"] for u in server.updates(7001)] and states[0] == "starting"
    assert re.search(r'data-stage="payload" data-seconds="[1-9]\d*"', finished)
    files_table = finished.split('<table class="files">')[1].split("</table>")[0]
    xml_files = re.findall(r"<tr><td>([\w.]+)</td>", files_table)
    assert xml_files == ["log.tgz", "out.dat"]
    assert "no event ranges" in finished
    ranges = dict(re.findall(r"<tr><td>([\d-]+)</td><td><span[^>]*>(\w+)</span>", events))
    assert ranges == server.event_range_statuses(7003) and ranges.pop(FAILING_RANGE) == "failed"
    assert set(ranges.values()) == {"finished"} and len(ranges) == 5
    pilots = [re.findall(r"(grid-pilot-\d+) on ([^ <]+) \(batch ([\w-]+)\)", _section(page, i).split("<h3>")[0])
              for i in (7001, 7002, 7003)]
    assert [p[0][2] for p in pilots] == ["batch-0", "batch-1", "batch-2"]  # one pilot each, by its batchID
    assert len({p[0][0] for p in pilots}) == 3 and all(len(p) == 1 for p in pilots)
    assert [(p[0][0], p[0][2]) for p in pilots] == [
        (str(server.updates(i)[0]["pilotID"]), str(server.updates(i)[0]["batchID"])) for i in (7001, 7002, 7003)]


def test_one_job_page_and_unknown_job(server: DevServer) -> None:
    """``/monitor/job/<PandaID>`` shows that job only; an unknown or malformed id is 404; a POST is 405."""
    status, _, page = _get(f"{server.url}/monitor/job/7002")
    assert status == 200 and 'id="job-7002"' in page and 'id="job-7001"' not in page
    assert _get(f"{server.url}/monitor/job/9999")[0] == 404
    assert _get(f"{server.url}/monitor/job/x%3Cy")[0] == 404
    request = urllib.request.Request(f"{server.url}/monitor", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 405


def test_pilot_fields_are_escaped_and_secrets_not_shown(tmp_path: Path) -> None:
    """A job name with markup is escaped; an update's token, proxy or password field is not shown and a token in
    the diagnostics is redacted (pilotlib's ``redact_text``)."""
    with DevServer(tmp_path / "server") as dev:
        dev.add_job({"PandaID": 42, "jobName": "<script>alert(1)</script>"})
        dev.store.record_update(42, {"state": "failed", "pilotErrorCode": 1099, "userProxy": "PROXYTEXT",
                                     "password": "PWTEXT", "pilotErrorDiag": "failed access_token=TOKTEXT <b>x</b>",
                                     "xml": '{"f<i>": {"fsize": 1, "secret_key": "SKTEXT"}}'}, "holding")
        page = _get(f"{dev.url}/monitor")[2]
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "f&lt;i&gt;" in page
    for secret in ("PROXYTEXT", "PWTEXT", "TOKTEXT", "SKTEXT"):
        assert secret not in page


def test_chromium_renders_bars_codes_and_ranges(server: DevServer, tmp_path: Path) -> None:
    """Headless Chromium builds the page's DOM with the finished job's timeline segments (non-zero widths), the
    failing job's error code and the ranges' states, and draws the payload segment (its green fills most of the
    bar's width on the screenshot)."""
    dom = _chromium(tmp_path, "--dump-dom", f"{server.url}/monitor")
    finished, failed, events = _section(dom, 7001), _section(dom, 7002), _section(dom, 7003)
    widths = [float(w) for w in re.findall(r'class="seg"[^>]*style="width:\s*([\d.]+)%', finished)]
    assert widths and all(w > 0 for w in widths) and abs(sum(widths) - 100) < 0.1
    assert f">{int(ErrorCode.MISSINGOUTPUTFILE)}</span>" in failed
    assert events.count(">finished</span></td></tr>") == 5 and events.count(">failed</span></td></tr>") == 1
    shot = tmp_path / "monitor.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", f"{server.url}/monitor/job/7001")
    width, _height, rows = _png_pixels(shot)
    payload_green = bytes((0x43, 0xA0, 0x47))
    widest = max(sum(row[x * 3:x * 3 + 3] == payload_green for x in range(width)) for row in rows)
    assert widest > 0.5 * 900 * 0.9  # the bar is 900 CSS px wide; the payload took most of the job's time


def test_a_database_from_before_arrival_times_is_upgraded(tmp_path: Path) -> None:
    """A ``panda.sqlite`` written before updates kept their arrival time gets the column on opening: its old
    updates have no time (None, shown ``-``), new ones have one."""
    import sqlite3  # noqa: PLC0415 - only this test writes the old schema

    with sqlite3.connect(tmp_path / "panda.sqlite") as db:
        db.execute("CREATE TABLE updates (id INTEGER PRIMARY KEY AUTOINCREMENT, panda_id INTEGER NOT NULL, "
                   "fields TEXT NOT NULL)")
        db.execute("INSERT INTO updates (panda_id, fields) VALUES (1, '{\"state\": \"starting\"}')")
    with DevServer(tmp_path) as dev:
        dev.add_job({"PandaID": 1, "jobName": "old"})
        dev.store.record_update(1, {"state": "running"}, "running")
        times = dev.store.update_times(1)
        states = [u["state"] for u in dev.updates(1)]
        page = _get(f"{dev.url}/monitor/job/1")[2]
    assert times[0] is None and isinstance(times[1], float)
    assert states == ["starting", "running"]
    assert "<td>1</td><td>-</td>" in page
