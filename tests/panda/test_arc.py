"""The NorduGrid/ARC launch directory: job file in, ``heartbeat.json`` and ``output.list`` out."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.panda._file_errors import BrokenJobFileError, OutputInfoError
from pilotlib.panda.arc import ArcJobSource, ArcOutput, ArcReporter, Consume, output_list_entries
from pilotlib.panda.base import JobReporter, JobRequest, JobSource, JobUpdate, UpdateAnswer

REPO = Path(__file__).resolve().parents[2]
REQUEST = JobRequest(site_name="ARC-SITE", queue="ARC-QUEUE")
XML = {
    "HITS.31000001._000001.pool.root.1": {
        "guid": "11111111-2222-3333-4444-555555555555",
        "fsize": 1024,
        "adler32": "0a1b2c3d",
        "surl": "srm://se.example.org:8443/atlas/HITS.31000001._000001.pool.root.1",
        "endpoint": "EXAMPLE_DATADISK",
    },
    "log.31000001._000001.job.log.tgz.1": {
        "guid": "66666666-7777-8888-9999-000000000000",
        "fsize": 99,
        "adler32": "00ff00ff",
        "surl": "davs://se.example.org:443/atlas/log.31000001._000001.job.log.tgz.1",
    },
}


@pytest.fixture
def launch_dir(tmp_path: Path) -> Path:
    """The CE's session directory with the url-encoded job definition ``pandaJobData.out``."""
    params = json.loads((REPO / "examples" / "jobs" / "production.json").read_text())
    (tmp_path / "pandaJobData.out").write_text(urllib.parse.urlencode(params))
    return tmp_path


def test_implements_the_interfaces(launch_dir: Path) -> None:
    """The ARC classes satisfy the same protocols the dispatcher client implements."""
    assert isinstance(ArcJobSource(launch_dir), JobSource)
    assert isinstance(ArcReporter(launch_dir), JobReporter)


def test_job_read_once_and_file_removed(launch_dir: Path) -> None:
    """The job comes from pandaJobData.out, which is then removed; a second call has no job."""
    source = ArcJobSource(launch_dir)
    (job,) = source.get_jobs(REQUEST)
    assert job.panda_id == 6100000001
    assert not (launch_dir / "pandaJobData.out").exists()
    assert source.get_jobs(REQUEST) == ()


def test_configured_name_and_rename(tmp_path: Path) -> None:
    """A JSON job file with a configured name is read and, with Consume.RENAME, kept as ``.read``."""
    raw = (REPO / "examples" / "jobs" / "production.json").read_text()
    (tmp_path / "job.json").write_text(raw)
    (job,) = ArcJobSource(tmp_path, job_file="job.json", consume=Consume.RENAME).get_jobs(REQUEST)
    assert job.panda_id == 6100000001
    assert (tmp_path / "job.json.read").read_text() == raw


def test_missing_job_file_gives_no_job(tmp_path: Path) -> None:
    """Without a job file there is no job (and no exception)."""
    assert ArcJobSource(tmp_path).get_jobs(REQUEST) == ()


def test_empty_job_file_is_a_definition_error(tmp_path: Path) -> None:
    """An empty job file (pilot3 treats it as fatal) is a BrokenJobFileError (CONVERSIONFAILURE) after the wait."""
    (tmp_path / "pandaJobData.out").write_text("")
    with pytest.raises(BrokenJobFileError) as caught:
        ArcJobSource(tmp_path, read_timeout=0.1).get_jobs(REQUEST)
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE


def test_heartbeat_written_at_every_update(tmp_path: Path) -> None:
    """Each update replaces heartbeat.json with the would-be updateJob dictionary; no server call is made."""
    reporter = ArcReporter(tmp_path)
    assert reporter.update_job(JobUpdate(61, "starting", {"node": "wn1"})) == UpdateAnswer(accepted=True)
    reporter.update_job(JobUpdate(61, "running", {"node": "wn1", "cpuConsumptionTime": 5}))
    assert json.loads((tmp_path / "heartbeat.json").read_text()) == {
        "node": "wn1",
        "cpuConsumptionTime": 5,
        "jobId": 61,
        "state": "running",
    }
    assert sorted(os.listdir(tmp_path)) == ["heartbeat.json"]


def test_final_update_writes_output_list(tmp_path: Path) -> None:
    """The final update lists every output from its xml field in output.list, in pilot3's line format."""
    reporter = ArcReporter(tmp_path)
    reporter.update_job(JobUpdate(61, "finished", {"xml": json.dumps(XML), "pilotErrorCode": 0}, final=True))
    assert (tmp_path / "output.list").read_text() == (
        "HITS.31000001._000001.pool.root.1 srm://se.example.org:8443/atlas/HITS.31000001._000001.pool.root.1"
        ":checksumtype=adler32:checksumvalue=0a1b2c3d\n"
        "log.31000001._000001.job.log.tgz.1 davs://se.example.org:443/atlas/log.31000001._000001.job.log.tgz.1"
        ":checksumtype=adler32:checksumvalue=00ff00ff\n"
    )
    assert json.loads((tmp_path / "heartbeat.json").read_text())["state"] == "finished"


def test_output_list_keeps_other_lines_and_replaces_same_lfn(tmp_path: Path) -> None:
    """Lines of other files already in output.list stay; a line for the same LFN is replaced."""
    (tmp_path / "output.list").write_text("other.root root://x//other.root:checksumtype=adler32:checksumvalue=1\n")
    reporter = ArcReporter(tmp_path)
    reporter.write_output_list([ArcOutput("a.root", "root://x//a", "adler32", "00000001")])
    reporter.write_output_list([ArcOutput("a.root", "root://x//a2", "md5", "0" * 32)])
    assert (tmp_path / "output.list").read_text().splitlines() == [
        "other.root root://x//other.root:checksumtype=adler32:checksumvalue=1",
        f"a.root root://x//a2:checksumtype=md5:checksumvalue={'0' * 32}",
    ]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "object by LFN"),
        ({"a.root": {"adler32": "01"}}, "no usable destination URL"),
        ({"a.root": {"surl": "root://x//a b", "adler32": "01"}}, "no usable destination URL"),
        ({"a.root": {"surl": "root://x//a"}}, "no adler32 or md5"),
    ],
)
def test_bad_output_info_is_badxml(tmp_path: Path, xml: object, message: str) -> None:
    """Malformed output information is an OutputInfoError (BADXML) and no file is written."""
    with pytest.raises(OutputInfoError, match=message) as caught:
        ArcReporter(tmp_path).update_job(JobUpdate(61, "finished", {"xml": xml}, final=True))
    assert caught.value.code == ErrorCode.BADXML == 1247
    assert os.listdir(tmp_path) == []


def test_output_entries_from_mapping() -> None:
    """output_list_entries accepts the xml field as a mapping too."""
    entries = output_list_entries(XML)
    assert entries[0] == ArcOutput(
        lfn="HITS.31000001._000001.pool.root.1",
        url="srm://se.example.org:8443/atlas/HITS.31000001._000001.pool.root.1",
        checksum_type="adler32",
        checksum="0a1b2c3d",
    )
