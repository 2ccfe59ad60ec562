"""The names and places of Harvester's shared files (private: import from :mod:`pilotlib.panda.harvester`)."""

from __future__ import annotations

from pathlib import Path

import attrs

from pilotlib.panda._file_errors import LaunchDirFormatError

__all__ = ["HarvesterFiles"]


def _name(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"{attribute.name} must be a plain file name, got {value!r}")


@attrs.frozen
class HarvesterFiles:
    """Where Harvester and the pilot exchange files: the access point and every file name.

    The defaults are Harvester's (HSF/harvester ``templates/panda/panda_harvester.cfg.rpmnew.template``, section
    ``[payload_interaction]``, and the fallbacks in ``pandaharvester/harvestermessenger/base_messenger.py``). Set a
    name to what the Harvester instance's configuration says when it differs.

    Files about one job (attributes, job report, outputs, event updates, and the job file itself) live in the job's
    directory: the access point, or ``<access point>/<PandaID>`` when ``per_job_dirs`` is set (Harvester's many-jobs
    workers, ``WorkSpec.MT_MultiJobs``, ``SharedFileMessenger.get_access_point``). Files about the worker (PandaID
    list, job and event requests, event ranges, kill request, heartbeat) always live in the access point itself,
    shared by every rank of an HPC worker; a file that is read, changed and written back has its lock file
    ``.<name>.lock`` beside it (:mod:`pilotlib.panda._files`).

    Attributes:
        access_point: the worker's access point (the pilot's launch directory).
        per_job_dirs: each job has its own sub-directory named by its PandaID.
        job_file: the job definition(s), ``jobSpecFile`` (Harvester's fallback name is ``pandaJobData.out``).
        panda_ids: ``pandaIDsFile``, the JSON list of the worker's PandaIDs.
        job_request: ``jobRequestFile``, the pilot's request for more jobs.
        worker_attributes: ``workerAttributesFile``, the would-be ``updateJob`` fields.
        job_report: ``jobReportFile``, the payload's job report (Harvester's ``metaData``).
        event_status: ``eventStatusDumpJsonFile``, the files for Harvester to stage out.
        event_request: ``eventRequestFile``, the pilot's request for event ranges.
        event_ranges: ``eventRangesFile``, Harvester's answer with event ranges.
        event_updates: ``updateEventsFile``, event range status updates.
        pool_file_catalog: ``xmlPoolCatalogFile``, the catalogue of pre-staged inputs.
        kill_worker: ``killWorkerFile``, the pilot's "the worker is done" marker.
        heartbeat: ``heartbeatFile``, whose modification time is the worker's heartbeat.
    """

    access_point: Path = attrs.field(converter=Path)
    per_job_dirs: bool = False
    job_file: str = attrs.field(default="HPCJobs.json", validator=_name)
    panda_ids: str = attrs.field(default="worker_pandaids.json", validator=_name)
    job_request: str = attrs.field(default="worker_requestjob.json", validator=_name)
    worker_attributes: str = attrs.field(default="worker_attributes.json", validator=_name)
    job_report: str = attrs.field(default="jobReport.json", validator=_name)
    event_status: str = attrs.field(default="event_status.dump.json", validator=_name)
    event_request: str = attrs.field(default="worker_requestevents.json", validator=_name)
    event_ranges: str = attrs.field(default="JobsEventRanges.json", validator=_name)
    event_updates: str = attrs.field(default="worker_updateevents.json", validator=_name)
    pool_file_catalog: str = attrs.field(default="PoolFileCatalog_H.xml", validator=_name)
    kill_worker: str = attrs.field(default="kill_worker.json", validator=_name)
    heartbeat: str = attrs.field(default="worker_heartbeat.json", validator=_name)

    def job_dir(self, panda_id: int | str) -> Path:
        """The directory of one job's files.

        Raises:
            LaunchDirFormatError: ``panda_id`` is not a number (it would name another directory).
        """
        if not self.per_job_dirs:
            return self.access_point
        text = str(panda_id).strip()
        if not text.isdigit():
            raise LaunchDirFormatError(f"a PandaID must be a number, got {panda_id!r}")
        return self.access_point / text

    def worker_path(self, name: str) -> Path:
        """The path of a worker-level file (``name`` is one of the file names above)."""
        return self.access_point / name

    def job_path(self, panda_id: int | str, name: str) -> Path:
        """The path of a job-level file."""
        return self.job_dir(panda_id) / name
