"""File primitives of the launch-directory protocols: atomic writes, tolerant reads, merges beside ``.read`` files.

- Every write is :func:`pilotlib._atomic.write_atomic` (temporary file in the same directory, fsync,
  :func:`os.replace`), so a reader (Harvester, the CE) sees the old file or the new one, never a partial one.
- Reads tolerate what the other side does: a missing file is ``None``; a half-written JSON file (Harvester writes
  with a plain ``open(..., "w")``) is ``None`` for the caller to read again later.
- :func:`merge_entries` adds entries to a ``{"<PandaID>": [entry, ...]}`` file that Harvester renames to
  ``<name>.read`` while it works on it (HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py``,
  ``get_files_to_stage_out`` and ``events_to_update``): the pilot never touches the ``.read`` file (Harvester re-reads
  it until it acknowledges it by renaming it to ``.read.<timestamp>``), merges into the plain file, and skips
  entries Harvester already holds in the ``.read`` file.
- :func:`rewrite_json` is the one read-modify-write of a shared file. It holds :func:`locked`, which serialises it
  among the threads of a process *and* among processes (the MPI ranks of an HPC worker, on one node or on several
  nodes of a shared file system): a :class:`threading.Lock` per file, then :func:`fcntl.flock` on the lock file
  ``.<name>.lock`` beside it. Its users: :func:`merge_entries` (``event_status.dump.json``), and the event ranges'
  request (``worker_requestevents.json``) and answer (``JobsEventRanges.json``). Harvester never takes the lock
  (it renames, removes and rewrites the files whenever it likes), so the rewrite reads again when the file changed
  between its read and its write (the file's :class:`Stamp`: inode and content, looked at once more just before
  the rename). That narrows the window in which a change of Harvester's is overwritten to the moment between that
  last look and the rename; only Harvester taking the lock could close it.

Limits of the inter-process lock (it is as good as the file system's ``flock``):

- local file systems, Lustre mounted with ``-o flock``, CephFS (its ``flock`` goes through the MDS), NFSv4, and
  NFSv3 with a running lock manager (Linux emulates ``flock`` with byte-range locks on NFS since 2.6.12) lock
  across nodes; for GPFS (Storage Scale) and other cluster file systems, check with the site. Lustre mounted with
  ``-o localflock`` (or NFS with ``nolock``) locks on one node only: ranks on different nodes are then not
  serialised. Where ``flock`` is refused (Lustre's default ``noflock``: ``ENOSYS``; an NFS server without lock
  manager: ``ENOLCK``), a warning is logged once per file and only the in-process lock is held, which is what the
  pilot had before (enough for one process per access point).
- The wait for the lock is bounded (:data:`LOCK_TIMEOUT`, then :class:`LaunchDirTimeoutError`): a lock whose
  holder died is released by the kernel at once locally, after the lease (about 90 s) on NFSv4, and only when the
  node comes back on NFSv3.
- On NFS a file another node created a moment ago may be hidden by the client's cache of the directory; after
  taking the lock the directory is opened once, which makes the client check it again (close-to-open consistency).
- A lock file is never removed (removing it would let two processes lock two different files). It is a dot-file
  whose name ends in ``.lock``: Harvester's log tarball of the access point (``post_processing``, ``tar_directory``
  with ``*.log *.txt *.xml *.json log*``) and its leftover scan (``scan_files_in_dir``, in sub-directories only)
  do not pick it up, Harvester reads no file by that name, and its clean-up removes it with the access point.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pilotlib._atomic import write_atomic
from pilotlib._jsontext import JsonTextError, decode_utf8, loads
from pilotlib.panda._file_errors import LaunchDirFileError, LaunchDirFormatError, LaunchDirTimeoutError

__all__ = [
    "LOCK_TIMEOUT",
    "READ_SUFFIX",
    "REREADS",
    "Stamp",
    "Verdict",
    "atomic_write_json",
    "atomic_write_text",
    "file_stamp",
    "lock_path",
    "locked",
    "merge_entries",
    "read_json",
    "read_json_stamped",
    "read_text",
    "remove_file",
    "rewrite_json",
    "to_json_text",
]

log = logging.getLogger(__name__)

READ_SUFFIX = ".read"
"""The suffix Harvester gives a file it has taken (``suffixReadJson`` in the shared-file messenger)."""

_MODE = 0o644  # Harvester may read the access point as another user of the same group


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json_text(value: Any, what: str) -> str:
    """The JSON text of ``value`` (mappings and tuples allowed).

    Raises:
        LaunchDirFormatError: the value holds something JSON can not represent.
    """
    try:
        return json.dumps(value, default=_plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LaunchDirFormatError(f"cannot write {what} as JSON: {exc}") from None


def atomic_write_text(path: Path, text: str, before_replace: Callable[[], None] | None = None) -> None:
    """Write ``text`` to ``path`` atomically with mode ``0o644`` (:func:`pilotlib._atomic.write_atomic`, which calls
    ``before_replace`` just before the rename).

    Raises:
        LaunchDirFileError: the directory is missing or not writable, or the disk is full.
    """
    try:
        write_atomic(path, text, mode=_MODE, before_replace=before_replace)
    except OSError as exc:
        raise LaunchDirFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def atomic_write_json(path: Path, value: Any, what: str = "", before_replace: Callable[[], None] | None = None) -> None:
    """Write ``value`` as JSON to ``path`` atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(path, to_json_text(value, what or path.name), before_replace)


