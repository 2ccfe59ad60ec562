"""Harvester's shared-file protocol: the job source and the reporter against files laid out as Harvester does.

A thread or plain function below plays Harvester, writing files the way
``pandaharvester/harvestermessenger/shared_file_messenger.py`` does (plain ``open(..., "w")``, no temporary file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from pilotlib.errors import ErrorCode, JobDefinitionError, MissingFieldError
from pilotlib.panda import _jobfile, harvester
from pilotlib.panda._file_errors import BrokenJobFileError, LaunchDirFileError, LaunchDirFormatError
from pilotlib.panda.base import JobReporter, JobRequest, JobSource, JobUpdate, UpdateAnswer
from pilotlib.panda.harvester import Consume, HarvesterFiles, HarvesterJobSource, HarvesterReporter, StageOutFile

REPO = Path(__file__).resolve().parents[2]
REQUEST = JobRequest(site_name="SITE", queue="QUEUE")
FAST = {"poll_interval": 0.02, "read_timeout": 5.0}


def definition(panda_id: int) -> dict[str, Any]:
    """A realistic job definition (the shipped production example) with another PandaID."""
    params = json.loads((REPO / "examples" / "jobs" / "production.json").read_text())
    params["PandaID"] = panda_id
    return params


def harvester_feed(ap: Path, panda_ids: list[int], *, cgi: bool = False, per_job_dirs: bool = False) -> None:
    """Feed jobs as ``SharedFileMessenger.feed_jobs`` does: job files, the PandaID list, then drop the request."""
    for panda_id in panda_ids:
        job_dir = ap / str(panda_id) if per_job_dirs else ap
        job_dir.mkdir(exist_ok=True)
        with open(job_dir / "HPCJobs.json", "w") as handle:
            params = definition(panda_id)
            handle.write(urllib.parse.urlencode(params) if cgi else json.dumps({panda_id: params}))
    with open(ap / "worker_pandaids.json", "w") as handle:
        json.dump(panda_ids, handle)
    (ap / "worker_requestjob.json").unlink(missing_ok=True)


class ReadSpy:
    """Wraps the real reader of the job file: signals the first read and holds later reads until ``gate`` is set,
    so the test decides exactly when Harvester's write completes relative to the pilot's reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.first = threading.Event()
        self.gate = threading.Event()
        self.count = 0
        real = _jobfile._read_bytes

        def spying(path: Path) -> bytes | None:
            if self.count:
                assert self.gate.wait(10)
            data = real(path)
            self.count += 1
            self.first.set()
            return data

        monkeypatch.setattr(_jobfile, "_read_bytes", spying)


# ---------------------------------------------------------------------------------------------------- job source
def test_source_and_reporter_implement_the_interfaces(ap: Path) -> None:
    """The Harvester classes satisfy the same protocols the dispatcher client implements."""
    files = HarvesterFiles(ap)
    assert isinstance(HarvesterJobSource(files), JobSource)
    assert isinstance(HarvesterReporter(files), JobReporter)


def test_first_job_read_from_json_wrapper_and_renamed(ap: Path) -> None:
    """The pre-placed ``{"<PandaID>": {...}}`` file is parsed and renamed to ``HPCJobs.json.read``."""
    harvester_feed(ap, [7001])
    source = HarvesterJobSource(HarvesterFiles(ap), **FAST)
    (job,) = source.get_jobs(REQUEST)
    assert job.panda_id == 7001
    assert [f.lfn for f in job.inputs] == ["EVNT.36000001._000001.pool.root.1"]
    assert not (ap / "HPCJobs.json").exists()
    assert json.loads((ap / "HPCJobs.json.read").read_text())["7001"]["PandaID"] == 7001


def test_first_job_read_from_urlencoded_file_and_removed(ap: Path) -> None:
    """A ``cgi``-format job file is parsed; with Consume.REMOVE it is deleted as pilot3 does."""
    harvester_feed(ap, [7002], cgi=True)
    source = HarvesterJobSource(HarvesterFiles(ap), consume=Consume.REMOVE, **FAST)
    (job,) = source.get_jobs(REQUEST)
    assert job.panda_id == 7002 and job.task_id == 31000001
    assert sorted(os.listdir(ap)) == ["worker_pandaids.json"]


