"""End to end: ``grid-pilot --mode harvester`` against an access point laid out as Harvester's ``feed_jobs`` does,
then the files the pilot leaves read as Harvester's ``SharedFileMessenger`` reads them.

HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py`` (commit d561b72fec24) is the authority;
the docstrings cite its lines.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from apps.grid_pilot.__main__ import main

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration


def feed_jobs(access_point: Path, panda_id: int, prestaged: Path) -> None:
    """As ``feed_jobs`` (l.378-433): the job file (l.397), ``PoolFileCatalog_H.xml`` (l.400), a symlink per input
    to where Harvester's preparator put it (l.403-411), and ``worker_pandaids.json`` last (l.420)."""
    with open(access_point / "HPCJobs.json", "w") as handle:
        json.dump({panda_id: job_definition(panda_id, sleep=0.1)}, handle)
    with open(access_point / "PoolFileCatalog_H.xml", "w") as handle:
        handle.write("<POOLFILECATALOG/>")
    for lfn in ("in.dat", "payload.sh"):
        os.symlink(prestaged / lfn, access_point / lfn)
    with open(access_point / "worker_pandaids.json", "w") as handle:
        json.dump([panda_id], handle)


def stageout_dump(access_point: Path) -> dict[str, dict[str, Any]]:
    """The dump's files by LFN, taken as ``get_files_to_stage_out`` takes them: renamed to ``.read`` (l.251), a dict
    of lists (l.268-281), the LFN the base name of ``path`` (l.289-292), ``fsize``/``type``/``guid``/``chksum`` read
    when present (l.295-318)."""
    dump = access_point / "event_status.dump.json"
    os.rename(dump, str(dump) + ".read")
    document = json.loads(Path(str(dump) + ".read").read_text())
    assert isinstance(document, dict) and list(document) == ["9301"]
    return {os.path.basename(entry["path"]): entry for entry in document["9301"]}


def test_harvester_stages_out_what_the_pilot_declares(tmp_path: Path) -> None:
    """``--harvester-stageout harvester``, no ``--input-dir``, no ``--copytool``: the inputs Harvester linked into
    the access point are used there and stay (links and their targets intact, never moved); the output and the log
    are copied into the access point and declared in ``event_status.dump.json`` with the size and adler32 of the
    file at ``path`` and the log as ``log`` (so Harvester neither stats nor re-checksums them, l.295/l.316, and
    builds no log tarball of its own); the times in ``worker_attributes.json`` are the server's
    ``%Y-%m-%d %H:%M:%S`` text; the job report is this job's."""
    prestaged = make_inputs(tmp_path / "prestaged")
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    (access_point / "jobReport.json").write_text('{"exitCode": 65, "from": "the previous job"}')
    feed_jobs(access_point, 9301, prestaged)
    status = main(["--mode", "harvester", "--harvester-workdir", str(access_point), "-q", "Q",
                   "-a", str(tmp_path / "work"), "--harvester-stageout", "harvester", "--max-jobs", "1"])
    assert status == 0
    for lfn in ("in.dat", "payload.sh"):
        assert (access_point / lfn).is_symlink() and (access_point / lfn).resolve() == prestaged / lfn
        assert (prestaged / lfn).is_file()
    files = stageout_dump(access_point)
    assert set(files) == {"out.dat", "log.tgz"}
    assert files["out.dat"]["type"] == "output" and files["log.tgz"]["type"] == "log"
    assert files["log.tgz"]["guid"] == "0B1C2D3E-4F50-4617-8293-A4B5C6D7E8F9"
    for entry in files.values():
        path = Path(entry["path"])
        assert path.is_file() and access_point in path.parents
        data = path.read_bytes()
        assert entry["fsize"] == len(data)
        assert entry["chksum"] == f"{zlib.adler32(data):08x}"
    assert Path(files["out.dat"]["path"]).read_bytes() == b"input data\n"
    attributes = json.loads((access_point / "worker_attributes.json").read_text())
    assert attributes["jobStatus"] == "finished"
    for key in ("startTime", "endTime"):
        time.strptime(attributes[key], "%Y-%m-%d %H:%M:%S")  # as panda-server's update_job parses them
    assert json.loads((access_point / "jobReport.json").read_text()) == {"exitCode": 0, "exitMsg": "OK"}


def test_in_flight_two_refused_without_per_job_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--in-flight 2`` in harvester mode is a setting error (exit 2) unless each job has its own directory:
    ``worker_attributes.json`` and ``jobReport.json`` are one per access point (``get_access_point`` l.149-155) and
    ``get_work_attributes`` (l.169-223) does not check which job wrote them. With ``--harvester-per-job-dirs``
    (``MT_MultiJobs``) it runs, every job-level file in ``<access point>/<PandaID>/``, the inputs Harvester linked
    there (l.403-411 with ``get_access_point``) used without ``--input-dir``; with the default
    ``--harvester-stageout pilot`` the files the pilot transferred are declared there."""
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    argv = ["--mode", "harvester", "--harvester-workdir", str(access_point), "-q", "Q", "-a", str(tmp_path / "w"),
            "--in-flight", "2", "--max-jobs", "1"]
    assert main(argv) == 2
    assert "in-flight 2 needs --harvester-per-job-dirs" in capsys.readouterr().err
    job_dir = access_point / "9302"
    job_dir.mkdir()
    (job_dir / "HPCJobs.json").write_text(json.dumps({"9302": job_definition(9302, sleep=0.1)}))
    prestaged = make_inputs(tmp_path / "prestaged")
    for lfn in ("in.dat", "payload.sh"):
        os.symlink(prestaged / lfn, job_dir / lfn)
    (access_point / "worker_pandaids.json").write_text("[9302]")
    assert main([*argv, "--harvester-per-job-dirs", "--output-dir", str(tmp_path / "storage")]) == 0
    assert (job_dir / "in.dat").is_symlink() and (prestaged / "in.dat").is_file()
    assert json.loads((job_dir / "worker_attributes.json").read_text())["jobStatus"] == "finished"
    declared = json.loads((job_dir / "event_status.dump.json").read_text())["9302"]
    assert sorted((os.path.basename(e["path"]), e["type"]) for e in declared) == [("log.tgz", "log"),
                                                                                  ("out.dat", "output")]
    assert all(tmp_path / "storage" in Path(e["path"]).parents for e in declared)  # where the pilot put them
