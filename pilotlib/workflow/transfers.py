"""Stage-in, stage-out and the log of a pilot: :mod:`pilotlib.transfer` behind the pipeline's stager interfaces.

Where files are, per storage (DDM endpoint):

- described by the information service: inputs are read through the ``ddmEndPointIn`` storage's read protocols
  at the deterministic path (:class:`StorageReplicas`, when no Rucio catalogue is configured), outputs and the log
  written through their storage's write protocols at the deterministic path (pilot3 ``pilot/api/data.py``:
  ``resolve_surl`` on a deterministic storage); a file without ``ddmEndPointOut`` goes to the queue's first ``pw``
  storage;
- not described (or no information service): the pilot's own places (the grid pilot's ``--input-dir`` and
  ``--output-dir``): inputs at ``<input place>/<lfn>``, outputs and the log under the output place in the
  deterministic layout ``<scope as path>/<md5[0:2]>/<md5[2:4]>/<lfn>``.

Copytools per activity come from the job's :class:`~pilotlib.jobsetup.JobSetup` on its run (the queue's
``acopytools`` or the pilot's choice).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib.containers.middleware import MiddlewareLauncher
from pilotlib.containers.registry import RuntimeRegistry
from pilotlib.errors import PilotError
from pilotlib.info import Activity, InfoService
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.jobsetup import JobSetup
from pilotlib.panda.base import ZipRecord
from pilotlib.pipeline import JobRun
from pilotlib.space import disk_is_full, free_bytes
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import CopytoolFallback, TransferResult
from pilotlib.transfer.logtar import LogCreationTimeoutError, LogTarballError, create_log_tarball, stage_out_log
from pilotlib.transfer.paths import StorageProtocol, deterministic_url
from pilotlib.transfer.registry import CopytoolRegistry
from pilotlib.transfer.replicas import Replica
from pilotlib.transfer.stagein import StageIn
from pilotlib.transfer.stageout import StageOut
from pilotlib.workflow.state import PilotState

__all__ = ["LOCAL_STORAGE", "PlaceReplicas", "StorageReplicas", "TransferStages", "as_url", "storage_protocols"]

log = logging.getLogger(__name__)

#: The storage of a file whose job names none (an empty ``ddmEndPointIn``, or an empty ``ddmEndPointOut`` on a queue
#: that names no storage for the activity): the pilot's own places.
LOCAL_STORAGE = "LOCAL"
PILOT_LOG_IN_TARBALL = "pilotlog.txt"


def as_url(place: str) -> str:
    """A directory path as a ``file://`` URL; URLs are kept."""
    return place if "://" in place else "file://" + str(Path(place).absolute())


class PlaceReplicas:
    """Every input has one replica: ``<base>/<lfn>`` (a :class:`~pilotlib.transfer.replicas.ReplicaSource`)."""

    def __init__(self, base: str) -> None:
        self._base = as_url(base).rstrip("/")

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """One replica per file, on the job's input storage (or ``LOCAL``)."""
        sep = "//" if self._base.startswith("root://") and self._base.count("/") == 2 else "/"
        return {f.did: (Replica(f.ddmendpoint or LOCAL_STORAGE, f"{self._base}{sep}{f.lfn}"),) for f in files}


def place_protocol(place: str) -> StorageProtocol:
    """A directory or URL as a storage protocol (``file:///a/b`` -> endpoint ``file://``, path ``/a/b``)."""
    endpoint, _, path = as_url(place).partition("://")
    host, _, rest = path.partition("/")
    return StorageProtocol(f"{endpoint}://{host}", "/" + rest)


def storage_protocols(info: InfoService | None, storage: str, activity: str) -> tuple[StorageProtocol, ...]:
    """The storage's protocols for an activity from the information service; () when it is not described or not
    usable (the reason is logged)."""
    if info is None or not storage:
        return ()
    try:
        if not info.storage_sources and storage not in info.storage_overrides:
            return ()
        description = info.storage(storage)
    except PilotError as exc:
        log.info("storage not described, using the pilot's place storage=%s reason=%s", storage, exc)
        return ()
    if not description.is_active:
        log.warning("storage not active storage=%s state=%s", storage, description.state)
        return ()
    return tuple(StorageProtocol(p.endpoint, p.path or "/") for p in description.protocols_for(activity))


