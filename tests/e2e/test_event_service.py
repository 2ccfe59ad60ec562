"""The event service end to end, for real: the grid pilot against the local PanDA server, which serves event
ranges (``event/acquire_event_ranges``) and records their updates as panda-server does; the reference payload
(``python -m pilotlib.eventservice.reference_payload``) over the real channel; the ranges' outputs tarred, stored
in the output place and reported zipped (``updateEventRanges`` version 1).

The workflow is chosen from the job definition (``eventService``), as pilot3 does (``pilot/control/payload.py``
``get_payload_executor``: ``job.is_eventservice``), with no option.
"""

from __future__ import annotations

import json
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.transfer.paths import deterministic_path

from .helpers import es_job, es_ranges, final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration

PAYLOAD = f"{sys.executable} -m pilotlib.eventservice.reference_payload"


def _run(server: DevServer, tmp_path: Path, *extra: str, api: str = "v1") -> int:
    make_inputs(tmp_path / "in")
    server.add_queue("ES_QUEUE", {"nickname": "ES_QUEUE", "state": "ACTIVE", "status": "online",
                                  "zip_time_gap": 1})
    return main(["-q", "ES_QUEUE", "--url", server.url, "--api", api, "-a", str(tmp_path / "work"),
                 "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
                 "--heartbeat", "0.2", *extra])


def _stored_members(tmp_path: Path) -> dict[str, str]:
    """Every range output in the stored tars: member name -> content."""
    members: dict[str, str] = {}
    for tar_path in (tmp_path / "storage").rglob("EventService_premerge_*.tar"):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                assert handle is not None
                members[member.name] = handle.read().decode()
    return members


@pytest.mark.parametrize("api", ["v1", "legacy"])
def test_a_job_of_100_ranges_finishes_them_all(panda_legacy: DevServer, tmp_path: Path, api: str) -> None:
    """100 ranges, in both dialects (``event/acquire_event_ranges`` and ``getEventRanges``): every one is reported
    finished exactly once, with a zipFile that names a stored tar holding its output; the job is finished; only
    the log is staged out as a job output (``panda_legacy`` serves both dialects)."""
    panda_server = panda_legacy
    panda_server.add_job(es_job(9701))
    panda_server.add_event_ranges(9701, es_ranges(100))
    status = _run(panda_server, tmp_path, api=api)
    final = final_update(panda_server.updates(9701))
    assert final["state"] == "finished", final.get("pilotErrorDiag")
    assert status == 0
    statuses = panda_server.event_range_statuses(9701)
    assert len(statuses) == 100 and set(statuses.values()) == {"finished"}
    updates = panda_server.event_range_updates(9701)
    finished_ids = [u["eventRangeID"] for u in updates if u.get("eventStatus") == "finished"]
    assert sorted(finished_ids) == sorted(statuses)  # none twice
    zips = panda_server.zip_files(9701)
    assert zips and sum(int(z["numEvents"]) for z in zips.values()) == 100
    members = _stored_members(tmp_path)
    assert len(members) == 100
    first = next(iter(sorted(statuses)))
    assert any(first in name for name in members)
    assert not (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).exists()
    assert set(json.loads(str(final["xml"]))) == {"log.tgz"}


@pytest.mark.reliability("faults", "event service", "payload fails one range: that range failed, the rest finished")
def test_a_failing_range_is_reported_failed_and_the_rest_finish(panda_server: DevServer, tmp_path: Path) -> None:
    """The payload fails one range (``ERR_... <id>: ...``): that range is failed with an errorCode, the other
    nine finished, the job finished."""
    failing = "1-9702-1-4-1"
    panda_server.add_job(es_job(9702, "--fail", failing))
    panda_server.add_event_ranges(9702, es_ranges(10))
    _run(panda_server, tmp_path)
    statuses = panda_server.event_range_statuses(9702)
    assert statuses.pop(failing) == "failed"
    assert set(statuses.values()) == {"finished"} and len(statuses) == 9
    assert final_update(panda_server.updates(9702))["state"] == "finished"


