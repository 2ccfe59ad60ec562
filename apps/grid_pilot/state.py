"""The grid pilot's own state on a full disk: the state directory's reserve behind the final updates and the logs,
and the work area's space check before a job is asked for.

The state directory (``--state-dir``, default ``<workdir>/pilot-state``) keeps ``--state-reserve`` MB preallocated
(:class:`pilotlib.reserve.SpaceReserve`); a final update or a log record that cannot be written because the disk is
full releases it and is written again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from apps.grid_pilot.settings import Mode, Settings
from pilotlib.info import QueueDescription
from pilotlib.panda.base import JobUpdate
from pilotlib.recovery import FinalStore
from pilotlib.reserve import SpaceReserve, is_full_error
from pilotlib.space import MB, check_free_space, free_bytes, request_disk_mb

__all__ = ["ReservedFileHandler", "ReservedFinalStore", "space_before_job", "state_reserve"]

log = logging.getLogger(__name__)


def state_reserve(settings: Settings) -> SpaceReserve:
    """The reserve of the settings' state directory (``--state-reserve`` MB)."""
    return SpaceReserve(settings.state_path, settings.state_reserve_mb * MB)


class ReservedFinalStore(FinalStore):
    """A :class:`~pilotlib.recovery.FinalStore` whose writes release the reserve when the disk is full, then retry."""

    def __init__(self, root: Path, reserve: SpaceReserve) -> None:
        super().__init__(root)
        self.reserve = reserve

    def save(self, update: JobUpdate) -> Path:
        """Write ``update`` atomically; on a full disk release the reserve and write it again."""
        return self.reserve.retrying(lambda: FinalStore.save(self, update))


class ReservedFileHandler(logging.FileHandler):
    """A log file that releases the reserve when a record cannot be written because the disk is full, then writes
    it again; once nothing is left to release, a full disk is said once on stderr (not a traceback per record)."""

    def __init__(self, path: Path, reserve: SpaceReserve) -> None:
        super().__init__(path, encoding="utf-8")
        self._reserve = reserve
        self._told = False

    def handleError(self, record: logging.LogRecord) -> None:
        """Retry the write after releasing the reserve (a full disk); other errors as :mod:`logging` does."""
        error = sys.exc_info()[1]
        if error is None or not is_full_error(error):
            super().handleError(record)
            return
        if self._reserve.release():
            try:
                self.flush()
                return
            except OSError as again:
                error = again
        if not self._told:
            self._told = True
            print(f"grid-pilot: log records lost, the disk is full: {self.baseFilename}: {error}", file=sys.stderr)


def space_before_job(settings: Settings, queue: QueueDescription | None,
                     reserve: SpaceReserve) -> Callable[[], int] | None:
    """The check before each job is asked for (server mode): make the reserve whole, then the work area must have
    more than ``--free-space-limit`` MB free (NOLOCALSPACE 1098); returns the ``diskSpace`` MB to ask with.

    None in the launch-directory modes: their job is already placed, so its space is checked before its payload and
    the job reported failed (pilot3 ``pilot/control/job.py`` ``delayed_space_check`` in push mode).
    """
    if settings.mode is not Mode.SERVER:
        return None
    maxwdir = queue.maxwdir if queue is not None else 0

    def check() -> int:
        reserve.ensure()
        free = free_bytes(settings.workdir)
        check_free_space(free, settings.free_space_limit_mb * MB, settings.workdir, "asking for a job")
        return request_disk_mb(free, maxwdir)

    return check