class StorageReplicas:
    """Inputs on their ``ddmEndPointIn`` storage at the deterministic path, read through its read protocols; the
    pilot's place when the storage is not described (a :class:`~pilotlib.transfer.replicas.ReplicaSource`).
    """

    def __init__(self, info: InfoService | None, place: str) -> None:
        self._info = info
        self._place = PlaceReplicas(place) if place else None

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """Replicas per DID: one per read protocol of the file's storage, else the place's, else none."""
        found: dict[str, tuple[Replica, ...]] = {}
        for spec in files:
            storage = spec.ddmendpoint or ""
            protocols = storage_protocols(self._info, storage, Activity.READ)
            found[spec.did] = tuple(Replica(storage, deterministic_url(p, spec.scope or "", spec.lfn))
                                    for p in protocols)
        unplaced = [f for f in files if not found[f.did]]
        if unplaced and self._place is not None:
            found.update(self._place.list_replicas(unplaced))
        return found


class TransferStages:
    """Stage-in, stage-out and log stage-out of one pilot: the stages' ``InputStager``, ``OutputStager``, ``LogStager``.

    Args:
        registry: the copytools.
        input_url: the place of inputs whose storage is not described ("" for none; ``{panda_id}`` is replaced by
            the job's PandaID, e.g. Harvester's per-job directories).
        output_url: the place of outputs and logs whose storage is not described (``{panda_id}`` is replaced too).
        state: the pilot's state directory: each job's own pilot log is there (copied into its log tarball); when
            the log tarball cannot be made (a full disk), the job's pilot log alone is packed there under the log's
            name and staged out instead, the reserve released first on a full disk (None: neither).
        middleware: how a copytool not usable on the node is run in the job's middleware container
            (:attr:`JobSetup.middleware <pilotlib.jobsetup.JobSetup.middleware>`; the default runs its image's
            ``python3``).
    """

    def __init__(
        self,
        registry: CopytoolRegistry,
        input_url: str,
        output_url: str,
        *,
        state: PilotState | None = None,
        middleware: MiddlewareLauncher | None = None,
    ) -> None:
        self._state = state
        self._middleware = middleware or MiddlewareLauncher(RuntimeRegistry(base_env=registry.base_env))
        self._registry = registry
        self._input_url = input_url
        self._output_url = output_url

    def stage_in(self, run: JobRun, stop: StopSignal) -> Sequence[TransferResult]:
        """Copy the inputs into the work directory, checksums verified; ``stop`` cancels the copies and starts no
        other."""
        job, workdir, setup = run.job, run.workdir, run.setup
        local = {f.ddmendpoint or LOCAL_STORAGE for f in job.inputs} | set(_queue_storages(setup, "pr"))
        stage = StageIn(self._registry, setup.tools_in, workdir,
                        replicas=StorageReplicas(setup.info, self._input_url.replace("{panda_id}", str(job.panda_id))),
                        local_storages=local, fallback=self._fallback(setup))
        return stage.run(job, stop)

    def _fallback(self, setup: JobSetup) -> CopytoolFallback | None:
        return self._middleware.fallback(setup.middleware, self._registry.base_env)

    def _stage_out(self, job: Job, workdir: Path, setup: JobSetup, tools: Sequence[str], activity: str, *,
                   timeout_cap: float | None = None) -> StageOut:
        default = next(iter(_queue_storages(setup, activity)), LOCAL_STORAGE)
        names = {f.ddmendpoint or default for f in job.outputs + ((job.log,) if job.log else ())}
        place = place_protocol(self._output_url.replace("{panda_id}", str(job.panda_id)))
        storages = {name: storage_protocols(setup.info, name, activity) or (place,) for name in names}
        return StageOut(self._registry, tools, workdir, storages=storages, default_storage=default,
                        timeout_cap=timeout_cap, attempts=2 if timeout_cap is None else 1,
                        fallback=self._fallback(setup))

    def stage_out(self, run: JobRun, stop: StopSignal) -> Sequence[TransferResult]:
        """Send the outputs (not the log) to their storages; ``stop`` cancels the copies and starts no other. An
        event-service job has none here: its ranges' outputs were stored as they came (pilot3 stages out only the
        log of such a job)."""
        if run.job.event_service:
            return ()
        stage = self._stage_out(run.job, run.workdir, run.setup, run.setup.tools_out, Activity.WRITE)
        return stage.run(run.job, None, stop)

    def store_event_file(self, run: JobRun, path: Path, num_events: int,
                         stop: StopSignal | None = None) -> ZipRecord:
        """Store a file of the job's work directory holding ``num_events`` ranges' outputs on the queue's
        event-service storage (``es_events``, then ``pw``), scope ``transient`` (pilot3
        ``pilot/eventservice/workexecutor/plugins/genericexecutor.py`` ``stageout_es_real``).

        Raises:
            PilotError: the copy failed (its code).
        """
        spec = FileSpec(lfn=path.name, kind=FileKind.OUTPUT, scope="transient")
        job = attrs.evolve(run.job, outputs=(spec,), log=None)
        stage = self._stage_out(job, run.workdir, run.setup, run.setup.tools_out, Activity.ES_EVENTS)
        (result,) = stage.run(job, None, stop)
        if result.error is not None:
            raise result.error
        storage_id = -1
        if run.setup.info is not None and result.ddmendpoint and result.ddmendpoint != LOCAL_STORAGE:
            with contextlib.suppress(PilotError):
                storage_id = run.setup.info.storage(result.ddmendpoint).pk
        checksum = result.checksum[1] if result.checksum else ""
        return ZipRecord(lfn=path.name, fsize=result.size or 0, adler32=checksum, objstore_id=storage_id,
                         num_events=num_events)

    def stage_out_log(self, run: JobRun, timeout_cap: float | None = None,
                      stop: StopSignal | None = None) -> TransferResult:
        """Pack the work directory (without inputs, with the job's own pilot log) as the log tarball and send it.

        The job's pilot log lives beside the work directory while the job runs (a log written inside it would keep
        the looping-job check from ever firing) and is copied in just before the tarball is made. ``timeout_cap``
        (the pilot is stopping) bounds the tarball and the copy, one try; ``stop`` ends the tarball and cancels the
        copy (the log's time is over), the pilot log alone included.
        """
        job, workdir, setup = run.job, run.workdir, run.setup
        if self._state is not None:
            with contextlib.suppress(OSError):  # no log yet, or no work directory: the tarball is made regardless
                shutil.copyfile(self._state.job_log(job.panda_id), workdir / PILOT_LOG_IN_TARBALL)
        stage = self._stage_out(job, workdir, setup, setup.tools_log, Activity.LOG, timeout_cap=timeout_cap)
        result = stage_out_log(stage, job, timeout=timeout_cap or 600.0, stop=stop)
        if not isinstance(result.error, LogTarballError) or isinstance(result.error, LogCreationTimeoutError):
            return result
        return self._fallback_log(job, setup, result, timeout_cap, stop)

    def _fallback_log(self, job: Job, setup: JobSetup, failed: TransferResult, timeout_cap: float | None,
                      stop: StopSignal | None) -> TransferResult:
        """Stage out the job's own pilot log alone, packed in the state directory under the log's name; the first
        failure when that cannot be done either (its message then says both)."""
        state = self._state
        if state is None or failed.error is None or job.log is None:
            return failed
        folder = state.log_fallback(job.panda_id)
        try:
            self._room_for(folder, state)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(state.job_log(job.panda_id), folder / PILOT_LOG_IN_TARBALL)
            create_log_tarball(folder, job, timeout=timeout_cap or 600.0, stop=stop)
        except (OSError, LogTarballError) as exc:
            log.error("log fallback failed lfn=%s error=%s", failed.lfn, exc)
            shutil.rmtree(folder, ignore_errors=True)
            error = type(failed.error)(f"{failed.error}; the pilot log alone could not be packed either: {exc}")
            return attrs.evolve(failed, error=error)
        log.warning("log tarball replaced by the pilot log alone lfn=%s reason=%s", failed.lfn, failed.error)
        stage = self._stage_out(job, folder, setup, setup.tools_log, Activity.LOG, timeout_cap=timeout_cap)
        (result,) = stage.run(job, (job.log,), stop)
        shutil.rmtree(folder, ignore_errors=True)
        return result

    @staticmethod
    def _room_for(folder: Path, state: PilotState) -> None:
        """Release the reserve when ``folder``'s file system is full (``tar`` reports a full disk as a failed
        command, not as ENOSPC, so the reserve cannot wait for the write to fail)."""
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and disk_is_full(free_bytes(existing)):
            state.reserve.release()


def _queue_storages(setup: JobSetup, activity: str) -> Collection[str]:
    if setup.queue is None:
        return ()
    try:
        return setup.queue.storages_for(activity)
    except PilotError:
        return ()
