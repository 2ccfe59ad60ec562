"""The state directory's reserve: space kept aside so that the pilot's own state can be written on a full disk.

The pilot's state (final updates until acknowledged, the journal, its logs) lives in a state directory, by default on
the same file system as the jobs' work area. A payload that fills that file system would leave no room for the final
update, so the state directory holds a preallocated file, ``.space-reserve`` (``os.posix_fallocate``: the blocks are
really taken, not a sparse file). The first state write that fails because the file system is full (ENOSPC, or EDQUOT
for a quota) releases the whole reserve and is tried again once; that write and every later one use the freed space.
The app makes the reserve again before each job is asked for, when the space allows it.

Releasing everything at the first failure is simple and enough: the writes that follow (the final update, the job's
own log, a small log tarball) need far less than the reserve. A payload that is still writing when the reserve is
released may take part of it; the final update is then still sent, without a copy on disk
(:func:`pilotlib.recovery.deliver_final`).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["RESERVE_NAME", "SpaceReserve", "is_full_error"]

log = logging.getLogger(__name__)

RESERVE_NAME = ".space-reserve"
_FULL = (errno.ENOSPC, errno.EDQUOT)
T = TypeVar("T")


def is_full_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in _FULL


class SpaceReserve:
    """``size`` bytes preallocated in ``directory``/:data:`RESERVE_NAME`, released when a state write finds the disk
    full (thread-safe).

    Args:
        directory: the state directory.
        size: bytes to keep (0: no reserve).
    """

    def __init__(self, directory: Path, size: int) -> None:
        self.path = directory / RESERVE_NAME
        self.size = size
        self._lock = threading.RLock()

    @property
    def held(self) -> int:
        """Bytes the reserve holds now (its allocated blocks)."""
        try:
            return self.path.stat().st_blocks * 512
        except OSError:
            return 0

    def ensure(self) -> bool:
        """Make the reserve whole (allocate its blocks); False when the file system has no room for it (then it
        holds nothing)."""
        if self.size <= 0:
            return False
        with self._lock:  # nothing is logged while the lock is held: a log file may release the reserve
            error = None if self.held >= self.size else self._allocate()
        if error is not None:
            log.warning("state reserve not made path=%s size=%d error=%s", self.path, self.size, error)
        return error is None

    def _allocate(self) -> OSError | None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            return exc
        try:
            os.posix_fallocate(fd, 0, self.size)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            return exc
        finally:
            os.close(fd)
        return None

    def release(self) -> int:
        """Give the reserve's space back to the file system; returns the bytes freed (0 when it held nothing)."""
        with self._lock:
            freed = self.held
            try:
                self.path.unlink()
                error = None
            except FileNotFoundError:
                return 0
            except OSError as exc:
                error = exc
        if error is not None:
            log.error("state reserve not released path=%s error=%s", self.path, error)
            return 0
        log.warning("state reserve released: the disk is full bytes=%d path=%s", freed, self.path)
        return freed

    def retrying(self, write: Callable[[], T]) -> T:
        """Run ``write``; when it fails because the disk is full, release the reserve and run it once more.

        Raises:
            OSError: ``write``'s error (the second one after a release; the first when there was nothing to release).
        """
        try:
            return write()
        except OSError as exc:
            if not is_full_error(exc) or not self.release():
                raise
        return write()
