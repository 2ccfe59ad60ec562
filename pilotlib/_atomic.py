"""The one atomic file write, and the one wait for a condition with a deadline and the pilot's stop.

- :func:`write_atomic` writes a temporary file in the target's directory, flushes (and by default fsyncs) it and
  renames it over the target with :func:`os.replace`: a reader sees the old file or the whole new one, never a part,
  and a failure at any point leaves the old file and no temporary file behind.
- :func:`wait_until` calls a check every ``interval`` seconds until it passes, the timeout passes or the stop is set
  (the wait between two checks wakes at once on the stop).

Both are on the ground floor (no import of the rest of pilotlib), so the final-update store, the info cache, the
launch-directory protocols and the dev server share them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["Waitable", "WriteGuard", "make_private_dir", "unguarded", "wait_until", "write_atomic"]

#: Runs a write of the pilot's own state, e.g. again after freeing space
#: (:meth:`pilotlib.reserve.SpaceReserve.retrying`); the final store and the journal take one.
WriteGuard = Callable[[Callable[[], None]], None]


def make_private_dir(path: Path) -> Path:
    """Make ``path`` and its missing parents directories only their owner can enter (``0o700``, whatever the
    umask): the pilot's work directories and state. A directory already there is left as it is (the site's).

    Raises:
        OSError: it cannot be made.
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):  # the parents the pilot makes are its own too
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    return path


def unguarded(write: Callable[[], None]) -> None:
    """The :data:`WriteGuard` that just writes."""
    write()


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    fsync: bool = True,
    mode: int | None = None,
    mtime: float | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file in the same directory, flush, fsync, rename).

    Args:
        path: the target; its directory must exist.
        data: the content; a ``str`` is written as UTF-8.
        fsync: fsync the temporary file before the rename (the content survives a crash of the node).
        mode: the permissions of the new file; None keeps :func:`tempfile.mkstemp`'s ``0o600``.
        mtime: the access and modification time to give the new file (epoch seconds); None leaves them at now.
        before_replace: called when the new content is on disk, just before the rename (e.g. to see whether another
            program changed ``path`` meanwhile); an exception it raises leaves ``path`` as it is, removes the
            temporary file and propagates.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ...; the old file is then untouched and
            the temporary file is removed (also on any other exception, e.g. an interrupt).
    """
    body = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            if fsync:
                os.fsync(handle.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Waitable(Protocol):
    """What :func:`wait_until` needs of a stop: a :class:`threading.Event` or a :class:`pilotlib.stop.StopSignal`."""

    def is_set(self) -> bool:
        """Whether the stop is set."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds passed; True when set."""
        ...


def wait_until(check: Callable[[], bool], timeout: float, interval: float, stop: Waitable | None = None) -> bool:
    """Call ``check`` until it returns True; False when ``timeout`` seconds passed or ``stop`` is set first.

    The stop is looked at before every call of ``check`` (a stop already set returns False without calling it), and
    the pause of ``interval`` seconds between two calls ends at once when the stop is set. ``check`` is called at
    least once when the stop is not set, even with a zero timeout; it may raise, which ends the wait.
    """
    deadline = time.monotonic() + timeout
    while stop is None or not stop.is_set():
        if check():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if stop is None:
            time.sleep(min(interval, remaining))
        elif stop.wait(min(interval, remaining)):
            return False
    return False