def test_configured_job_file_name(ap: Path) -> None:
    """The job file name comes from the settings (Harvester's fallback ``pandaJobData.out``)."""
    with open(ap / "pandaJobData.out", "w") as handle:
        handle.write(urllib.parse.urlencode(definition(7003)))
    (ap / "worker_pandaids.json").write_text("[7003]")
    source = HarvesterJobSource(HarvesterFiles(ap, job_file="pandaJobData.out"), **FAST)
    assert [job.panda_id for job in source.get_jobs(REQUEST)] == [7003]
    assert (ap / "pandaJobData.out.read").exists()


@pytest.mark.reliability("faults", "harvester", "half-written JSON job file: read again until complete")
def test_half_written_json_job_file_is_read_again(ap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job file cut in the middle is not an error: the source reads it again until Harvester finishes it."""
    text = json.dumps({"7004": definition(7004)})
    (ap / "worker_pandaids.json").write_text("[7004]")
    handle = open(ap / "HPCJobs.json", "w")  # noqa: SIM115 - Harvester's non-atomic write, finished below
    handle.write(text[: len(text) // 2])
    handle.flush()
    spy = ReadSpy(monkeypatch)
    result: list[Any] = []
    source = HarvesterJobSource(HarvesterFiles(ap), **FAST)
    reader = threading.Thread(target=lambda: result.append(source.get_jobs(REQUEST)))
    reader.start()
    assert spy.first.wait(10)
    handle.write(text[len(text) // 2 :])
    handle.close()
    spy.gate.set()
    reader.join(10)
    assert not reader.is_alive()
    (jobs,) = result
    assert [job.panda_id for job in jobs] == [7004]
    assert spy.count >= 2


@pytest.mark.reliability("faults", "harvester",
                         "half-written url-encoded job file: not taken until its PandaID is listed")
def test_half_written_urlencoded_file_waits_for_the_rest(ap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A url-encoded file cut after ``PandaID=70`` parses, but is not taken until ``worker_pandaids.json``, written
    after the job file (``feed_jobs``), lists its PandaID."""
    text = urllib.parse.urlencode(definition(7005))
    cut = text.index("PandaID=") + len("PandaID=70")
    handle = open(ap / "HPCJobs.json", "w")  # noqa: SIM115 - Harvester's non-atomic write, finished below
    handle.write(text[:cut])
    handle.flush()
    spy = ReadSpy(monkeypatch)
    result: list[Any] = []
    source = HarvesterJobSource(HarvesterFiles(ap), poll_interval=0.02, read_timeout=10.0)
    reader = threading.Thread(target=lambda: result.append(source.get_jobs(REQUEST)))
    reader.start()
    assert spy.first.wait(10)
    handle.write(text[cut:])
    handle.close()
    (ap / "worker_pandaids.json").write_text("[7005]")
    spy.gate.set()
    reader.join(15)
    (jobs,) = result
    assert [job.panda_id for job in jobs] == [7005]
    assert spy.count >= 2  # partial, then complete


@pytest.mark.reliability("faults", "harvester", "job file left truncated: BrokenJobFileError after the deadline")
def test_job_file_still_broken_after_deadline_is_an_error(ap: Path) -> None:
    """A job file that stays truncated is a BrokenJobFileError (CONVERSIONFAILURE) naming the file."""
    (ap / "HPCJobs.json").write_text('{"7006": {"PandaID": 70')
    source = HarvesterJobSource(HarvesterFiles(ap), poll_interval=0.02, read_timeout=0.2)
    with pytest.raises(BrokenJobFileError) as caught:
        source.get_jobs(REQUEST)
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE == 1302
    assert caught.value.field == str(ap / "HPCJobs.json")
    assert "JSON is incomplete" in str(caught.value)
    assert caught.value.value == "<23 bytes>"  # the size, never the text (a definition may hold secrets)
    assert (ap / "HPCJobs.json").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b'{"7010": {"PandaID": 7010, "jobName": "caf\xe9 au lait"}}', "not UTF-8 text"),
     (b'{"7010": {"PandaID": 7010, "deep": ' + b"[" * 10000 + b"]" * 10000 + b"}}", "JSON nested too deeply"),
     (b'{"7010": {"PandaID": 7010,, "jobName": "x"}}', "Expecting property name"),
     (b"PandaID=7010&jobName=caf\xe9&attemptNr=1", "not UTF-8 text")],
    ids=["not-utf8", "nested-10000-deep", "syntax-error-inside", "not-utf8-urlencoded"],
)
@pytest.mark.reliability("faults", "harvester",
                         "invalid job file (not UTF-8, syntax error, nested 10000 deep): fails at once")
