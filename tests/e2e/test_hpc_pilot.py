"""End to end: ``hpc-pilot`` ranks started by a real Open MPI ``mpirun`` (as root, ``--enable-recovery``), on an
access point laid out as Harvester's ``feed_jobs`` lays out a many-jobs worker, then the files read as Harvester's
``SharedFileMessenger`` reads them.

HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py`` is the authority: ``get_access_point``
(l.149-154: ``<access point>/<PandaID>`` for ``MT_MultiJobs``), ``feed_jobs`` (l.378-430: the job file, the pool
file catalogue and the input links in the job's directory, ``worker_pandaids.json`` last), ``get_work_attributes``
(l.169-223: ``worker_attributes.json`` and ``jobReport.json`` per job directory), ``get_files_to_stage_out``
(l.228-318: ``event_status.dump.json`` per job directory, renamed to ``.read``, ``path``/``type``/``fsize``/
``chksum``), ``post_processing`` (l.598-640: no log tarball of its own when a ``log`` is declared) and
``kill_requested`` (l.754-766: ``kill_worker.json`` in the worker's access point).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from pilotlib.errors import ErrorCode

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MPIRUN = ["mpirun", "--allow-run-as-root", "--enable-recovery"]


def _hpc_job(panda_id: int, script: str) -> dict[str, str]:
    """A job whose payload is ``/bin/sh -c SCRIPT`` in its work directory, with input ``in.dat`` (and the
    unused ``payload.sh``), output ``out.dat`` and log ``log.tgz``."""
    job = job_definition(panda_id)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'"})
    return job


def feed_jobs(access_point: Path, jobs: list[dict[str, str]], prestaged: Path) -> None:
    """As ``feed_jobs`` for ``MT_MultiJobs``: per job ``<PandaID>/HPCJobs.json`` (l.397), ``PoolFileCatalog_H.xml``
    (l.400) and a symlink per input (l.403-411); ``worker_pandaids.json`` last (l.420)."""
    for job in jobs:
        folder = access_point / job["PandaID"]
        folder.mkdir(parents=True)
        with open(folder / "HPCJobs.json", "w") as handle:
            json.dump({job["PandaID"]: job}, handle)
        (folder / "PoolFileCatalog_H.xml").write_text("<POOLFILECATALOG/>")
        for lfn in ("in.dat", "payload.sh"):
            os.symlink(prestaged / lfn, folder / lfn)
    with open(access_point / "worker_pandaids.json", "w") as handle:
        json.dump([int(job["PandaID"]) for job in jobs], handle)


def harvester_reads(access_point: Path, panda_id: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The attributes, the job report and the declared files (by LFN) of one job, read as Harvester does: the dump
    renamed to ``.read`` first (l.251), the LFN the base name of ``path`` (l.289-292)."""
    folder = access_point / str(panda_id)
    attributes = json.loads((folder / "worker_attributes.json").read_text())
    report = json.loads((folder / "jobReport.json").read_text()) if (folder / "jobReport.json").exists() else {}
    dump = folder / "event_status.dump.json"
    os.rename(dump, str(dump) + ".read")
    document = json.loads(Path(str(dump) + ".read").read_text())
    assert list(document) == [str(panda_id)]
    return attributes, report, {os.path.basename(e["path"]): e for e in document[str(panda_id)]}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _pilot(access_point: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apps.hpc_pilot", "--harvester-workdir", str(access_point), "--site-name", "Q",
            "--grace", "2", *extra]


def _check_declared(files: dict[str, Any], folder: Path) -> None:
    """Output and log declared with the size and adler32 of the file at ``path``, inside the job's directory."""
    assert {lfn: e["type"] for lfn, e in files.items()} == {"out.dat": "output", "log.tgz": "log"}
    for entry in files.values():
        path = Path(entry["path"])
        assert folder in path.parents
        data = path.read_bytes()
        assert entry["fsize"] == len(data) and entry["chksum"] == f"{zlib.adler32(data):08x}"


