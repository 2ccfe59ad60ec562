"""The pilot's own state, apart from the jobs' work directories, and the work area's free space around a job.

Job work directories may live on a RAM disk or a scratch file system that disappears with the allocation; the
pilot's state directory (:class:`PilotState`) outlives them and holds the final updates until acknowledged
(:class:`~pilotlib.recovery.FinalStore`), the journal of jobs started (:class:`~pilotlib.journal.Journal`), the
pilot's log and each job's own log. It keeps a few MB preallocated (:class:`~pilotlib.reserve.SpaceReserve`): a
final update or a log record that cannot be written because the disk is full releases it and is written again.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from pilotlib.errors import NoLocalSpaceError
from pilotlib.info import QueueDescription
from pilotlib.reserve import SpaceReserve, is_full_error
from pilotlib.space import check_free_space, free_bytes, request_disk_mb

__all__ = ["PILOT_LOG", "PilotState", "ReservedFileHandler", "WorkAreaSpace", "tail"]

log = logging.getLogger(__name__)

#: The pilot's own log in its state directory.
PILOT_LOG = "pilotlog.txt"


@attrs.frozen
class PilotState:
    """The pilot's state directory and its reserve.

    Attributes:
        path: the directory (best on another file system than the work area).
        reserve: the space kept preallocated in it for the pilot's own state on a full disk.
    """

    path: Path
    reserve: SpaceReserve = attrs.field(eq=False)

    @classmethod
    def at(cls, path: Path, reserve_bytes: int) -> PilotState:
        """The state directory ``path`` keeping ``reserve_bytes`` preallocated (0: none)."""
        return cls(path, SpaceReserve(path, reserve_bytes))

    @property
    def pilot_log(self) -> Path:
        """The pilot's log."""
        return self.path / PILOT_LOG

    def job_log(self, panda_id: int) -> Path:
        """Job ``panda_id``'s own pilot log while it runs (in the state directory, not in the job's work
        directory: a log written there would keep the looping-job check from ever firing)."""
        return self.path / f"pilotlog-{panda_id}.txt"

    def log_fallback(self, panda_id: int) -> Path:
        """A folder for job ``panda_id``'s fallback log tarball (the job's pilot log alone, when the work directory
        cannot be packed)."""
        return self.path / str(panda_id) / "log"


def tail(path: Path, size: int = 4096) -> str:
    """The last ``size`` bytes of a log file as text ("" when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class ReservedFileHandler(logging.FileHandler):
    """A log file that releases the reserve when a record cannot be written because the disk is full, then writes
    it again; once nothing is left to release, a full disk is said once on stderr, by ``program`` (not a traceback
    per record)."""

    def __init__(self, path: Path, reserve: SpaceReserve, program: str = "pilot") -> None:
        super().__init__(path, encoding="utf-8")
        self._reserve = reserve
        self._program = program
        self._told = False

    def _open(self) -> Any:
        """The file, created readable by its owner only (a pilot log tells what a job did), whatever the umask."""
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

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
            print(f"{self._program}: log records lost, the disk is full: {self.baseFilename}: {error}", file=sys.stderr)


@attrs.frozen
class WorkAreaSpace:
    """The work area's free space checks around getting a job (pilot3 ``pilot/control/job.py``).

    A pilot that asks a server for jobs (``placed`` False): before each job is asked for, the work area must have
    more than ``limit`` bytes free (:meth:`before_request` raises NOLOCALSPACE 1098: no job is asked for). A
    launch-directory pilot (ARC, Harvester: pilot3's push mode, ``placed`` True) finds the job already placed, so
    the check waits until it is read (``delayed_space_check``) and fails that job (:meth:`placed_job`), which is
    then reported failed.

    Attributes:
        workdir: the work area.
        limit: bytes it must have free.
        reserve: the state directory's reserve, made whole before each job.
        placed: the jobs are placed in a launch directory (no request to refuse).
        maxwdir: the queue's ``maxwdir`` (MB) caps the ``diskSpace`` asked with (0: no cap).
    """

    workdir: Path
    limit: int
    reserve: SpaceReserve = attrs.field(eq=False)
    placed: bool = False
    maxwdir: int = 0

    @classmethod
    def of_queue(cls, workdir: Path, limit: int, reserve: SpaceReserve, *, placed: bool,
                 queue: QueueDescription | None) -> WorkAreaSpace:
        """The checks of a work area on a queue (its ``maxwdir``; ``queue`` None: no description, no cap)."""
        return cls(workdir, limit, reserve, placed, queue.maxwdir if queue is not None else 0)

    def _check(self, before: str) -> int:
        self.reserve.ensure()
        free = free_bytes(self.workdir)
        check_free_space(free, self.limit, self.workdir, before)
        return free

    def before_request(self) -> int:
        """The ``diskSpace`` MB to ask with (the free space, at most the queue's ``maxwdir``).

        Raises:
            NoLocalSpaceError: jobs are asked for, and too little space to ask for one (1098).
        """
        if not self.placed:
            return request_disk_mb(self._check("asking for a job"), self.maxwdir)
        self.reserve.ensure()
        return request_disk_mb(free_bytes(self.workdir), self.maxwdir)

    def placed_job(self) -> NoLocalSpaceError | None:
        """For a placed job just read, the error that fails it when the work area has too little space; None
        otherwise."""
        if not self.placed:
            return None
        try:
            self._check("running the job")
        except NoLocalSpaceError as exc:
            return exc
        return None