def test_job_file_broken_before_its_end_fails_at_once(ap: Path, content: bytes, reason: str) -> None:
    """A job file that more writing cannot repair (a byte that is not UTF-8, a syntax error before the end, JSON
    nested 10000 deep) is a BrokenJobFileError (CONVERSIONFAILURE) at the first read, not after the reading deadline:
    ``feed_jobs`` writes with ``open(..., "w")`` and ``json.dump``, so a file being written is a prefix of valid JSON,
    and these are not."""
    (ap / "HPCJobs.json").write_bytes(content)
    (ap / "worker_pandaids.json").write_text("[7010]")
    spy_reads: list[float] = []
    real = _jobfile._read_bytes

    def counting(path: Path) -> bytes | None:
        spy_reads.append(time.monotonic())
        return real(path)

    source = HarvesterJobSource(HarvesterFiles(ap), poll_interval=0.02, read_timeout=8.0)
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_jobfile, "_read_bytes", counting)
        with pytest.raises(BrokenJobFileError, match=reason) as caught:
            source.get_jobs(REQUEST)
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE
    assert caught.value.field == str(ap / "HPCJobs.json") and caught.value.value == f"<{len(content)} bytes>"
    assert len(spy_reads) == 1 and time.monotonic() - started < 5.0


@pytest.mark.reliability("faults", "harvester", "job file cut inside a UTF-8 character: read again")
def test_job_file_cut_inside_a_character_is_read_again(ap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose last bytes are the start of a multi-byte UTF-8 character (Harvester still writing) is read again,
    and taken once complete."""
    params = {**definition(7011), "jobName": "caf\u00e9 \u20ac"}
    text = json.dumps({"7011": params}, ensure_ascii=False).encode()
    cut = text.index("\u20ac".encode()) + 1
    (ap / "worker_pandaids.json").write_text("[7011]")
    handle = open(ap / "HPCJobs.json", "wb")  # noqa: SIM115 - Harvester's non-atomic write, finished below
    handle.write(text[:cut])
    handle.flush()
    spy = ReadSpy(monkeypatch)
    result: list[Any] = []
    source = HarvesterJobSource(HarvesterFiles(ap), **FAST)
    reader = threading.Thread(target=lambda: result.append(source.get_jobs(REQUEST)))
    reader.start()
    assert spy.first.wait(10)
    handle.write(text[cut:])
    handle.close()
    spy.gate.set()
    reader.join(10)
    assert not reader.is_alive()
    (jobs,) = result
    assert [job.job_name for job in jobs] == ["caf\u00e9 \u20ac"]
    assert spy.count >= 2


def test_complete_but_bad_definition_fails_at_once(ap: Path) -> None:
    """A complete job file with no PandaID is the job model's error (NOTDEFINED), without waiting."""
    (ap / "HPCJobs.json").write_text(json.dumps({"jobName": "x"}))
    source = HarvesterJobSource(HarvesterFiles(ap), poll_interval=0.02, read_timeout=60.0)
    with pytest.raises(MissingFieldError) as caught:
        source.get_jobs(REQUEST)
    assert isinstance(caught.value, JobDefinitionError)
    assert caught.value.code == ErrorCode.NOTDEFINED


@pytest.mark.reliability("faults", "harvester", "job file already renamed to .read: not run again")
def test_job_file_already_renamed_to_read_is_not_run_again(ap: Path) -> None:
    """Only ``HPCJobs.json.read`` (a job already taken) is there: no job, and the file is left alone."""
    harvester_feed(ap, [7007])
    os.rename(ap / "HPCJobs.json", ap / "HPCJobs.json.read")
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=0.1, **FAST)
    assert source.get_jobs(REQUEST) == ()
    assert (ap / "HPCJobs.json.read").exists()


