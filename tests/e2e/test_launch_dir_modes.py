"""End to end in Harvester mode (access point laid out as Harvester does) and NorduGrid/ARC mode (no server)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main
from pilotlib.transfer.paths import deterministic_path

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration


def _common(tmp_path: Path, copytool: str) -> list[str]:
    make_inputs(tmp_path / "in")
    return ["-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"), "--output-dir",
            str(tmp_path / "storage"), "--copytool", copytool, "--log-level", "INFO"]


def _feed(access_point: Path, panda_id: int) -> None:
    """What Harvester's shared-file messenger writes for one job: the job file, then the PandaID list."""
    (access_point / "HPCJobs.json").write_text(json.dumps({str(panda_id): job_definition(panda_id, sleep=0.2)}))
    (access_point / "worker_pandaids.json").write_text(json.dumps([panda_id]))


def _harvester(access_point: Path, next_id: int, done: threading.Event) -> None:
    """Harvester's side of the request-next-job cycle: on worker_requestjob.json, feed a job and delete it."""
    request = access_point / "worker_requestjob.json"
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        if request.exists():
            assert json.loads(request.read_text()) == {"nJobs": 1}
            _feed(access_point, next_id)
            request.unlink()
            return
        time.sleep(0.02)


def test_harvester_mode_runs_two_jobs_through_the_request_cycle(tmp_path: Path) -> None:
    """Harvester mode: job 1 from the access point, job 2 after worker_requestjob.json; reports in shared files; the
    multi-job pilot keeps nothing of a finished job (its set-up travelled on its run, its log file is closed)."""
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    _feed(access_point, 9101)
    done = threading.Event()
    feeder = threading.Thread(target=_harvester, args=(access_point, 9102, done))
    feeder.start()
    try:
        status = main(["--mode", "harvester", "--harvester-workdir", str(access_point), "-q", "Q",
                       "--max-jobs", "2", *_common(tmp_path, "cp")])
    finally:
        done.set()
        feeder.join()
    assert status == 0
    attributes = json.loads((access_point / "worker_attributes.json").read_text())
    assert attributes["jobId"] == 9102 and attributes["jobStatus"] == "finished"
    assert attributes["pilotErrorCode"] == 0
    assert json.loads((access_point / "jobReport.json").read_text()) == {"exitCode": 0, "exitMsg": "OK"}
    assert (access_point / "kill_worker.json").exists()
    assert not (access_point / "worker_requestjob.json").exists()
    for panda_id in (9101, 9102):
        assert (tmp_path / "work" / "pilot-state" / str(panda_id) / "final_update.json.sent").is_file()
    open_files = {os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()}
    job_logs = {str((tmp_path / "work" / "pilot-state" / f"pilotlog-{i}.txt").resolve()) for i in (9101, 9102)}
    assert all(Path(p).is_file() for p in job_logs)
    assert not open_files & job_logs, "a finished job's own log file is still open"


def test_arc_mode_writes_heartbeat_and_output_list(tmp_path: Path) -> None:
    """ARC mode: the job file from the launch directory, heartbeat.json with the final state, output.list lines.

    The real ``mv`` copytool moves the pre-placed inputs into the work directory (pilot3's ARC semantics)."""
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job_definition(9201, sleep=0.2)))
    assert main(["--mode", "arc", "--launch-dir", str(launch), *_common(tmp_path, "mv")]) == 0
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["jobId"] == 9201 and heartbeat["state"] == "finished" and heartbeat["pilotErrorCode"] == 0
    lines = sorted((launch / "output.list").read_text().splitlines())
    out_url = "file://" + str(tmp_path / "storage" / deterministic_path("e2e", "out.dat"))
    assert lines[1].startswith(f"out.dat {out_url}:checksumtype=adler32:checksumvalue=")
    assert lines[0].startswith("log.tgz file://")
    assert not (launch / "pandaJobData.out").exists()
    assert not (tmp_path / "in" / "in.dat").exists()  # moved, not copied
    assert (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_bytes() == b"input data\n"


def test_a_job_whose_set_up_cannot_be_resolved_is_reported_failed_with_its_code(tmp_path: Path) -> None:
    """A job whose ``--overwriteQueueData`` is not a JSON object (pilot3 ``pilot/info/jobinfo.py`` reads it as the
    queue's fields) cannot be set up: it fails as it is taken, with QUEUEDATANOTOK (1117), runs no payload, and its
    final state reaches the ARC CE's ``heartbeat.json`` with the code, and its log is staged out as the queue says
    without the job's overrides (its ``pl`` copytool ``cp``, not the pilot's default ``mv``). The pilot's exit
    status is 0: the job's failure is reported (a wrapper acts on the pilot's own failures, not a job's)."""
    launch = tmp_path / "launch"
    launch.mkdir()
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online",
             "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    job = job_definition(9301, sleep=0.2)
    job["jobPars"] = "--overwriteQueueData=[1,2] " + job["jobPars"]
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    status = main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file",
                   str(tmp_path / "queue.json"), "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"),
                   "--output-dir", str(tmp_path / "storage")])
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["jobId"] == 9301 and heartbeat["state"] == "failed"
    assert heartbeat["pilotErrorCode"] == 1117
    assert not (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).exists()  # no payload ran
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
    assert "stage-out done lfn=log.tgz tool=cp " in (tmp_path / "work" / "pilot-state" / "pilotlog.txt").read_text()
    assert status == 0
