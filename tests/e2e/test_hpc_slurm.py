"""End to end: ``hpc-pilot`` under a real single-node Slurm cluster (``slurm_cluster``: slurmctld, slurmd and munge
started by the test run): ranks started by ``srun`` inside an ``sbatch`` job, and the batch job's time limit.

Harvester's side as in ``tests/e2e/test_hpc_pilot.py`` (HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py``: per-job directories of a many-jobs worker,
``worker_attributes.json`` and ``event_status.dump.json`` per job).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from fixtures.slurm import SlurmCluster

from pilotlib.errors import ErrorCode

from .helpers import make_inputs
from .test_hpc_pilot import REPO, _hpc_job, _left, feed_jobs, harvester_reads

pytestmark = pytest.mark.integration


def _script(tmp_path: Path, name: str, access_point: Path, ranks: int, *options: str) -> Path:
    """A batch script that starts ``ranks`` hpc-pilot ranks with ``srun`` (their rank from ``SLURM_PROCID``)."""
    script = tmp_path / f"{name}.sh"
    pilot = " ".join([sys.executable, "-m", "apps.hpc_pilot", "--harvester-workdir", str(access_point),
                      "--site-name", "Q", "--grace", "2", *options])
    script.write_text(f"#!/bin/sh\nexport PYTHONPATH={REPO}\nexec srun -n {ranks} {pilot}\n")
    return script


def test_srun_ranks_in_a_batch_job_run_the_workers_jobs(tmp_path: Path, slurm_cluster: SlurmCluster,
                                                        ramdisk: Path) -> None:
    """``sbatch -n 2`` of ``srun -n 2 hpc-pilot --site olcf``: each task takes the job of its ``SLURM_PROCID`` (no
    MPI is initialised: ``srun`` is not an MPI launcher here) and runs it on the RAM disk, both jobs are finished
    with their outputs declared, the RAM disk is clean, and the batch job is COMPLETED."""
    access_point = tmp_path / "access_point"
    feed_jobs(access_point, [_hpc_job(9991, "sh payload.sh"), _hpc_job(9992, "sh payload.sh")],
              make_inputs(tmp_path / "prestaged"))
    script = _script(tmp_path, "two", access_point, 2, "--site", "olcf", "--site-option", f"ramdisk={ramdisk}",
                     "--site-option", "min_free_mb=1")
    job_id = slurm_cluster.sbatch(script, "-n", "2", "-o",
                                  str(tmp_path / "slurm.out"))
    assert slurm_cluster.wait(job_id, 120) == "COMPLETED", (tmp_path / "slurm.out").read_text()[-3000:]
    for rank, panda_id in enumerate((9991, 9992)):
        attributes, _report, files = harvester_reads(access_point, panda_id)
        assert attributes["jobStatus"] == "finished"
        assert attributes["pilotID"].startswith(f"hpc-pilot-rank{rank}-")
        assert attributes["batchID"] == str(job_id)  # SLURM_JOB_ID, the batch id a site finds the job by
        assert {e["type"] for e in files.values()} == {"output", "log"}
    summary = json.loads((access_point / ".hpc-pilot" / "worker.json").read_text())
    assert [(r["rank"], r["status"]) for r in summary["ranks"]] == [(0, "done"), (1, "done")]
    assert list(ramdisk.iterdir()) == []


def test_the_batch_jobs_time_limit_is_respected(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    """Two batch jobs at once, each a payload that would sleep 600 s.

    - ``--time=2``, the pilot told nothing: it reads the allocation's end from Slurm (``squeue -o %e``; 22.05 sets
      no ``SLURM_JOB_END_TIME``), stops the payload ``2 * grace + 60`` s before its own end (``--end-margin 10``
      before the allocation's), reports the job failed with REACHEDMAXTIME 1213 and exits, so the batch job is
      COMPLETED before Slurm's limit.
    - ``--time=1`` with the pilot told a far end (``--end-time``): Slurm's SIGTERM at the limit stops it; the job is
      failed with SIGTERM's 1201 and reported within ``KillWait`` (10 s, before the SIGKILL); the batch job is
      TIMEOUT.
    In both the payload is gone."""
    marker = f"{time.time_ns() % 10**6}.5"
    ends = {}
    for name, panda_id, minutes, options in (("knows", 9993, "2", ("--end-margin", "10")),
                                              ("told", 9994, "1", ("--end-time", str(time.time() + 86400)))):
        access_point = tmp_path / name / "access_point"
        feed_jobs(access_point, [_hpc_job(panda_id, f"sleep 6{marker}")], make_inputs(tmp_path / name / "in"))
        ends[name] = (access_point, panda_id, slurm_cluster.sbatch(
            _script(tmp_path, name, access_point, 1, *options), "-n", "1", f"--time={minutes}", "-o",
            str(tmp_path / f"{name}.out")))
    states = {name: slurm_cluster.wait(job_id, 200) for name, (_ap, _pid, job_id) in ends.items()}
    assert states == {"knows": "COMPLETED", "told": "TIMEOUT"}, (tmp_path / "told.out").read_text()[-2000:]
    expected = {"knows": (ErrorCode.REACHEDMAXTIME, "lifetime nearly over"), "told": (ErrorCode.SIGTERM, "")}
    for name, (access_point, panda_id, _job_id) in ends.items():
        attributes, _report, files = harvester_reads(access_point, panda_id)
        code, diag = expected[name]
        assert (attributes["jobStatus"], attributes["pilotErrorCode"]) == ("failed", code), attributes
        assert diag in attributes["pilotErrorDiag"] and set(files) == {"log.tgz"}
    assert _left(f"sleep 6{marker}") == []
