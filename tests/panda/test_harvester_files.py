"""Harvester's files as Harvester's own code reads them.

Every test reads what the pilot wrote the way HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py`` (commit d561b72fec24) does, or writes the access point
in the order its ``feed_jobs`` does; the docstrings cite its lines. (Their code is read, not copied: the checks below
state which keys and types the cited lines use.)
"""

from __future__ import annotations

import calendar
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pilotlib.panda.base import JobRequest, JobUpdate
from pilotlib.panda.harvester import HarvesterFiles, HarvesterJobSource, HarvesterReporter

REPO = Path(__file__).resolve().parents[2]
REQUEST = JobRequest(site_name="SITE", queue="QUEUE")
FAST = {"poll_interval": 0.02, "read_timeout": 5.0}
HITS = "HITS.31000001._000001.pool.root.1"
LOG = "log.31000001._000001.job.log.tgz.1"


def definition(panda_id: int) -> dict[str, Any]:
    """The shipped production example (outputs ``HITS...`` and the log ``log...tgz.1``) with another PandaID."""
    params = json.loads((REPO / "examples" / "jobs" / "production.json").read_text())
    params["PandaID"] = panda_id
    return params


def feed_job_file_only(ap: Path, panda_id: int) -> None:
    """``feed_jobs`` up to the input links: the job file (l.397) and ``PoolFileCatalog_H.xml`` (l.400), with a plain
    ``open(..., "w")``; ``worker_pandaids.json`` (l.420) is not written yet."""
    with open(ap / "HPCJobs.json", "w") as handle:
        json.dump({panda_id: definition(panda_id)}, handle)
    with open(ap / "PoolFileCatalog_H.xml", "w") as handle:
        handle.write("<POOLFILECATALOG/>")


def harvester_files_to_stage_out(ap: Path) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """What ``get_files_to_stage_out`` (l.228-352) needs from the dump, checked key by key without stat-ing or
    checksumming a file (the pilot gives fsize and chksum): rename to ``.read`` (l.251), a dict of lists
    (l.268-281), ``path`` whose base name is the LFN (l.289-292), ``fsize`` (l.295), ``type`` (l.300), ``guid``
    (l.310), ``chksum`` (l.316), ``eventStatus`` for event outputs (l.332)."""
    dump = ap / "event_status.dump.json"
    os.rename(dump, str(dump) + ".read")
    document = json.loads(Path(str(dump) + ".read").read_text())
    assert isinstance(document, dict)
    found: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for panda_id, entries in document.items():
        assert isinstance(entries, list)
        for entry in entries:
            if "path" not in entry:
                assert {"eventRangeID", "eventStatus"} <= set(entry)
                continue
            assert {"fsize", "type", "guid", "chksum"} <= set(entry), entry
            assert entry["type"] in ("log", "output", "checkpoint", "es_output", "zip_output")
            found.setdefault(int(panda_id), {}).setdefault(os.path.basename(entry["path"]), []).append(entry)
    return found


def final_update(panda_id: int, xml: dict[str, Any], **fields: Any) -> JobUpdate:
    """A final update as :func:`pilotlib.report.final_update` builds it (``xml`` as JSON text)."""
    return JobUpdate(panda_id, "finished", {"xml": json.dumps(xml), "pilotErrorCode": 0, **fields}, final=True)


def test_final_update_declares_outputs_and_log_as_get_files_to_stage_out_reads(ap: Path, tmp_path: Path) -> None:
    """The final update declares every transferred output and the log in ``event_status.dump.json``, as pilot3's
    ``publish_stageout_files`` does (PanDAWMS/pilot3 ``pilot/util/harvester.py`` a090538b l.202-266: ``type`` from
    the file's role, ``path``, ``guid``, ``fsize``, ``chksum``), in the shape Harvester's ``get_files_to_stage_out``
    reads (see :func:`harvester_files_to_stage_out`): the log as ``log``, so Harvester does not build a log tarball
    of its own with the same LFN. A file staged into a local directory is declared at its URL's path; one staged to
    a remote storage at the job's work directory."""
    with open(ap / "HPCJobs.json", "w") as handle:
        json.dump({7601: definition(7601)}, handle)
    (ap / "worker_pandaids.json").write_text("[7601]")
    source = HarvesterJobSource(HarvesterFiles(ap), **FAST)
    (job,) = source.get_jobs(REQUEST)
    workdir = tmp_path / "work" / "7601"
    reporter = HarvesterReporter(HarvesterFiles(ap), job_of=source.served_job, local_dir=lambda _id: workdir)
    xml = {
        HITS: {"guid": "G-HITS", "fsize": 1234, "adler32": "0a0b0c0d", "surl": f"file://{ap}/{HITS}",
               "endpoint": ""},
        LOG: {"guid": "G-LOG", "fsize": 99, "adler32": "00000001", "surl": f"root://se.example//atlas/{LOG}",
              "endpoint": "SE_DATADISK"},
    }
    reporter.update_job(final_update(job.panda_id, xml))
    found = harvester_files_to_stage_out(ap)
    assert set(found) == {7601}
    assert found[7601] == {
        HITS: [{"path": f"{ap}/{HITS}", "type": "output", "fsize": 1234, "chksum": "0a0b0c0d", "guid": "G-HITS"}],
        LOG: [{"path": f"{workdir}/{LOG}", "type": "log", "fsize": 99, "chksum": "00000001", "guid": "G-LOG"}],
    }