def test_no_job_file_returns_empty_after_the_wait(ap: Path) -> None:
    """Without a job file the source returns an empty sequence when ``wait_timeout`` passes."""
    assert HarvesterJobSource(HarvesterFiles(ap), wait_timeout=0.05, **FAST).get_jobs(REQUEST) == ()


def test_stop_event_ends_the_wait(ap: Path) -> None:
    """A set stop event makes a waiting call return no job at once (long wait_timeout never reached)."""
    stop = threading.Event()
    stop.set()
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=3600, stop=stop, **FAST)
    assert source.get_jobs(REQUEST) == ()


def test_two_jobs_through_the_request_next_job_cycle(ap: Path) -> None:
    """After the first job the source writes ``{"nJobs": 2}``, a thread playing Harvester feeds the next job."""
    harvester_feed(ap, [7101])
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=20, **FAST)
    assert [job.panda_id for job in source.get_jobs(REQUEST)] == [7101]
    requests: list[Any] = []

    def play_harvester() -> None:
        request = ap / "worker_requestjob.json"
        for _ in range(2000):
            if request.exists():
                requests.append(json.loads(request.read_text()))
                harvester_feed(ap, [7102])
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=play_harvester)
    thread.start()
    jobs = source.get_jobs(JobRequest(site_name="SITE", queue="QUEUE", n_jobs=2))
    thread.join(10)
    assert [job.panda_id for job in jobs] == [7102]
    assert requests == [{"nJobs": 2}]
    assert not (ap / "worker_requestjob.json").exists()
    assert json.loads((ap / "HPCJobs.json.read").read_text())["7102"]["PandaID"] == 7102


def test_pilot_removes_request_file_when_it_finds_a_new_job(ap: Path) -> None:
    """If Harvester places the job but leaves the request, the source deletes the request itself."""
    harvester_feed(ap, [7201])
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=5, **FAST)
    source.get_jobs(REQUEST)
    with open(ap / "HPCJobs.json", "w") as handle:  # Harvester wrote the job but has not yet removed the request
        json.dump({"7202": definition(7202)}, handle)
    (ap / "worker_pandaids.json").write_text("[7202]")
    (job,) = source.get_jobs(REQUEST)
    assert job.panda_id == 7202
    assert not (ap / "worker_requestjob.json").exists()


def test_per_job_dirs_rank_takes_its_entry(ap: Path) -> None:
    """With per-job directories rank i reads ``<ap>/<worker_pandaids.json[i]>/HPCJobs.json``."""
    harvester_feed(ap, [7301, 7302, 7303], per_job_dirs=True)
    files = HarvesterFiles(ap, per_job_dirs=True)
    (job,) = HarvesterJobSource(files, rank=1, **FAST).get_jobs(REQUEST)
    assert job.panda_id == 7302
    assert (ap / "7302" / "HPCJobs.json.read").exists()
    assert (ap / "7301" / "HPCJobs.json").exists() and (ap / "7303" / "HPCJobs.json").exists()


def test_shared_multi_job_file_rank_takes_its_pandaid(ap: Path) -> None:
    """One file with several jobs: rank i takes the PandaID at entry i of the list and leaves the file for others."""
    with open(ap / "HPCJobs.json", "w") as handle:
        json.dump({str(i): definition(i) for i in (7401, 7402)}, handle)
    with open(ap / "worker_pandaids.json", "w") as handle:
        json.dump([7402, 7401], handle)
    (job,) = HarvesterJobSource(HarvesterFiles(ap), rank=0, **FAST).get_jobs(REQUEST)
    assert job.panda_id == 7402
    assert (ap / "HPCJobs.json").exists()


@pytest.mark.reliability("faults", "harvester", "unsafe file name setting ('../HPCJobs.json'): refused")
def test_bad_file_name_setting_refused(ap: Path) -> None:
    """A file name with a path separator is refused when the settings are built."""
    with pytest.raises(ValueError, match="plain file name"):
        HarvesterFiles(ap, job_file="../HPCJobs.json")


