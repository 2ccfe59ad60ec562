"""The payload's memory limit from the resource type, core count and queue (private: import from pilotlib.payload).

Facts (pilot3 ``pilot/user/atlas/memory.py`` ``get_memory_limit``/``calculate_memory_limit_kb``, and
``pilot/info/queuedata.py`` for the grace factor; defaults from ``pilot/util/default.cfg`` ``memory_limits``): the
limit is the resource type's memory per core times the job's cores, times the queue's RSS grace factor (2.0 unless
the queue says ``pilot_rss_grace``); a ``*_VHIMEM`` type uses the queue's ``maxrss`` instead (single-core: per queue
core times the job's cores; multi-core: all of it); when nothing applies, the job's ``minRamCount``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DEFAULT_MEMORY_PER_CORE_MB", "memory_limit_kb"]

DEFAULT_MEMORY_PER_CORE_MB: Mapping[str, int] = MappingProxyType(
    {
        "SCORE": 2000,
        "SCORE_HIMEM": 3000,
        "SCORE_LOMEM": 1000,
        "MCORE": 2000,
        "MCORE_HIMEM": 3000,
        "MCORE_LOMEM": 1000,
    }
)
_UNKNOWN_TYPE_MB = 4001


def _scaled_mb(
    resource_type: str, cores: int, queue_maxrss_mb: int, queue_corecount: int, per_core_mb: Mapping[str, int]
) -> float | None:
    if "VHIMEM" not in resource_type:
        return float(per_core_mb.get(resource_type, _UNKNOWN_TYPE_MB) * cores)
    if queue_maxrss_mb <= 0:
        return None
    if resource_type.startswith("SCORE"):
        return queue_maxrss_mb / max(queue_corecount, 1) * cores
    if resource_type.startswith("MCORE"):
        return float(queue_maxrss_mb)
    return None


def memory_limit_kb(
    resource_type: str,
    core_count: int,
    *,
    queue_maxrss_mb: int = 0,
    queue_corecount: int = 1,
    min_ram_mb: int = 0,
    rss_grace: float = 2.0,
    per_core_mb: Mapping[str, int] = DEFAULT_MEMORY_PER_CORE_MB,
) -> int | None:
    """The PSS limit for :class:`~pilotlib.payload.MemoryMonitor`, in kB.

    Args:
        resource_type: the job's ``resource_type`` (``SCORE``, ``MCORE_HIMEM``, ``SCORE_VHIMEM``, ...); an unknown
            type gets 4001 MB per core, as pilot3 does.
        core_count: the job's cores (at least 1 is used).
        queue_maxrss_mb: the queue's ``maxrss`` (for ``*_VHIMEM`` types).
        queue_corecount: the queue's ``corecount``.
        min_ram_mb: the job's ``minRamCount``, the fallback.
        rss_grace: the queue's grace factor (``1 + pilot_rss_grace/100``; 2.0 by default).
        per_core_mb: memory per core by resource type.

    Returns:
        The limit in kB, or ``None`` when no source gives one (then run no memory monitor).
    """
    cores = max(core_count, 1)
    scaled = _scaled_mb(resource_type, cores, queue_maxrss_mb, queue_corecount, per_core_mb)
    if not scaled:
        scaled = float(min_ram_mb) if min_ram_mb > 0 else None
    return None if scaled is None else int(rss_grace * scaled * 1024)