def test_two_ranks_run_their_jobs_on_the_ram_disk(tmp_path: Path, ramdisk: Path) -> None:
    """``mpirun -np 2``, site ``olcf``: rank i runs the i-th PandaID in a work directory on the RAM disk, with its
    input and the site's auxiliary file copied in (not linked), without the pilot's MPI variables; outputs and log
    go back to the job's directory and are declared there; Harvester's files of both jobs are right; the RAM disk
    is clean afterwards; the ranks' state (reports, journal, logs) was never on the RAM disk; rank 0 wrote the
    worker's files."""
    access_point = tmp_path / "access_point"
    aux = tmp_path / "conditions.db"
    aux.write_text("conditions\n")
    script = ("sh payload.sh; s=$?; pwd >> out.dat; cat conditions.db >> out.dat; "
              "test -L in.dat || echo copied >> out.dat; env | grep -c ^OMPI_ >> out.dat; exit $s")
    jobs = [_hpc_job(9501, script), _hpc_job(9502, script)]
    feed_jobs(access_point, jobs, make_inputs(tmp_path / "prestaged"))
    done = subprocess.run([*MPIRUN, "-np", "2", *_pilot(access_point, "--site", "olcf", "--site-option",
                                                          f"ramdisk={ramdisk}", "--site-option", f"aux={aux}")],
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank, job in enumerate(jobs):
        panda_id = int(job["PandaID"])
        attributes, report, files = harvester_reads(access_point, panda_id)
        assert attributes["jobStatus"] == "finished" and attributes["pilotErrorCode"] == 0
        assert attributes["pilotID"].startswith(f"hpc-pilot-rank{rank}-")
        assert "metaData" not in attributes and "xml" not in attributes
        assert report == {"exitCode": 0, "exitMsg": "OK"}
        _check_declared(files, access_point / str(panda_id))
        out = Path(files["out.dat"]["path"]).read_text().splitlines()
        assert out == ["input data", str(ramdisk / "pilotlib-access_point" / f"rank-{rank}" / str(panda_id)),
                       "conditions", "copied", "0"]  # not a rank of the pilot's MPI world
    assert list(ramdisk.iterdir()) == []
    state = access_point / ".hpc-pilot"
    assert (state / "rank-0" / "pilotlog.txt").is_file() and (state / "rank-1" / "pilotlog.txt").is_file()
    summary = json.loads((state / "worker.json").read_text())
    assert [(r["rank"], r["status"], [j["pandaID"] for j in r["jobs"]]) for r in summary["ranks"]] == \
        [(0, "done", [9501]), (1, "done", [9502])]
    assert (access_point / "kill_worker.json").exists()


def _wait_running(access_point: Path, panda_id: int, timeout: float = 60.0) -> dict[str, Any]:
    path = access_point / str(panda_id) / "worker_attributes.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            attributes: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            attributes = {}
        if attributes.get("jobStatus") == "running":
            return attributes
        time.sleep(0.1)
    raise AssertionError(f"job {panda_id} never ran")


def _left(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def test_eight_ranks_a_failing_job_and_a_killed_rank_leave_the_others_finished(tmp_path: Path, ramdisk: Path) -> None:
    """``mpirun -np 8 --oversubscribe`` on this 2-core node, each rank's work directory on the RAM disk (site
    ``olcf``): one job's payload exits 3 (failed, transExitCode 3);
    rank 5 is SIGKILLed while its payload runs: its payload dies with it (the lifeline), rank 0 finds the rank lost
    (its lock released without an outcome) and reports its job failed with KILLSIGNAL 1200, log declared; the
    six other jobs are finished; the RAM disk is clean at the end, the lost rank's area too."""
    access_point = tmp_path / "access_point"
    marker = f"{time.time_ns() % 10**6}.25"
    jobs = [_hpc_job(9600 + i, "sh payload.sh") for i in range(8)]
    jobs[2]["jobPars"] = "-c 'EXIT=3 sh payload.sh'"
    jobs[5]["jobPars"] = f"-c 'sleep {marker}; sh payload.sh'"
    feed_jobs(access_point, jobs, make_inputs(tmp_path / "prestaged"))
    mpirun = subprocess.Popen([*MPIRUN, "--oversubscribe", "-np", "8",
                               *_pilot(access_point, "--site", "olcf", "--site-option", f"ramdisk={ramdisk}",
                                       "--site-option", "min_free_mb=1")], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        attributes = _wait_running(access_point, 9605)
        rank_pid = int(attributes["pilotID"].rsplit("-", 1)[1])
        assert attributes["pilotID"].startswith("hpc-pilot-rank5-")
        os.kill(rank_pid, signal.SIGKILL)
        _out, err = mpirun.communicate(timeout=120)
    finally:
        mpirun.kill()
    assert _left(f"sleep {marker}") == []
    states = {}
    for job in jobs:
        attributes, _report, files = harvester_reads(access_point, int(job["PandaID"]))
        states[int(job["PandaID"])] = (attributes["jobStatus"], attributes["pilotErrorCode"])
        if job is jobs[5]:
            assert set(files) == {"log.tgz"} and files["log.tgz"]["type"] == "log"
        elif job is not jobs[2]:
            _check_declared(files, access_point / job["PandaID"])
    failing = json.loads((access_point / "9602" / "worker_attributes.json").read_text())
    assert failing["transExitCode"] == 3  # the payload's exitCode in its jobReport.json
    assert all(key in failing for key in ("cpuConsumptionTime", "pilotTiming", "startTime", "endTime", "maxRSS"))
    assert states == {**{9600 + i: ("finished", 0) for i in (0, 1, 3, 4, 6, 7)},
                      9602: ("failed", ErrorCode.PAYLOADEXECUTIONFAILURE),
                      9605: ("failed", ErrorCode.KILLSIGNAL)}, err[-3000:]
    summary = json.loads((access_point / ".hpc-pilot" / "worker.json").read_text())
    lost = [r for r in summary["ranks"] if r["status"] != "done"]
    assert lost == [{"rank": 5, "status": "lost", "recovered": [9605]}]
    assert list(ramdisk.iterdir()) == []


def test_a_rank_without_a_job_exits_cleanly(tmp_path: Path) -> None:
    """Three ranks, two jobs: rank 2 takes none, checks out with no job and exit status 0; rank 0 counts it done."""
    access_point = tmp_path / "access_point"
    feed_jobs(access_point, [_hpc_job(9701, "sh payload.sh"), _hpc_job(9702, "sh payload.sh")],
              make_inputs(tmp_path / "prestaged"))
    done = subprocess.run([*MPIRUN, "--oversubscribe", "-np", "3", *_pilot(access_point)], env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((access_point / ".hpc-pilot" / "worker.json").read_text())
    assert [(r["rank"], r["status"], r["exitStatus"], len(r["jobs"])) for r in summary["ranks"]] == \
        [(0, "done", 0, 1), (1, "done", 0, 1), (2, "done", 0, 0)]


def test_without_mpi_one_process_runs_all_the_workers_jobs(tmp_path: Path) -> None:
    """No launcher: the one process is rank 0 of 1 and runs the worker's three jobs itself, one after the other,
    with the same code."""
    access_point = tmp_path / "access_point"
    jobs = [_hpc_job(9800 + i, "sh payload.sh") for i in range(3)]
    feed_jobs(access_point, jobs, make_inputs(tmp_path / "prestaged"))
    done = subprocess.run(_pilot(access_point), env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for job in jobs:
        attributes, _report, files = harvester_reads(access_point, int(job["PandaID"]))
        assert attributes["jobStatus"] == "finished" and attributes["pilotID"].startswith("hpc-pilot-rank0-")
        _check_declared(files, access_point / job["PandaID"])
    assert list((access_point / ".hpc-pilot" / "work").iterdir()) == []  # the generic site's work area is gone


def test_the_allocations_end_stops_the_payload_and_reports_before_it(tmp_path: Path) -> None:
    """``--walltime 80 --end-margin 10 --grace 2``: the allocation ends 80 s after the start, the jobs must be
    reported by 70 s; the payload (a 300 s sleep) is stopped ``2 * grace + 60`` s before that (the walltime
    monitor's margin, checked every 10 s), so the job is failed with REACHEDMAXTIME 1213, its log declared, well
    before the allocation's end, and the payload is gone."""
    access_point = tmp_path / "access_point"
    marker = f"{time.time_ns() % 10**6}.75"
    feed_jobs(access_point, [_hpc_job(9901, f"sleep {marker}")], make_inputs(tmp_path / "prestaged"))
    began = time.monotonic()
    done = subprocess.run(_pilot(access_point, "--walltime", "80", "--end-margin", "10"), env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - began
    attributes, _report, files = harvester_reads(access_point, 9901)
    assert (attributes["jobStatus"], attributes["pilotErrorCode"]) == ("failed", ErrorCode.REACHEDMAXTIME), \
        done.stderr[-2000:]
    assert "lifetime nearly over" in attributes["pilotErrorDiag"]
    assert set(files) == {"log.tgz"}
    assert took < 30.0
    assert _left(f"sleep {marker}") == []


def test_a_ram_disk_too_small_for_the_job_fails_it_before_anything_is_copied(tmp_path: Path, small_fs: Path) -> None:
    """Site ``olcf`` on a 16 MiB RAM disk, a job with ``maxDiskCount`` 20 MB: the free space is checked before the
    input and the auxiliary file are copied in, the job fails with NOLOCALSPACE 1098 (its log still declared, made
    from the pilot's own log of the job), the payload never runs and the RAM disk is left empty; the next job of
    the worker, which fits, still runs."""
    access_point = tmp_path / "access_point"
    aux = tmp_path / "geometry.db"
    aux.write_bytes(b"g" * 1024)
    big, small = _hpc_job(9911, "touch ran; sh payload.sh"), _hpc_job(9912, "sh payload.sh")
    big["maxDiskCount"] = "20"
    feed_jobs(access_point, [big, small], make_inputs(tmp_path / "prestaged"))
    done = subprocess.run(_pilot(access_point, "--site", "olcf", "--site-option", f"ramdisk={small_fs}",
                                 "--site-option", f"aux={aux}", "--site-option", "min_free_mb=1"),
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)
    attributes, _report, files = harvester_reads(access_point, 9911)
    assert (attributes["jobStatus"], attributes["pilotErrorCode"]) == ("failed", ErrorCode.NOLOCALSPACE), \
        done.stderr[-2000:]
    assert "RAM disk" in attributes["pilotErrorDiag"]
    assert set(files) == {"log.tgz"}
    with tarfile.open(files["log.tgz"]["path"]) as tar:
        names = {Path(name).name for name in tar.getnames()}
    assert not names & {"ran", "in.dat", "geometry.db"} and "pilotlog.txt" in names, names
    assert harvester_reads(access_point, 9912)[0]["jobStatus"] == "finished"
    assert list(small_fs.iterdir()) == []


def test_a_job_that_asks_for_a_container_runs_in_it(tmp_path: Path, busybox_rootfs: Path) -> None:
    """The job's ``container_name`` with ``--container-runtime bubblewrap``: the payload runs in the image (its
    ``/etc/os-release`` is the image's), sees its work directory with the input, and its output is declared. The
    input is Harvester's link, linked again into the work directory (to the file it resolves to): inside, the link
    works (its target is bound read-only at the path it names) and nothing of the access point is seen."""
    access_point = tmp_path / "access_point"
    script = (f"cat /etc/os-release in.dat > out.dat; "
              f"test -e {access_point}/worker_pandaids.json || echo no access point >> out.dat")
    job = _hpc_job(9961, script)
    job["container_name"] = str(busybox_rootfs)
    feed_jobs(access_point, [job], make_inputs(tmp_path / "prestaged"))
    done = subprocess.run(_pilot(access_point, "--container-runtime", "bubblewrap"), env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    attributes, _report, files = harvester_reads(access_point, 9961)
    assert attributes["jobStatus"] == "finished", attributes.get("pilotErrorDiag")
    assert Path(files["out.dat"]["path"]).read_text() == \
        "ID=pilotlib-busybox\nNAME=pilotlib test image\ninput data\nno access point\n"