def test_final_update_without_outputs_declares_nothing(ap: Path) -> None:
    """A job that staged nothing out (a failed payload) writes no dump: Harvester removes an empty one (l.345-349)
    and a non-empty one would declare files that do not exist."""
    HarvesterReporter(HarvesterFiles(ap)).update_job(final_update(7602, {}))
    assert not (ap / "event_status.dump.json").exists()


def test_start_and_end_times_in_the_form_the_panda_server_parses(ap: Path) -> None:
    """``startTime``/``endTime`` in ``worker_attributes.json`` are ``%Y-%m-%d %H:%M:%S`` UTC text: Harvester forwards
    the attributes unchanged (``get_work_attributes`` l.169-223 loads them whole), and panda-server parses both
    with ``time.strptime(value, "%Y-%m-%d %H:%M:%S")`` (PanDAWMS/panda-server ``pandaserver/api/v1/pilot_api.py``
    9cc3603 l.553-556); an epoch number there fails that parse and the time is dropped."""
    start, end = 1764633600.4, 1764637200.9  # 2025-12-02 00:00:00 and 01:00:00 UTC
    reporter = HarvesterReporter(HarvesterFiles(ap))
    reporter.update_job(JobUpdate(7603, "running", {"startTime": start}))
    running = json.loads((ap / "worker_attributes.json").read_text())
    assert running["startTime"] == "2025-12-02 00:00:00"
    reporter.update_job(final_update(7603, {}, startTime=start, endTime=end))
    attributes = json.loads((ap / "worker_attributes.json").read_text())
    for key, epoch in (("startTime", start), ("endTime", end)):
        parsed = time.strptime(attributes[key], "%Y-%m-%d %H:%M:%S")
        assert calendar.timegm(parsed) == int(epoch)


def test_stale_job_report_removed_when_a_job_is_taken(ap: Path) -> None:
    """A ``jobReport.json`` left by the previous job is removed when the next job is taken: Harvester reads it as
    the job's ``metaData`` whatever job wrote it (``get_work_attributes`` l.191-202, no ``PandaID`` check), so a job
    that never ran would carry the previous job's report."""
    (ap / "jobReport.json").write_text(json.dumps({"exitCode": 0, "previous": 7600}))
    with open(ap / "HPCJobs.json", "w") as handle:
        json.dump({7604: definition(7604)}, handle)
    (ap / "worker_pandaids.json").write_text("[7604]")
    (job,) = HarvesterJobSource(HarvesterFiles(ap), **FAST).get_jobs(REQUEST)
    assert job.panda_id == 7604
    assert not (ap / "jobReport.json").exists()


def test_stale_job_report_removed_in_the_jobs_own_directory(ap: Path) -> None:
    """With per-job directories (``MT_MultiJobs``: ``get_access_point`` l.149-155) the stale report is the one in
    ``<access point>/<PandaID>/``; another job's directory is left alone."""
    for panda_id in (7605, 7606):
        (ap / str(panda_id)).mkdir()
        (ap / str(panda_id) / "jobReport.json").write_text("{}")
        with open(ap / str(panda_id) / "HPCJobs.json", "w") as handle:
            json.dump({panda_id: definition(panda_id)}, handle)
    (ap / "worker_pandaids.json").write_text("[7605, 7606]")
    (job,) = HarvesterJobSource(HarvesterFiles(ap, per_job_dirs=True), **FAST).get_jobs(REQUEST)
    assert job.panda_id == 7605
    assert not (ap / "7605" / "jobReport.json").exists()
    assert (ap / "7606" / "jobReport.json").exists()


@pytest.mark.reliability("faults", "harvester", "half-fed job (PandaID list missing or stale): not taken")
def test_job_taken_only_once_worker_pandaids_lists_it(ap: Path) -> None:
    """``feed_jobs`` writes the job file (l.397), ``PoolFileCatalog_H.xml`` (l.400), the input links (l.411) and
    ``worker_pandaids.json`` last (l.420): a complete job file is not taken while the list is missing or still the
    previous job's, so stage-in never starts before the inputs are linked."""
    feed_job_file_only(ap, 7607)
    source = HarvesterJobSource(HarvesterFiles(ap), wait_timeout=0.2, **FAST)
    assert source.get_jobs(REQUEST) == ()
    (ap / "worker_pandaids.json").write_text("[7600]")  # the previous feed's list
    assert source.get_jobs(REQUEST) == ()
    assert (ap / "HPCJobs.json").exists()
    os.symlink(ap / "PoolFileCatalog_H.xml", ap / "EVNT.input.pool.root.1")  # the links (l.411), then the list
    (ap / "worker_pandaids.json").write_text("[7607]")
    (job,) = source.get_jobs(REQUEST)
    assert job.panda_id == 7607


def test_default_file_names_are_harvesters(ap: Path) -> None:
    """The default names are those of Harvester's shipped configuration (``templates/panda/
    panda_harvester.cfg.rpmnew.template`` d561b72 l.685 ``jobReportFile = jobReport.json``, l.697 ``jobSpecFile =
    HPCJobs.json``) and the fallbacks of ``base_messenger.py`` (l.42 ``kill_worker.json``, l.44
    ``worker_heartbeat.json``); ``pandaJobData.out`` is the messenger's fallback when the configuration names no
    ``jobSpecFile`` (l.30), and is set with ``job_file``."""
    files = HarvesterFiles(ap)
    assert (files.job_file, files.job_report, files.kill_worker, files.heartbeat) == (
        "HPCJobs.json", "jobReport.json", "kill_worker.json", "worker_heartbeat.json")
    assert HarvesterFiles(ap, job_file="pandaJobData.out").job_file == "pandaJobData.out"