@pytest.mark.reliability("faults", "harvester", "unsafe PandaID ('../x') as a per-job directory: refused")
def test_non_numeric_panda_id_cannot_name_a_directory(ap: Path) -> None:
    """A PandaID that is not a number never becomes a per-job directory path (LaunchDirFormatError)."""
    with pytest.raises(LaunchDirFormatError) as caught:
        HarvesterFiles(ap, per_job_dirs=True).job_dir("../x")
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE


# ------------------------------------------------------------------------------------------------------ reporter
def test_heartbeat_update_writes_camelcase_attributes_and_touches_heartbeat(ap: Path) -> None:
    """A heartbeat writes worker_attributes.json with camelCase fields and jobStatus, and worker_heartbeat.json."""
    reporter = HarvesterReporter(HarvesterFiles(ap))
    update = JobUpdate(7501, "running", {"cpuConsumptionTime": 12, "max_rss": 2048, "jobMetrics": "coreCount=8"})
    assert reporter.update_job(update) == UpdateAnswer(accepted=True)
    attributes = json.loads((ap / "worker_attributes.json").read_text())
    assert attributes == {
        "cpuConsumptionTime": 12,
        "maxRss": 2048,
        "jobMetrics": "coreCount=8",
        "jobId": 7501,
        "state": "running",
        "jobStatus": "running",
    }
    assert json.loads((ap / "worker_heartbeat.json").read_text())["time"] > 0
    assert not (ap / "jobReport.json").exists()


def test_a_reporter_without_heartbeats_leaves_the_workers_heartbeat_to_another_writer(ap: Path) -> None:
    """``heartbeats=False`` (an HPC rank other than 0): the job's attributes are written, the worker's one
    ``worker_heartbeat.json`` is not touched (Harvester's ``is_alive`` reads only its modification time,
    ``shared_file_messenger.py`` l.768-800, so one writer per worker is enough)."""
    reporter = HarvesterReporter(HarvesterFiles(ap), heartbeats=False)
    reporter.update_job(JobUpdate(7504, "running", {"cpuConsumptionTime": 1}))
    assert json.loads((ap / "worker_attributes.json").read_text())["jobStatus"] == "running"
    assert not (ap / "worker_heartbeat.json").exists()