def test_no_ranges_is_esnoevents(panda_server: DevServer, tmp_path: Path) -> None:
    """A job the server has no ranges for fails with ESNOEVENTS (1238)."""
    panda_server.add_job(es_job(9703))
    _run(panda_server, tmp_path)
    final = final_update(panda_server.updates(9703))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.ESNOEVENTS


@pytest.mark.parametrize(("knob", "code"), [("--garbage-after", ErrorCode.MESSAGEHANDLINGFAILURE),
                                            ("--crash-after", ErrorCode.PAYLOADEXECUTIONFAILURE)])
@pytest.mark.reliability("faults", "event service",
                         "payload sends garbage or crashes mid-range: job failed, held range failed")
def test_a_broken_payload_fails_the_job_and_the_ranges_it_held(panda_server: DevServer, tmp_path: Path,
                                                               knob: str, code: ErrorCode) -> None:
    """A payload that sends garbage after 3 ranges (MESSAGEHANDLINGFAILURE 1240), or crashes on its fourth
    (the payload's failure): the job fails with that code; the three done ranges are finished, the one it held is
    failed, the rest were never given (still ``ready`` on the server, or ``sent`` and unreported)."""
    panda_server.add_job(es_job(9704, knob, "3"))
    panda_server.add_event_ranges(9704, es_ranges(10))
    _run(panda_server, tmp_path)
    final = final_update(panda_server.updates(9704))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == code, final.get("pilotErrorDiag")
    values = list(panda_server.event_range_statuses(9704).values())
    assert values.count("finished") == 3
    assert values.count("failed") <= 1 and "finished" not in values[3:]


def test_a_merge_job_unpacks_its_range_outputs_and_reads_the_list(panda_server: DevServer, tmp_path: Path) -> None:
    """An event-service merge job (``eventServiceMerge``) whose input is ``zip://premerge.tar`` (panda-server's
    name for an archive of range outputs; pilot3 ``pilot/info/filespec.py`` ``clean`` drops the prefix) and whose
    ``writeToFile`` lists the members: the tar is unpacked in the work directory, ``inputFor_out.txt`` holds the
    option and the members (pilot3 ``pilot/info/jobdata.py`` ``process_writetofile``), ``--inputFile=@inputFor_out``
    becomes ``@inputFor_out.txt``; the payload concatenates the listed files into the staged-out output."""
    inputs = make_inputs(tmp_path / "in")
    for name, text in (("r1.out", "range one\n"), ("r2.out", "range two\n")):
        (tmp_path / name).write_text(text)
    with tarfile.open(inputs / "premerge.tar", "w") as tar:
        for name in ("r1.out", "r2.out"):
            tar.add(tmp_path / name, arcname=name)
    data = (inputs / "premerge.tar").read_bytes()
    job = job_definition(9705)
    job.update({"eventServiceMerge": "True", "inFiles": "zip://premerge.tar", "scopeIn": "e2e", "GUID": "g1",
                "fsize": str(len(data)), "checksum": f"ad:{zlib.adler32(data) & 0xFFFFFFFF:08x}",
                "ddmEndPointIn": "LOCAL", "writeToFile": "inputFor_out:r1.out,r2.out", "transformation": "/bin/sh",
                "jobPars": """-c 'tail -n +2 "${1#@}" | while read f; do cat "$f"; done > out.dat' merge """
                           "--inputFile=@inputFor_out"})
    panda_server.add_job(job)
    _run(panda_server, tmp_path)
    final = final_update(panda_server.updates(9705))
    assert final["state"] == "finished", final.get("pilotErrorDiag")
    out = tmp_path / "storage" / deterministic_path("e2e", "out.dat")
    assert out.read_text() == "range one\nrange two\n"
