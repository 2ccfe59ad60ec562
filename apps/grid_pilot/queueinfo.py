"""The information service in the grid pilot: the queue's description -> copytools, storages and limits per job.

Built once per pilot (:func:`build_info_service`) from the settings, as pilot3 does (``pilot/util/default.cfg``
[Information]: ``queuedata_url`` ``{pandaqueue}.all.json`` under the server's ``/cache/schedconfig/``, and the storage
descriptions ``ddmendpoints.json``; ``pilot/info/infoservice.py`` tries local files before URLs and caches
downloads). Without any source (a launch-directory pilot given no file or URL) there is no service and the command
line says everything.

Per job (:class:`JobSetups`): the job's ``--overwriteQueueData``/``--overwriteStorageData`` (pilot3
``pilot/info/jobinfo.py``) above the queue; copytools per activity (``pr`` stage-in, ``pw`` outputs, ``pl`` log,
pilot3 ``pilot/control/data.py``) with ``--copytool`` as an override.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from apps.grid_pilot.settings import Mode, Settings
from pilotlib.errors import PilotError
from pilotlib.info import (
    CachedSource,
    FileSource,
    InfoService,
    QueueDescription,
    Source,
    UrlSource,
    extract_overrides,
)
from pilotlib.job import Job
from pilotlib.payload import memory_limit_kb
from pilotlib.stop import StopSignal

__all__ = [
    "DEFAULT_COPYTOOLS",
    "JobSetup",
    "JobSetups",
    "PilotLimits",
    "build_info_service",
    "check_queue",
    "pilot_limits",
]

log = logging.getLogger(__name__)

#: The copytools used when neither the command line nor a queue description names any.
DEFAULT_COPYTOOLS = ("mv",)
#: Stage-in's in harvester mode: the inputs are Harvester's links in the access point, never moved out of it.
HARVESTER_COPYTOOLS_IN = ("symlink",)
_MIB = 1024 * 1024


def _sources(file: Path | None, url: str, cache: Path, timeout: float, verify: bool | str, *,
             stop: StopSignal | None) -> list[Source]:
    sources: list[Source] = []
    if file is not None:
        sources.append(FileSource(file))
    if url:
        sources.append(CachedSource(UrlSource(url, timeout=timeout, verify=verify, stop=stop), cache))
    return sources


def build_info_service(settings: Settings, timeout: float = 30.0,
                       stop: StopSignal | None = None) -> InfoService | None:
    """The pilot's information service, or None when the settings name no description source.

    Queue descriptions: ``--queuedata-file``, then ``--queuedata-url`` (cached in ``--cache-dir``); storages the same.
    TLS is verified (against ``--capath`` when given). Each download ends within ``timeout`` seconds, and at once
    when ``stop`` is set.
    """
    cache = settings.cache_dir or settings.workdir
    verify: bool | str = str(settings.ca_path) if settings.ca_path else True
    queues = _sources(settings.queuedata_file, settings.queuedata_source, cache / "queuedata.{pandaqueue}.json",
                      timeout, verify, stop=stop)
    storages = _sources(settings.storagedata_file, settings.storagedata_source, cache / "ddmendpoints.json",
                        timeout, verify, stop=stop)
    if not queues and not storages:
        return None
    return InfoService(queues, storages, pandaqueue=settings.queue or None)


@attrs.frozen
class PilotLimits:
    """The pilot's own limits: the queue's ``maxtime`` shortens the lifetime; its ``timefloor`` applies unless given.

    Attributes:
        lifetime: seconds the pilot may live.
        timefloor: seconds during which a multi-job pilot keeps asking for jobs.
        deadline: the end of the pilot's life, seconds since the epoch.
    """

    lifetime: float
    timefloor: float
    deadline: float


def pilot_limits(settings: Settings, queue: QueueDescription | None, started_epoch: float | None = None) -> PilotLimits:
    """The pilot's lifetime and timefloor from the settings and the queue (the settings' timefloor wins)."""
    lifetime = settings.lifetime
    if queue is not None and queue.maxtime > 0:
        lifetime = min(lifetime, float(queue.maxtime))
    timefloor = settings.timefloor
    if timefloor is None:
        timefloor = float(queue.timefloor_seconds) if queue is not None else 0.0
    began = time.time() if started_epoch is None else started_epoch
    return PilotLimits(lifetime=lifetime, timefloor=timefloor, deadline=began + lifetime)


@attrs.frozen
class JobSetup:
    """What one job uses, from the queue (with the job's overrides) and the command line.

    Attributes:
        tools_in, tools_out, tools_log: copytools for stage-in (``pr``), outputs (``pw``) and the log (``pl``).
        info: the information service for this job (None: no descriptions).
        queue: the queue's description for this job (None: no descriptions).
        job_pars: the job's parameters without the override options (what the payload sees).
    """

    tools_in: tuple[str, ...]
    tools_out: tuple[str, ...]
    tools_log: tuple[str, ...]
    info: InfoService | None
    queue: QueueDescription | None
    job_pars: str

    def memory_limit_kb(self, job: Job, given_kb: int = 0) -> int | None:
        """The payload's PSS limit: ``given_kb`` when set, else from the resource type, cores and queue (pilot3
        ``pilot/user/atlas/memory.py``; grace ``1 + params.pilot_rss_grace/100``, 2.0 when not given)."""
        if given_kb:
            return given_kb
        queue = self.queue
        grace = _grace(queue, "pilot_rss_grace", 2.0)
        return memory_limit_kb(job.resource_type, job.core_count, queue_maxrss_mb=queue.maxrss if queue else 0,
                               queue_corecount=queue.corecount if queue else 1, min_ram_mb=job.min_ram_count,
                               rss_grace=grace)

    def workdir_limit_bytes(self, job: Job) -> int | None:
        """The largest work directory from the queue's ``maxwdir`` (MB), as pilot3 ``pilot/util/monitoring.py``
        (``get_max_allowed_work_dir_size``) computes it: divided by the queue's cores for a single-core job, times
        ``1 + params.pilot_maxwdir_grace/100`` (20 % when not given); None without a ``maxwdir``."""
        queue = self.queue
        if queue is None or queue.maxwdir <= 0:
            return None
        divider = max(queue.corecount, 1) if job.core_count <= 1 else 1
        return int(queue.maxwdir * _MIB // divider * _grace(queue, "pilot_maxwdir_grace", 1.2))


def _grace(queue: QueueDescription | None, key: str, default: float) -> float:
    value = queue.params.get(key) if queue is not None else None
    try:
        return 1.0 + float(str(value)) / 100.0 if value is not None else default
    except ValueError:
        return default


def _tools(given: Sequence[str], queue: QueueDescription | None, activity: str,
           default: tuple[str, ...] = DEFAULT_COPYTOOLS) -> tuple[str, ...]:
    if given:
        return tuple(given)
    if queue is None:
        return default
    return queue.copytools_for(activity)


class JobSetups:
    """Resolves each job's :class:`JobSetup` once and remembers it (thread-safe; the stages ask by job).

    Args:
        settings: the pilot's settings (``--copytool`` overrides).
        info: the pilot's information service, or None.
    """

    def __init__(self, settings: Settings, info: InfoService | None) -> None:
        self._settings = settings
        self._info = info
        self._lock = threading.Lock()
        self._setups: dict[int, JobSetup] = {}

    @property
    def info(self) -> InfoService | None:
        """The pilot's information service."""
        return self._info

    def of(self, job: Job) -> JobSetup:
        """The job's setup.

        Raises:
            PilotError: the job's overrides or the queue description are bad (QUEUEDATANOTOK), no copytool is
                configured (UNKNOWNCOPYTOOL), the description cannot be had (QUEUEDATA).
        """
        with self._lock:
            setup = self._setups.get(job.panda_id)
        if setup is None:
            setup = self._resolve(job)
            with self._lock:
                self._setups[job.panda_id] = setup
        return setup

    def forget(self, job: Job) -> None:
        """Drop a finished job's setup."""
        with self._lock:
            self._setups.pop(job.panda_id, None)

    def _resolve(self, job: Job) -> JobSetup:
        overrides = extract_overrides(job.job_pars)
        info = self._info
        if info is not None and (overrides.queue or overrides.storages):
            log.info("job overrides the queue description queue_fields=%s storages=%s",
                     ",".join(sorted(overrides.queue)), ",".join(sorted(overrides.storages)))
            info = info.for_job(overrides)
        queue = info.queue() if info is not None and info.queue_sources else None
        s = self._settings
        out = _tools(s.copytool_out, queue, "pw")
        default_in = HARVESTER_COPYTOOLS_IN if s.mode is Mode.HARVESTER else DEFAULT_COPYTOOLS
        return JobSetup(tools_in=_tools(s.copytool_in, queue, "pr", default_in), tools_out=out,
                        tools_log=tuple(s.copytool_out) or (_tools((), queue, "pl") if queue else out),
                        info=info, queue=queue, job_pars=overrides.job_pars)


def check_queue(info: InfoService | None) -> QueueDescription | None:
    """The pilot's queue description, checked (a queue that is not active refuses the pilot).

    Raises:
        PilotError: QUEUEDATA, QUEUEDATANOTOK, PANDAQUEUENOTACTIVE or PANDAQUEUENOTONLINE (pilot3 ``pilot.py``).
    """
    if info is None or not info.queue_sources:
        return None
    try:
        return info.queue()
    except PilotError as exc:
        log.error("queue description refused code=%d error=%s", int(exc.code), exc)
        raise