def test_final_update_writes_job_report_before_attributes(ap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final update writes jobReport.json from metaData (log reports emptied), then the final jobStatus;
    ``xml`` is left out so that Harvester reports the outputs it staged out itself."""
    order: list[str] = []
    real = harvester.atomic_write_json

    def recording(path: Path, value: Any, what: str = "") -> None:
        order.append(path.name)
        real(path, value, what)

    monkeypatch.setattr(harvester, "atomic_write_json", recording)
    files = HarvesterFiles(ap, per_job_dirs=True)
    (ap / "7502").mkdir()
    report = {"exitCode": 0, "executor": [{"name": "EVNTtoHITS", "logfileReport": {"WARNING": 3}}]}
    xml = json.dumps({"HITS.1": {"guid": "g", "fsize": 1, "adler32": "00000001", "surl": "root://x//HITS.1"}})
    update = JobUpdate(7502, "finished", {"metaData": json.dumps(report), "pilotErrorCode": 0, "xml": xml}, final=True)
    HarvesterReporter(files).update_job(update)
    written = json.loads((ap / "7502" / "jobReport.json").read_text())
    assert written == {"exitCode": 0, "executor": [{"name": "EVNTtoHITS", "logfileReport": {}}]}
    attributes = json.loads((ap / "7502" / "worker_attributes.json").read_text())
    assert attributes == {"pilotErrorCode": 0, "jobId": 7502, "state": "finished", "jobStatus": "finished"}
    assert order == ["jobReport.json", "worker_attributes.json", "worker_heartbeat.json"]
    assert (ap / "worker_heartbeat.json").exists()


def test_unserialisable_field_is_a_clear_error(ap: Path) -> None:
    """A field JSON can not hold is a LaunchDirFormatError (CONVERSIONFAILURE), and nothing is written."""
    reporter = HarvesterReporter(HarvesterFiles(ap))
    with pytest.raises(LaunchDirFormatError) as caught:
        reporter.update_job(JobUpdate(7503, "running", {"startTime": object()}))
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE
    assert not (ap / "worker_attributes.json").exists()


def test_stageout_files_merge_with_existing_dump(ap: Path) -> None:
    """New stage-out entries are merged into an existing event_status.dump.json, never overwrite it."""
    reporter = HarvesterReporter(HarvesterFiles(ap))
    reporter.add_stageout_files(7601, [StageOutFile(path="/w/HITS.1", fsize=10, chksum="0000000a", guid="g1")])
    reporter.add_stageout_files(7601, [StageOutFile(path="/w/log.tgz", type="log", fsize=5)])
    document = json.loads((ap / "event_status.dump.json").read_text())
    assert document == {
        "7601": [
            {"path": "/w/HITS.1", "type": "output", "fsize": 10, "chksum": "0000000a", "guid": "g1"},
            {"path": "/w/log.tgz", "type": "log", "fsize": 5},
        ]
    }


def test_stageout_with_dump_read_by_harvester(ap: Path) -> None:
    """With ``event_status.dump.json.read`` present (Harvester working on it) the pilot leaves it untouched,
    writes a new plain file, and does not declare again a file Harvester already holds."""
    taken = {"7602": [{"path": "/w/HITS.1", "type": "output", "fsize": 10}]}
    with open(ap / "event_status.dump.json.read", "w") as handle:
        json.dump(taken, handle)
    reporter = HarvesterReporter(HarvesterFiles(ap))
    reporter.add_stageout_files(7602, [StageOutFile(path="/w/HITS.1", fsize=10), StageOutFile(path="/w/HITS.2")])
    assert json.loads((ap / "event_status.dump.json.read").read_text()) == taken
    assert json.loads((ap / "event_status.dump.json").read_text()) == {
        "7602": [{"path": "/w/HITS.2", "type": "output"}]
    }


def test_kill_worker_file_has_harvesters_name(ap: Path) -> None:
    """The end-of-worker marker is ``kill_worker.json`` (Harvester's killWorkerFile), not pilot3's ``kill_worker``."""
    HarvesterReporter(HarvesterFiles(ap)).kill_worker()
    assert (ap / "kill_worker.json").exists()
    assert not (ap / "kill_worker").exists()


def test_writes_are_atomic_no_temporary_files_left(ap: Path) -> None:
    """After updates and merges only the protocol files remain (temporary files were renamed into place), and the
    merge's lock file ``.event_status.dump.json.lock``, which stays (a removed lock file could be locked twice)."""
    reporter = HarvesterReporter(HarvesterFiles(ap))
    for state in ("starting", "running", "finished"):
        reporter.update_job(JobUpdate(7701, state, {"metaData": {"a": 1}}, final=state == "finished"))
    reporter.add_stageout_files(7701, [StageOutFile(path="/w/a")])
    assert sorted(os.listdir(ap)) == [
        ".event_status.dump.json.lock",
        "event_status.dump.json",
        "jobReport.json",
        "worker_attributes.json",
        "worker_heartbeat.json",
    ]
    assert oct((ap / "worker_attributes.json").stat().st_mode & 0o777) == "0o644"


@pytest.mark.reliability("faults", "harvester", "access point removed: LaunchDirFileError")
def test_write_into_missing_access_point_is_a_file_error(tmp_path: Path) -> None:
    """Writing into an access point that does not exist is a LaunchDirFileError (FILEHANDLINGFAILURE)."""
    reporter = HarvesterReporter(HarvesterFiles(tmp_path / "gone"))
    with pytest.raises(LaunchDirFileError) as caught:
        reporter.update_job(JobUpdate(7801, "running"))
    assert caught.value.code == ErrorCode.FILEHANDLINGFAILURE == 1303
    assert "worker_attributes.json" in str(caught.value)


def test_per_job_dirs_next_job_cycle_and_reports(ap: Path) -> None:
    """Many-jobs worker: the next job arrives in a new ``<ap>/<PandaID>`` directory with a new PandaID list, and
    the reports of each job go to its own directory while the request and heartbeat stay in the access point."""
    files = HarvesterFiles(ap, per_job_dirs=True)
    harvester_feed(ap, [7901], per_job_dirs=True)
    source = HarvesterJobSource(files, wait_timeout=20, **FAST)
    reporter = HarvesterReporter(files)
    (first,) = source.get_jobs(REQUEST)
    reporter.update_job(JobUpdate(first.panda_id, "finished", {}, final=True))
    reporter.add_stageout_files(first.panda_id, [StageOutFile(path=str(ap / "7901" / "log.tgz"), type="log")])

    def play_harvester() -> None:
        for _ in range(2000):
            if (ap / "worker_requestjob.json").exists():
                harvester_feed(ap, [7902], per_job_dirs=True)
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=play_harvester)
    thread.start()
    (second,) = source.get_jobs(REQUEST)
    thread.join(10)
    assert second.panda_id == 7902
    assert json.loads((ap / "7901" / "worker_attributes.json").read_text())["jobStatus"] == "finished"
    assert json.loads((ap / "7901" / "event_status.dump.json").read_text()) == {
        "7901": [{"path": str(ap / "7901" / "log.tgz"), "type": "log"}]
    }
    assert (ap / "worker_heartbeat.json").exists() and not (ap / "7901" / "worker_heartbeat.json").exists()
    assert (ap / "7902" / "HPCJobs.json.read").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "/w/a", "type": "input"}, "not one of"),
        ({"path": ""}, "needs a path"),
        ({"path": "/w/a.1", "type": "es_output", "event_range_id": "r1"}, "needs event_range_id and event_status"),
    ],
)
def test_bad_stageout_entry_refused(kwargs: dict[str, Any], message: str) -> None:
    """A stage-out entry Harvester could not handle is refused when built (LaunchDirFormatError)."""
    with pytest.raises(LaunchDirFormatError, match=message) as caught:
        StageOutFile(**kwargs)
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE


