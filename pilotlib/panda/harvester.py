"""Harvester's shared-file protocol: the pilot's job source, reporter and event-range source in the access point.

Harvester's side is HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py``; pilot3's side is
PanDAWMS/pilot3 ``pilot/util/harvester.py``, ``pilot/control/job.py`` (``get_job_definition_from_file``,
``publish_harvester_reports``) and ``pilot/util/default.cfg`` section ``[Harvester]``. Facts relied on:

- the job file holds ``{"<PandaID>": {definition}}`` (or the url-encoded definition), written non-atomically; the
  pilot reads it again while it is incomplete and renames or removes it once read (see :mod:`._jobfile`);
- ``worker_pandaids.json`` is a JSON list of PandaIDs written after the job files (``feed_jobs``);
- ``worker_requestjob.json`` is ``{"nJobs": N}`` (``job_requested`` reads ``nJobs``, defaulting to 1); Harvester
  removes it after feeding jobs, and the pilot removes it when it finds a new definition (pilot3
  ``remove_job_request_file``);
- ``worker_attributes.json`` is read whole by ``get_work_attributes``; ``JobSpec.set_attributes`` takes ``metaData``
  and ``xml`` out of it, an ``xml`` replacing the report Harvester builds from the files it staged out itself
  (``core_utils.get_output_file_report``), so, as pilot3 does (``publish_work_report``), ``xml``, ``inputfiles``
  and ``outputfiles`` are left out; ``get_job_status_from_attributes`` takes ``jobStatus`` only
  when it is ``finished`` or ``failed``, and ``get_job_attributes_for_panda`` forwards a whitelist of camelCase keys
  (``pilotErrorCode``, ``cpuConsumptionTime``, ``maxRSS``, ``jobMetrics``, ...) to the server;
- ``jobReport.json`` becomes ``metaData``, read in the same pass as the attributes, so it is written before the final
  attributes; pilot3 empties each executor's ``logfileReport`` to keep it small (``publish_job_report``);
- ``event_status.dump.json`` is ``{"<PandaID>": [{path, type, fsize, chksum, guid, eventRangeID, eventStatus}]}``;
  Harvester renames it to ``.read`` while it works and acknowledges by renaming that to ``.read.<timestamp>``,
  so the pilot merges into the plain file and never writes the ``.read`` one (see :mod:`._files`); the merge,
  like every read-modify-write of a shared file, holds an inter-process lock (``.<name>.lock`` beside the file), so
  the ranks of an HPC worker can share the access point;
- ``kill_worker.json`` is checked for existence only (``kill_requested``; ``killWorkerFile`` defaults to
  ``kill_worker.json``). pilot3 touches ``kill_worker`` (``kill_worker_file`` in its ``default.cfg``), a name
  Harvester never looks for; pilotlib writes Harvester's name;
- ``worker_heartbeat.json`` counts by its modification time only (``is_alive``);
- Harvester has no file through which it tells a pilot to stop: it kills the worker through the batch system, so the
  reporter's answers never carry a :class:`~pilotlib.panda.base.ServerCommand`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pilotlib._atomic import wait_until
from pilotlib.job import Job
from pilotlib.panda._file_errors import (
    BrokenJobFileError,
    LaunchDirFileError,
    LaunchDirFormatError,
    LaunchDirTimeoutError,
)
from pilotlib.panda._files import atomic_write_json, merge_entries, read_json, remove_file
from pilotlib.panda._harvester_events import HarvesterEventRanges, dump_key
from pilotlib.panda._harvester_settings import HarvesterFiles
from pilotlib.panda._jobfile import Consume, consume_job_file, read_job_file
from pilotlib.panda._times import update_field
from pilotlib.panda.base import JobRequest, JobUpdate, UpdateAnswer
from pilotlib.stop import Stop, StopSignal

__all__ = [
    "BrokenJobFileError",
    "Consume",
    "HarvesterEventRanges",
    "HarvesterFiles",
    "HarvesterJobSource",
    "HarvesterReporter",
    "LaunchDirFileError",
    "LaunchDirFormatError",
    "LaunchDirTimeoutError",
    "StageOutFile",
    "declared_files",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------ job source
class HarvesterJobSource:
    """Jobs from Harvester's job file (implements :class:`~pilotlib.panda.base.JobSource`).

    The first call takes the job Harvester placed before the pilot started. Every later call first asks for more
    with ``worker_requestjob.json`` (``{"nJobs": request.n_jobs}``) and waits for a new job file. A call returns an
    empty sequence when no job came before ``wait_timeout`` or when ``stop`` is set.

    A job is taken only once ``worker_pandaids.json`` lists its PandaID: Harvester's ``feed_jobs`` writes that file
    last, after the job file, ``PoolFileCatalog_H.xml`` and the input links, so stage-in never starts before the
    inputs are in place. When a job is taken, the ``jobReport.json`` left in its directory by an earlier job is
    removed (Harvester would send it as this job's ``metaData``).

    Rank ``rank`` (an HPC worker's MPI rank, 0 otherwise) takes entry ``rank`` of ``worker_pandaids.json``: with
    ``per_job_dirs`` its job file is ``<access point>/<PandaID>/<job file>``; otherwise, when the one job file holds
    several jobs, it takes the one with that PandaID.
    """

    def __init__(
        self,
        files: HarvesterFiles,
        *,
        rank: int = 0,
        wait_timeout: float = 60.0,
        read_timeout: float = 30.0,
        poll_interval: float = 0.5,
        consume: Consume = Consume.RENAME,
        stop: StopSignal | None = None,
    ) -> None:
        """Create the source.

        Args:
            files: the access point and file names.
            rank: which entry of ``worker_pandaids.json`` (or of a multi-job file) this pilot takes.
            wait_timeout: seconds to wait for a job file (pilot3 waits 60 one-second polls in Harvester mode).
            read_timeout: seconds a job file that exists may stay half-written before it is an error.
            poll_interval: seconds between looks at the access point.
            consume: what to do with a job file once read.
            stop: set it to make a waiting call return at once.
        """
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self._files = files
        self._rank = rank
        self._wait_timeout = wait_timeout
        self._read_timeout = read_timeout
        self._interval = poll_interval
        self._consume = consume
        self._stop: StopSignal = stop or Stop()
        self._served: set[int] = set()
        self._jobs: dict[int, Job] = {}

    def served_job(self, panda_id: int) -> Job | None:
        """The job this source handed out with that PandaID, if any (the reporter reads its file list)."""
        return self._jobs.get(panda_id)

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        """Return this rank's next job (one at most), or an empty sequence.

        Raises:
            pilotlib.errors.JobDefinitionError: the job file is bad or stayed half-written (CONVERSIONFAILURE, ...).
            LaunchDirFileError: a file can not be read or written.
        """
        if self._served:
            self._request_more(max(request.n_jobs, 1))
        found: list[Job] = []

        def look() -> bool:
            job = self._look()
            if job is not None:
                found.append(job)
            return job is not None

        if not wait_until(look, self._wait_timeout, self._interval, self._stop) and not self._stop.is_set():
            log.info("no job file from harvester seconds=%.0f", self._wait_timeout)
        if found:
            self._served.add(found[0].panda_id)
            self._jobs[found[0].panda_id] = found[0]
            remove_file(self._files.worker_path(self._files.job_request))
            remove_file(self._files.job_path(found[0].panda_id, self._files.job_report))
            log.info("took job from harvester panda_id=%s", found[0].panda_id)
        return tuple(found)

    def _request_more(self, n_jobs: int) -> None:
        path = self._files.worker_path(self._files.job_request)
        if path.exists():
            log.info("job request file already there path=%s", path)
            return
        atomic_write_json(path, {"nJobs": n_jobs})
        log.info("asked harvester for jobs n_jobs=%d", n_jobs)

    def _panda_ids(self) -> list[str]:
        document = read_json(self._files.worker_path(self._files.panda_ids))
        if not isinstance(document, list):
            return []
        return [str(item).strip() for item in document]

    def _look(self) -> Job | None:
        ids = self._panda_ids()
        wanted = ids[self._rank] if self._rank < len(ids) else None
        if self._files.per_job_dirs:
            if wanted is None or not wanted.isdigit() or int(wanted) in self._served:
                return None
            path = self._files.job_path(wanted, self._files.job_file)
        else:
            path = self._files.worker_path(self._files.job_file)
        jobs = read_job_file(
            path, timeout=self._read_timeout, interval=self._interval, stop=self._stop, confirmed=ids.__contains__
        )
        job = self._choose(jobs or (), wanted)
        if job is not None and str(job.panda_id) not in ids:
            log.debug("job file read, waiting for %s to list it panda_id=%s", self._files.panda_ids, job.panda_id)
            return None
        if job is not None and (len(jobs or ()) == 1 or self._files.per_job_dirs):
            consume_job_file(path, self._consume)
        return job

    def _choose(self, jobs: Sequence[Job], wanted: str | None) -> Job | None:
        fresh = [job for job in jobs if job.panda_id not in self._served]
        if len(jobs) == 1 and self._rank == 0:
            return fresh[0] if fresh else None
        if wanted is not None:
            return next((job for job in fresh if str(job.panda_id) == wanted), None)
        return None


# -------------------------------------------------------------------------------------------------------- reporter
_STAGEOUT_TYPES = frozenset({"output", "log", "es_output", "zip_output", "checkpoint"})


@attrs.frozen
class StageOutFile:
    """One file for Harvester to stage out, an entry of ``event_status.dump.json``.

    Attributes:
        path: the file's absolute path (Harvester takes the LFN from its base name).
        type: ``output``, ``log``, ``es_output``, ``zip_output`` or ``checkpoint``.
        fsize: bytes (Harvester stats the file when absent).
        chksum: adler32, 8 hex digits (Harvester computes it when absent).
        guid: the file's GUID (Harvester makes one when absent).
        event_range_id: the event range an ``es_output`` belongs to.
        event_status: the event range's status (``finished``, ``failed``), for event outputs.

    Raises:
        LaunchDirFormatError: an unknown type, no path, or an event output without its range and status.
    """

    path: str
    type: str = "output"
    fsize: int | None = None
    chksum: str | None = None
    guid: str | None = None
    event_range_id: str | None = None
    event_status: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.type not in _STAGEOUT_TYPES:
            raise LaunchDirFormatError(f"stage-out type {self.type!r} is not one of {sorted(_STAGEOUT_TYPES)}")
        if not self.path:
            raise LaunchDirFormatError("a file to stage out needs a path")
        if self.type in ("es_output", "zip_output") and not (self.event_range_id and self.event_status):
            # Harvester's get_files_to_stage_out reads eventStatus of every event output
            raise LaunchDirFormatError(f"{self.type} {self.path} needs event_range_id and event_status")

    def to_wire(self) -> dict[str, Any]:
        """The JSON entry, without the unknown values."""
        wire = {
            "path": self.path,
            "type": self.type,
            "fsize": self.fsize,
            "chksum": self.chksum,
            "guid": self.guid,
            "eventRangeID": self.event_range_id,
            "eventStatus": self.event_status,
        }
        return {key: value for key, value in wire.items() if value is not None}


_NOT_FORWARDED = frozenset({"xml", "inputfiles", "outputfiles"})


def _local_path(surl: Any, fallback: Path) -> str:
    """The file's local path: its URL when that is one (``/x`` or ``file:///x``), else ``fallback``."""
    text = str(surl or "")
    if text.startswith("file://"):
        text = text[len("file://"):]
    return text if text.startswith("/") else str(fallback)


def declared_files(xml: Any, job: Job | None, local_dir: Path) -> list[StageOutFile]:
    """The ``event_status.dump.json`` entries of a final update's output file info (the ``xml`` field).

    Each transferred file (outputs and the log, ``{lfn: {guid, fsize, adler32, surl}}``) becomes an ``output``
    entry, or ``log`` for the job's log file; its path is its URL when that is a local path, else
    ``<local_dir>/<lfn>``. A value that is not the JSON object gives no entry.
    """
    try:
        info = json.loads(xml) if isinstance(xml, str) else xml
    except json.JSONDecodeError:
        return []
    if not isinstance(info, Mapping):
        return []
    log_lfn = job.log.lfn if job is not None and job.log is not None else None
    entries = []
    for lfn, value in info.items():
        desc = value if isinstance(value, Mapping) else {}
        size = desc.get("fsize")
        entries.append(StageOutFile(
            path=_local_path(desc.get("surl"), local_dir / str(lfn)),
            type="log" if lfn == log_lfn else "output",
            fsize=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            chksum=str(desc["adler32"]) if desc.get("adler32") else None,
            guid=str(desc["guid"]) if desc.get("guid") else None,
        ))
    return entries


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _job_report(meta: Any) -> Any:
    """The job report to write from ``metaData`` (a dict or its JSON text), with executors' log reports emptied."""
    report = meta
    if isinstance(meta, str):
        try:
            report = json.loads(meta)
        except json.JSONDecodeError:
            return None
    if not isinstance(report, Mapping):
        return None
    report = copy.deepcopy(dict(report))
    for executor in report.get("executor") or ():
        if isinstance(executor, dict) and "logfileReport" in executor:
            executor["logfileReport"] = {}
    return report


class HarvesterReporter:
    """Job updates as Harvester's files (implements :class:`~pilotlib.panda.base.JobReporter`).

    Every update rewrites the job's ``worker_attributes.json`` (the update's fields in camelCase, without ``xml``,
    plus ``jobId``, ``state`` and ``jobStatus``; ``startTime`` and ``endTime`` in the server's
    ``%Y-%m-%d %H:%M:%S`` UTC form, which Harvester forwards unchanged) and touches ``worker_heartbeat.json``. The
    final update first declares the job's outputs and log in ``event_status.dump.json`` (from its ``xml``, see
    :func:`declared_files`; Harvester's ``get_files_to_stage_out`` reads them, and without them reports no outputs
    and builds a log tarball of its own), then writes ``jobReport.json`` from ``metaData``. Answers are always
    accepted, without a command.
    """

    def __init__(
        self,
        files: HarvesterFiles,
        *,
        job_of: Callable[[int], Job | None] = lambda _panda_id: None,
        local_dir: Callable[[int], Path] | None = None,
        heartbeats: bool = True,
    ) -> None:
        """Create the reporter for the access point ``files.access_point``.

        Args:
            files: the access point and file names.
            job_of: the job of a PandaID (to tell its log from its outputs), e.g. the job source's ``served_job``.
            local_dir: where a job's files are when their URL is not a local path (default: the job's directory in
                the access point).
            heartbeats: each update renews ``worker_heartbeat.json``; False leaves that to another writer (the
                ranks of an HPC worker: only rank 0 writes the worker's one heartbeat file).
        """
        self._files = files
        self._job_of = job_of
        self._local_dir = local_dir or files.job_dir
        self._heartbeats = heartbeats

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        """Write the update; see the class description.

        Raises:
            LaunchDirFormatError: a field can not be written as JSON (CONVERSIONFAILURE).
            LaunchDirFileError: a file can not be written (FILEHANDLINGFAILURE).
        """
        attributes = {_camel(key): update_field(key, value) for key, value in update.fields.items()
                      if key not in _NOT_FORWARDED}
        if update.final:
            job = self._job_of(update.panda_id)
            files = declared_files(update.fields.get("xml"), job, self._local_dir(update.panda_id))
            self.add_stageout_files(update.panda_id, files)
        if update.final and "metaData" in attributes:
            report = _job_report(attributes["metaData"])
            if report is None:
                log.warning("metaData is not a JSON object, no job report written panda_id=%s", update.panda_id)
            else:
                atomic_write_json(self._files.job_path(update.panda_id, self._files.job_report), report, "job report")
                del attributes["metaData"]
        attributes.update(jobId=update.panda_id, state=update.state, jobStatus=update.state)
        path = self._files.job_path(update.panda_id, self._files.worker_attributes)
        atomic_write_json(path, attributes, "worker attributes")
        if self._heartbeats:
            self.heartbeat()
        log.info("wrote worker attributes panda_id=%s state=%s final=%s", update.panda_id, update.state, update.final)
        return UpdateAnswer(accepted=True)

    def heartbeat(self) -> None:
        """Renew ``worker_heartbeat.json`` (Harvester looks at its modification time)."""
        atomic_write_json(self._files.worker_path(self._files.heartbeat), {"time": time.time()})

    def add_stageout_files(self, panda_id: int, files: Sequence[StageOutFile]) -> None:
        """Add files for Harvester to stage out to the job's ``event_status.dump.json``, merging, never overwriting.

        A file already declared (same path and event range) is replaced; one Harvester already holds in the
        ``.read`` file is not declared again. Safe with other processes merging into the same file (other ranks of
        an HPC worker): the merge holds the file's lock (:func:`~pilotlib.panda._files.merge_entries`).

        Raises:
            LaunchDirFormatError: a value can not be written as JSON.
            LaunchDirFileError: the file can not be written.
            LaunchDirTimeoutError: another process held the file's lock too long (EXCEEDEDMAXWAITTIME).
        """
        if not files:
            return
        path = self._files.job_path(panda_id, self._files.event_status)
        merge_entries(path, {str(panda_id): [f.to_wire() for f in files]}, dump_key)
        log.info("declared files for stage-out panda_id=%s count=%d", panda_id, len(files))

    def kill_worker(self) -> None:
        """Tell Harvester the worker is done: create ``kill_worker.json`` in the access point."""
        atomic_write_json(self._files.worker_path(self._files.kill_worker), {})
        log.info("asked harvester to end the worker")
