"""Free space in the work area: the checks before a job is asked for and before its payload (NOLOCALSPACE 1098).

Pure functions that take the numbers they judge (measured with :func:`free_bytes` by the pilot's parts:
:class:`~pilotlib.workflow.state.WorkAreaSpace`, :class:`~pilotlib.workflow.executor.RunnerExecutor`), as
PanDAWMS/pilot3 does (read for behaviour, not copied):

- ``pilot/util/monitoring.py`` ``check_local_space``: the work area's free space must exceed ``free_space_limit``
  (``pilot/util/default.cfg``: 2 GB) before a job is asked for and ``free_space_limit_running`` (1 GB) while it runs,
  else NOLOCALSPACE;
- ``pilot/control/job.py`` (``proceed_to_getjob``, around line 1671): the check runs before each ``getJob``; a pilot
  with too little space asks for no job and ends with NOLOCALSPACE in its traces, which ``pilot.py``
  (``get_proper_exit_code``) turns into its exit status (69). In push mode (a job placed by ARC or Harvester) the check
  is delayed until the job definition is read (``delayed_space_check``, around line 1345), so that the job is
  reported failed with 1098;
- ``pilot/util/workernode.py`` ``get_disk_space``: the ``diskSpace`` sent with ``getJob`` is the smaller of the free
  space and the queue's ``maxwdir`` (MB); ``get_local_disk_space`` measures the free space of the work area;
- ``pilot/api/data.py`` ``check_availablespace``: the inputs' total size must fit in the free space (stage-in,
  :class:`pilotlib.transfer.stagein.StageIn`).

Before its payload a job needs more than the running limit, and at least what its ``maxDiskCount`` (MB, capped by the
queue's work directory limit) says it will use beyond what its work directory already holds.
"""

from __future__ import annotations

import os
from pathlib import Path

from pilotlib.errors import NoLocalSpaceError
from pilotlib.job import Job

__all__ = [
    "FREE_SPACE_LIMIT",
    "FREE_SPACE_LIMIT_RUNNING",
    "FULL_MARGIN",
    "MB",
    "check_free_space",
    "disk_is_full",
    "free_bytes",
    "payload_space_need",
    "request_disk_mb",
]

MB = 1000**2
#: Bytes that must be free before a job is asked for (pilot3 ``free_space_limit``: 2 GB).
FREE_SPACE_LIMIT = 2000 * MB
#: Bytes that must stay free while a job runs, and before its payload (pilot3 ``free_space_limit_running``: 1 GB).
FREE_SPACE_LIMIT_RUNNING = 1000 * MB
#: A file system with fewer bytes than this free counts as full (a write that hit ENOSPC leaves less than a block).
FULL_MARGIN = 1024 * 1024


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on ``path``'s file system (``statvfs``: ``f_bavail * f_frsize``).

    Raises:
        OSError: ``path`` cannot be examined.
    """
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def check_free_space(free: int, need: int, where: Path, before: str) -> None:
    """Raise unless more than ``need`` bytes are free (pilot3 ``check_local_space``: ``spaceleft <= limit`` fails).

    Args:
        free: bytes free in ``where``'s file system.
        need: bytes that must be exceeded.
        where: the directory judged (for the message).
        before: what the space is checked for (``asking for a job``, ``the payload``), for the message.

    Raises:
        NoLocalSpaceError: ``free <= need`` (NOLOCALSPACE 1098).
    """
    if free <= need:
        raise NoLocalSpaceError(f"too little space left in {where} before {before}: {free} B free, need more than "
                                f"{need} B")


def payload_space_need(job: Job, *, limit_running: int, used: int = 0, workdir_limit: int | None = None) -> int:
    """Bytes that must be free before ``job``'s payload starts.

    Args:
        job: the job (its ``maxDiskCount``, MB, is the work directory it will use; 0: not given).
        limit_running: the running limit (:data:`FREE_SPACE_LIMIT_RUNNING` by default in
            :class:`~pilotlib.workflow.executor.RunnerExecutor`).
        used: bytes its work directory holds already (the inputs staged in).
        workdir_limit: the queue's largest work directory in bytes (``maxwdir`` with pilot3's grace), None: none.
    """
    wanted = job.max_disk_count * MB
    if workdir_limit is not None:
        wanted = min(wanted, workdir_limit)
    return max(limit_running, wanted - used)


def request_disk_mb(free: int, maxwdir_mb: int) -> int:
    """The ``diskSpace`` (MB) to send with ``getJob``: the free space, capped by the queue's ``maxwdir`` (MB, 0: no
    cap), as pilot3 ``get_disk_space``."""
    free_mb = max(0, free) // MB
    return min(free_mb, maxwdir_mb) if maxwdir_mb > 0 else free_mb


def disk_is_full(free: int | None, margin: int = FULL_MARGIN) -> bool:
    """Whether a file system with ``free`` bytes free (None: unknown) counts as full."""
    return free is not None and free < margin
