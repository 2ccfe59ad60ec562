"""The pilot's queue: where its description is read from, the check that it may run, and the pilot's limits.

pilot3 reads the queue description from ``{pandaqueue}.all.json`` under the server's ``/cache/schedconfig/`` and the
storage descriptions from ``ddmendpoints.json`` (``pilot/util/default.cfg`` [Information]), trying local files before
URLs and caching downloads (``pilot/info/infoservice.py``); a queue that is not active refuses the pilot
(``pilot.py``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import attrs

from pilotlib.errors import PilotError
from pilotlib.info import CachedSource, FileSource, InfoService, QueueDescription, Source, UrlSource
from pilotlib.stop import StopSignal

__all__ = [
    "DEFAULT_LIFETIME",
    "DescriptionPlaces",
    "PilotLimits",
    "build_info_service",
    "check_queue",
    "pilot_limits",
]

log = logging.getLogger(__name__)

#: Seconds a pilot may live unless told otherwise: 90 hours, pilot3's default ``--lifetime`` (``pilot.py``).
DEFAULT_LIFETIME = 324000.0


@attrs.frozen
class DescriptionPlaces:
    """Where the queue and storage descriptions are read from: local files first, then URLs (``{pandaqueue}`` is
    replaced) cached in ``cache_dir``; TLS verified against ``ca_path`` (None: the system store)."""

    cache_dir: Path
    queue_file: Path | None = None
    queue_url: str = ""
    storage_file: Path | None = None
    storage_url: str = ""
    ca_path: Path | None = None


def _sources(file: Path | None, url: str, cache: Path, timeout: float, verify: bool | str, *,
             stop: StopSignal | None) -> list[Source]:
    sources: list[Source] = []
    if file is not None:
        sources.append(FileSource(file))
    if url:
        sources.append(CachedSource(UrlSource(url, timeout=timeout, verify=verify, stop=stop), cache))
    return sources


def build_info_service(places: DescriptionPlaces, pandaqueue: str, timeout: float = 30.0,
                       stop: StopSignal | None = None) -> InfoService | None:
    """The pilot's information service, or None when ``places`` name no description source (a launch-directory
    pilot given no file or URL: the pilot's own choices say everything). Each download ends within ``timeout``
    seconds, and at once when ``stop`` is set."""
    verify: bool | str = str(places.ca_path) if places.ca_path is not None else True  # checked by the source
    queues = _sources(places.queue_file, places.queue_url, places.cache_dir / "queuedata.{pandaqueue}.json",
                      timeout, verify, stop=stop)
    storages = _sources(places.storage_file, places.storage_url, places.cache_dir / "ddmendpoints.json",
                        timeout, verify, stop=stop)
    if not queues and not storages:
        return None
    return InfoService(queues, storages, pandaqueue=pandaqueue or None)


def check_queue(info: InfoService | None) -> QueueDescription | None:
    """The pilot's queue description, checked (a queue that is not active refuses the pilot); None without one.

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


def pilot_limits(lifetime: float, timefloor: float | None, queue: QueueDescription | None,
                 started_epoch: float | None = None) -> PilotLimits:
    """The pilot's limits from its own ``lifetime``/``timefloor`` (None: the queue's) and the queue."""
    if queue is not None and queue.maxtime > 0:
        lifetime = min(lifetime, float(queue.maxtime))
    if timefloor is None:
        timefloor = float(queue.timefloor_seconds) if queue is not None else 0.0
    began = time.time() if started_epoch is None else started_epoch
    return PilotLimits(lifetime=lifetime, timefloor=timefloor, deadline=began + lifetime)