def test_event_output_entry_wire_form() -> None:
    """An event-service output carries eventRangeID and eventStatus as Harvester reads them."""
    entry = StageOutFile(path="/w/HITS.r1", type="es_output", event_range_id="r1", event_status="finished")
    assert entry.to_wire() == {
        "path": "/w/HITS.r1",
        "type": "es_output",
        "eventRangeID": "r1",
        "eventStatus": "finished",
    }


HARVESTER_PROCESS = r"""
import json, os, sys, time
ap, panda_id, definition = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
request = os.path.join(ap, "worker_requestjob.json")
deadline = time.monotonic() + 60
while not os.path.exists(request):
    if time.monotonic() > deadline:
        sys.exit("no request")
    time.sleep(0.01)
with open(request) as handle:
    n_jobs = json.load(handle)["nJobs"]
text = json.dumps({panda_id: definition})
with open(os.path.join(ap, "HPCJobs.json"), "w") as handle:  # as feed_jobs: no temporary file
    handle.write(text[: len(text) // 3])
    handle.flush()
    time.sleep(0.2)
    handle.write(text[len(text) // 3 :])
with open(os.path.join(ap, "worker_pandaids.json"), "w") as handle:
    json.dump([panda_id], handle)
try:  # as feed_jobs: the pilot may have removed it already
    os.remove(request)
except FileNotFoundError:
    pass
print(n_jobs)
"""


@pytest.mark.integration
def test_next_job_from_a_separate_harvester_process(ap: Path) -> None:
    """A separate process playing Harvester answers the job request with a slowly written job file."""
    harvester_feed(ap, [8101])
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=60, **FAST)
    assert [job.panda_id for job in source.get_jobs(REQUEST)] == [8101]
    process = subprocess.Popen(
        [sys.executable, "-c", HARVESTER_PROCESS, str(ap), "8102", json.dumps(definition(8102))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        (job,) = source.get_jobs(REQUEST)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out.strip() == "1"
    assert job.panda_id == 8102 and job.task_id == 31000001
    assert not (ap / "worker_requestjob.json").exists()