def read_text(path: Path) -> str | None:
    """The text of ``path``; None when it does not exist or is not (yet) valid UTF-8.

    Raises:
        LaunchDirFileError: the path exists but can not be read (a directory, no permission).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LaunchDirFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # cut inside a multi-byte character: half-written
        return None


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; None when missing, empty or not (yet) complete JSON."""
    text = read_text(path)
    if text is None or not text.strip():
        return None
    try:
        return loads(text)
    except JsonTextError:
        return None


def remove_file(path: Path) -> bool:
    """Remove ``path``; False when it was already gone.

    Raises:
        LaunchDirFileError: it exists and can not be removed.
    """
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise LaunchDirFileError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return True


# ------------------------------------------------------------------------------------------------------------ lock
LOCK_TIMEOUT = 300.0
"""Seconds :func:`locked` waits for the lock before it gives up (a holder that hangs must not hang every rank)."""

_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK, errno.EINVAL})
_registry_lock = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}
_warned: set[str] = set()


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` in the same directory."""
    return path.with_name(f".{path.name}.lock")


def _thread_lock(lock_file: Path) -> threading.Lock:
    key = os.path.abspath(lock_file)
    with _registry_lock:
        return _thread_locks.setdefault(key, threading.Lock())


def _open_lock_file(lock_file: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)  # NFS locks need write access
    except OSError as exc:
        raise LaunchDirFileError(f"cannot open the lock file {lock_file}: {exc.strerror or exc}") from exc


def _flock(fd: int, lock_file: Path, deadline: float) -> bool:
    """Take the exclusive ``flock`` of ``fd`` by the deadline; False when the file system refuses ``flock``."""
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                if str(lock_file) not in _warned:
                    _warned.add(str(lock_file))
                    log.warning("flock refused, only this process is serialised path=%s error=%s", lock_file, exc)
                return False
            raise LaunchDirFileError(f"cannot lock {lock_file}: {exc.strerror or exc}") from exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LaunchDirTimeoutError(f"{lock_file} stayed locked by another process for {LOCK_TIMEOUT:g} s")
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.05)


def _revalidate(directory: Path) -> None:
    """Open ``directory`` once: an NFS client then checks its cached view of the directory with the server."""
    with contextlib.suppress(OSError):
        os.close(os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock of ``path`` for a read-modify-write: in this process and across processes (see the module).

    Not re-entrant: a thread that holds the lock of a path must not ask for it again.

    Raises:
        LaunchDirTimeoutError: the lock was not free within ``timeout`` seconds (EXCEEDEDMAXWAITTIME).
        LaunchDirFileError: the lock file can not be created or locked (FILEHANDLINGFAILURE).
    """
    lock_file = lock_path(path)
    deadline = time.monotonic() + timeout
    thread_lock = _thread_lock(lock_file)
    if not thread_lock.acquire(timeout=max(timeout, 0.0)):
        raise LaunchDirTimeoutError(f"{lock_file} stayed locked by another thread for {timeout:g} s")
    try:
        fd = _open_lock_file(lock_file)
        try:
            _flock(fd, lock_file, deadline)
            _revalidate(path.parent)
            yield
        finally:
            os.close(fd)  # releases the flock
    finally:
        thread_lock.release()


class Stamp(NamedTuple):
    """What tells one version of a file from another: its inode and a digest of its bytes (not its times: two
    writes within one clock tick of the kernel have the same, and Harvester rewrites a file in place)."""

    inode: int
    digest: bytes


def _stamp(inode: int, data: bytes) -> Stamp:
    return Stamp(inode, hashlib.blake2b(data, digest_size=16).digest())


def file_stamp(path: Path) -> Stamp | None:
    """The :class:`Stamp` of ``path`` now; None when it does not exist (or can not be read)."""
    try:
        with path.open("rb") as handle:
            return _stamp(os.fstat(handle.fileno()).st_ino, handle.read())
    except OSError:
        return None


def read_json_stamped(path: Path) -> tuple[Any, Stamp | None]:
    """The JSON document in ``path`` and the :class:`Stamp` of the file it was read from.

    The document is None when the file is missing (the stamp is then None too), or when it is empty or not (yet)
    complete JSON (the stamp is then not None). Compare the stamp with :func:`file_stamp` just before replacing the
    file to learn whether another program (Harvester) changed it since.

    Raises:
        LaunchDirFileError: the path exists but can not be read.
    """
    try:
        with path.open("rb") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            data = handle.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise LaunchDirFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    stamp = _stamp(inode, data)
    try:
        return loads(decode_utf8(data)), stamp
    except JsonTextError:
        return None, stamp


# ------------------------------------------------------------------------------------------------------- rewrite
REREADS = 5
"""Reads of a file that changes under a :func:`rewrite_json` (Harvester does not take the lock) before it writes."""


class Verdict(enum.Enum):
    """What the change given to :func:`rewrite_json` may return instead of a new document."""

    KEEP = "keep"
    """Leave the file as it is."""
    REMOVE = "remove"
    """Remove the file."""


def rewrite_json(
    path: Path, change: Callable[[Any], Any], what: str = "", *, moved: Callable[[Stamp], bool] | None = None
) -> Stamp | None:
    """Read-modify-write the JSON file ``path`` under :func:`locked`: the one way pilotlib changes a shared file.

    ``change`` gets the document (None when the file is missing or not complete JSON) and returns the new document,
    :attr:`Verdict.KEEP` or :attr:`Verdict.REMOVE`. When the file changed between the read and the write (Harvester
    renamed, removed or rewrote it), it is read and ``change`` called again, up to :data:`REREADS` times (the last
    result is written), so ``change`` must not have effects beyond the result of its last call. The write is
    :func:`atomic_write_json`, which looks at the file again once the new content is on disk, just before the
    rename (a change in the fsync's time is noticed too). ``moved`` tells, after the write, whether the version read
    was taken away in the last moment before the rename (e.g. renamed to ``.read``: it is there under its old
    inode); the rewrite is then done once more, still under the lock. Returns the stamp of the version the write
    was made from (None: there was no file).

    Raises:
        LaunchDirFormatError: the new document can not be written as JSON (or ``change`` raised it).
        LaunchDirFileError: a file can not be read, written or removed.
        LaunchDirTimeoutError: the lock stayed taken for :data:`LOCK_TIMEOUT` seconds.
    """
    with locked(path):
        stamp = _rewrite(path, change, what)
        if stamp is not None and moved is not None and moved(stamp):
            log.info("file taken during a rewrite, rewriting path=%s", path)
            _rewrite(path, change, what)
    return stamp


class _Changed(Exception):
    """The file changed since it was read (raised just before the rename, so nothing is replaced)."""


def _rewrite(path: Path, change: Callable[[Any], Any], what: str) -> Stamp | None:
    for attempt in range(REREADS):
        document, stamp = read_json_stamped(path)
        new = change(document)
        unchanged = functools.partial(_check_same, path, stamp, attempt == REREADS - 1)
        try:
            if new is Verdict.KEEP or new is Verdict.REMOVE:
                unchanged()
                if new is Verdict.REMOVE:
                    remove_file(path)
            else:
                if document is None and stamp is not None:
                    log.warning("replacing unreadable launch-directory file path=%s", path)
                atomic_write_json(path, new, what or path.name, before_replace=unchanged)
        except _Changed:
            log.info("file changed during a rewrite, reading again path=%s", path)
            continue
        return stamp
    raise AssertionError("not reached: the last attempt never raises _Changed")


def _check_same(path: Path, stamp: Stamp | None, last: bool) -> None:
    """Raise :class:`_Changed` when ``path`` is no longer the version of ``stamp`` (not on the ``last`` attempt)."""
    if not last and file_stamp(path) != stamp:
        raise _Changed(path)


# ----------------------------------------------------------------------------------------------------------- merge
Entry = Mapping[str, Any]
KeyFn = Callable[[Entry], Hashable]


def _entries_by_job(document: Any, path: Path) -> dict[str, list[Entry]]:
    """``{"<PandaID>": [entry, ...]}`` from a document; anything else is ignored with a warning."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        log.warning("ignoring malformed launch-directory file path=%s", path)
        return {}
    result: dict[str, list[Entry]] = {}
    for key, entries in document.items():
        if isinstance(entries, list):
            result[str(key)] = [entry for entry in entries if isinstance(entry, dict)]
    return result


def _combine(
    base: dict[str, list[Entry]], additions: Mapping[str, Sequence[Entry]], taken: dict[str, list[Entry]], key: KeyFn
) -> dict[str, list[Entry]]:
    held = {job: {key(entry) for entry in entries} for job, entries in taken.items()}
    merged = {job: [old for old in entries if key(old) not in held.get(job, ())] for job, entries in base.items()}
    for job, entries in additions.items():
        current = merged.setdefault(job, [])
        for entry in entries:
            if key(entry) in held.get(job, ()):
                continue
            current[:] = [old for old in current if key(old) != key(entry)]
            current.append(dict(entry))
    return {job: entries for job, entries in merged.items() if entries}


def merge_entries(path: Path, additions: Mapping[str, Sequence[Entry]], key: KeyFn) -> None:
    """Merge ``{"<PandaID>": [entry, ...]}`` into ``path`` without losing what Harvester has or will take.

    The merge is a :func:`rewrite_json`, so the merges of several threads and processes (ranks running ranges of
    one job) all land. An entry whose key is already in ``path`` replaces the old one; an entry whose key is in
    ``<path>.read`` (taken by Harvester, not yet acknowledged) is skipped, and dropped from ``path`` if it is there.
    When Harvester renames ``path`` to ``.read`` while this merge runs, the merge is redone (Harvester leaves the
    plain file alone while a ``.read`` one exists, so the redo is safe): before the write when the plain file is no
    longer the one read, after it when the ``.read`` file is the plain file that was read.

    Raises:
        LaunchDirFormatError: an entry can not be written as JSON.
        LaunchDirFileError: a file can not be read or written.
        LaunchDirTimeoutError: the lock stayed taken for :data:`LOCK_TIMEOUT` seconds.
    """
    taken_path = path.with_name(path.name + READ_SUFFIX)

    def merged(document: Any) -> Any:
        taken = _entries_by_job(read_json(taken_path), taken_path)
        return _combine(_entries_by_job(document, path), additions, taken, key)

    def taken_meanwhile(read: Stamp) -> bool:
        renamed = file_stamp(taken_path)
        return renamed is not None and renamed.inode == read.inode

    rewrite_json(path, merged, moved=taken_meanwhile)
