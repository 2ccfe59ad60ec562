"""The event service on HPC: the ranks of a one-job worker run its event ranges together, through Harvester's
worker-level files, each rank's statuses merged into the one ``event_status.dump.json``.

Harvester feeds event ranges only to a one-job worker: HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py`` ``feed_events`` (l.456-480) writes
``JobsEventRanges.json`` for ``MT_OneToOne``/``MT_MultiWorkers`` and nothing for ``MT_MultiJobs`` (``# TOBEFIXED``),
so the ranks share that one job. Real parts: Open MPI ``mpirun`` (as root, ``--enable-recovery``), the ranks, the
event channel and the reference payload (``python -m pilotlib.eventservice.reference_payload``). Harvester's side is
a stand-in written from that file: ``events_requested`` (l.435-454) reads the one ``worker_requestevents.json``,
``feed_events`` writes the answer with a plain ``open(..., "w")`` and removes the request, an empty list once the job
has no ranges left (``panda_communicator.py`` ``get_event_ranges`` l.481-483); ``get_files_to_stage_out``
(l.228-352) reads the dump of the job's directory, the access point itself for a one-job worker (``get_access_point``
l.149-154).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .helpers import job_definition, make_inputs
from .test_hpc_pilot import MPIRUN, _env, _pilot

pytestmark = pytest.mark.integration


class OneJobEventFeeder:
    """Harvester's event feeder for a one-job worker (see the module), on a thread of its own."""

    def __init__(self, access_point: Path, panda_id: int, count: int) -> None:
        self.access_point = access_point
        self.panda_id = panda_id
        self.left = [{"eventRangeID": f"1-{panda_id}-1-{n}-1", "startEvent": 10 * n + 1, "lastEvent": 10 * n + 10,
                      "LFN": "in.dat", "GUID": "g1", "scope": "e2e"} for n in range(1, count + 1)]
        self.fed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> OneJobEventFeeder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _serve(self) -> None:
        request = self.access_point / "worker_requestevents.json"
        while not self._stop.wait(0.05):
            try:
                asked: dict[str, Any] = json.loads(request.read_text())
            except (OSError, ValueError):
                continue
            n_ranges = int(asked[str(self.panda_id)]["nRanges"])
            given, self.left = self.left[:n_ranges], self.left[n_ranges:]
            self.fed += [r["eventRangeID"] for r in given]
            with open(self.access_point / "JobsEventRanges.json", "w") as handle:
                json.dump({str(self.panda_id): given}, handle)
            os.remove(request)


def test_four_ranks_run_one_event_service_jobs_ranges_together(tmp_path: Path) -> None:
    """``mpirun -np 4`` on a one-job worker of 100 ranges: every rank runs the job's payload, the ranks' requests
    collapse into the one request of the job, each rank takes only the ranges it asked for from the one answer. The
    dump holds each of the 100 ranges exactly once, finished, with its output file (size and adler32 of the file),
    and more than one rank processed ranges; the job's state is rank 0's alone, written once every rank was over,
    finished even when rank 0 itself got no range (the others took them all)."""
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    prestaged = make_inputs(tmp_path / "prestaged")
    job = job_definition(9981)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": sys.executable,
                "jobPars": "-m pilotlib.eventservice.reference_payload --sleep 0.02"})
    with open(access_point / "HPCJobs.json", "w") as handle:
        json.dump({"9981": job}, handle)
    for lfn in ("in.dat", "payload.sh"):
        os.symlink(prestaged / lfn, access_point / lfn)
    (access_point / "worker_pandaids.json").write_text("[9981]")
    with OneJobEventFeeder(access_point, 9981, 100) as feeder:
        done = subprocess.run([*MPIRUN, "--oversubscribe", "-np", "4", *_pilot(access_point, "--single-job-dir")],
                              env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not feeder.left and len(feeder.fed) == 100
    entries = json.loads((access_point / "event_status.dump.json").read_text())["9981"]
    outputs = [e for e in entries if e.get("type") == "es_output"]
    assert Counter(e["eventRangeID"] for e in outputs) == Counter(feeder.fed)
    assert {e["eventStatus"] for e in outputs} == {"finished"}
    for entry in outputs:
        data = Path(entry["path"]).read_bytes()
        assert entry["fsize"] == len(data) and entry["chksum"] == f"{zlib.adler32(data):08x}"
    state = access_point / ".hpc-pilot"
    settled = [re.search(r"event ranges settled given=\d+ finished=(\d+)",
                         (state / f"rank-{rank}" / "pilotlog.txt").read_text()) for rank in range(4)]
    per_rank = [int(found.group(1)) if found else 0 for found in settled]
    assert sum(per_rank) == 100 and sum(1 for n in per_rank if n) >= 2, per_rank
    attributes = json.loads((access_point / "worker_attributes.json").read_text())
    assert attributes["jobStatus"] == "finished" and attributes["pilotID"].startswith("hpc-pilot-rank0-")
    written = (access_point / "worker_attributes.json").stat().st_mtime
    assert all((state / "ranks" / f"rank-{r}" / "outcome.json").stat().st_mtime <= written for r in (1, 2, 3))
