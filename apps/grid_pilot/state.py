"""The grid pilot's own state on a full disk: the state directory's reserve behind the final updates and the logs,
and the work area's space check before a job is asked for.

The state directory (``--state-dir``, default ``<workdir>/pilot-state``) keeps ``--state-reserve`` MB preallocated
(:class:`pilotlib.reserve.SpaceReserve`); a final update or a log record that cannot be written because the disk is
full releases it and is written again.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from apps.grid_pilot.settings import Mode, Settings
from pilotlib.errors import NoLocalSpaceError
from pilotlib.info import QueueDescription
from pilotlib.reserve import SpaceReserve, is_full_error
from pilotlib.space import MB, check_free_space, free_bytes, request_disk_mb

__all__ = ["ReservedFileHandler", "WorkAreaSpace", "state_reserve"]

log = logging.getLogger(__name__)


def state_reserve(settings: Settings) -> SpaceReserve:
    """The reserve of the settings' state directory (``--state-reserve`` MB)."""
    return SpaceReserve(settings.state_path, settings.state_reserve_mb * MB)


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


class WorkAreaSpace:
    """The work area's free space checks around getting a job (pilot3 ``pilot/control/job.py``).

    Server mode: before each job is asked for, the work area must have more than ``--free-space-limit`` MB free
    (:meth:`before_request` raises NOLOCALSPACE 1098: no job is asked for). The launch-directory modes (ARC,
    Harvester) are pilot3's push mode: the job is already placed, so the check waits until it is read
    (``delayed_space_check``) and fails that job (:meth:`placed_job`), which is then reported failed.

    Args:
        settings: the pilot's settings (work area, mode, limits).
        queue: the queue's description (its ``maxwdir`` caps the ``diskSpace`` asked with), None: none.
        reserve: the state directory's reserve, made whole before each job.
    """

    def __init__(self, settings: Settings, queue: QueueDescription | None, reserve: SpaceReserve) -> None:
        self._settings = settings
        self._maxwdir = queue.maxwdir if queue is not None else 0
        self._reserve = reserve

    def _check(self, before: str) -> int:
        self._reserve.ensure()
        free = free_bytes(self._settings.workdir)
        check_free_space(free, self._settings.free_space_limit_mb * MB, self._settings.workdir, before)
        return free

    def before_request(self) -> int:
        """The ``diskSpace`` MB to ask with (the free space, at most the queue's ``maxwdir``).

        Raises:
            NoLocalSpaceError: server mode, and too little space to ask for a job (1098).
        """
        if self._settings.mode is Mode.SERVER:
            return request_disk_mb(self._check("asking for a job"), self._maxwdir)
        self._reserve.ensure()
        return request_disk_mb(free_bytes(self._settings.workdir), self._maxwdir)

    def placed_job(self) -> NoLocalSpaceError | None:
        """In the launch-directory modes, the error that fails a job just read when the work area has too little
        space; None otherwise."""
        if self._settings.mode is Mode.SERVER:
            return None
        try:
            self._check("running the job")
        except NoLocalSpaceError as exc:
            return exc
        return None
