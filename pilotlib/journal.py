"""The journal of jobs started: which jobs a pilot took on and has not finished, for a later pilot to recover.

Layout, under the pilot's state directory: ``<state>/journal/<owner>.jsonl``, one file per pilot. The pilot holds an
exclusive ``flock`` on its file for its whole life; the kernel releases that lock when the process ends, however it
ends (``SIGKILL`` included), so a lock that can be taken means the owner is gone. No pid is trusted (pids are reused,
and in a container every pilot has the same small one). The file is created under a temporary name, locked, then
renamed into place, so a successor never finds a journal that is not locked yet.

Each line is one JSON object, written with a single ``write`` (after a newline, so that it starts on a line of its
own even after a torn one) and ``fsync``-ed before the call returns:
``{"event": "start", "panda_id", "pilot", "started", "workdir", "definition"}`` before the job's ``starting`` update,
and ``{"event": "end", "panda_id"}`` once its final update is saved. A last line that was being written when the pilot
died (torn, no newline or not JSON) is ignored. :func:`take_abandoned` gives the journals of pilots that are gone, each
still locked by the caller, with the jobs they started and did not end: two successors racing for one journal
get it once (the lock), and a journal whose every job is ended is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from pilotlib._atomic import WriteGuard, make_private_dir, unguarded

__all__ = ["JOURNAL_DIR", "AbandonedJournal", "Journal", "JournalEntry", "take_abandoned"]

log = logging.getLogger(__name__)

#: The journal's folder in the pilot's state directory.
JOURNAL_DIR = "journal"
_SUFFIX = ".jsonl"


@attrs.frozen
class JournalEntry:
    """A job a pilot started: its definition (wire form), its work directory, the pilot that took it, and when
    (epoch seconds)."""

    panda_id: int
    definition: Mapping[str, Any]
    workdir: Path
    pilot: str
    started: float = 0.0


def _append(fd: int, record: Mapping[str, Any]) -> None:
    """Append one line in one write and make it durable (the file is opened with ``O_APPEND``). The line starts with a
    newline: a line torn by a full disk or a killed writer never swallows the next one."""
    line = ("\n" + json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    written = os.write(fd, line)
    if written != len(line):  # a short write on a full disk: the torn line is ignored by a reader
        raise OSError(f"journal line cut short ({written} of {len(line)} bytes)")
    os.fsync(fd)


def _entries(content: bytes) -> list[JournalEntry]:
    """The jobs started and not ended in a journal's content, in start order (a torn or unreadable line is skipped)."""
    started: dict[int, JournalEntry] = {}
    for line in content.split(b"\n"):
        try:
            record = json.loads(line)
            panda_id = int(record["panda_id"])
            if record["event"] == "start":
                started[panda_id] = JournalEntry(panda_id, dict(record["definition"]), Path(record["workdir"]),
                                                 str(record["pilot"]), float(record.get("started", 0.0)))
            elif record["event"] == "end":
                started.pop(panda_id, None)
        except (ValueError, KeyError, TypeError):  # the torn last line of a pilot killed mid-write, or an empty line
            continue
    return list(started.values())


class Journal:
    """One pilot's journal: a file in ``<state>/journal/`` it holds locked until :meth:`close` (or its death).

    Args:
        state_dir: the pilot's state directory.
        pilot: the pilot's id (what it reports as ``pilotID``); recorded with each job.
        guard: runs each write (default: as it is); e.g. the state directory's reserve, which frees space and
            writes again when the disk is full.

    Raises:
        OSError: the file cannot be created or locked.
    """

    def __init__(self, state_dir: Path, pilot: str, guard: WriteGuard = unguarded) -> None:
        self._guard = guard
        self.directory = state_dir / JOURNAL_DIR
        make_private_dir(self.directory)
        self.pilot = pilot
        name = f"{pilot}-{uuid.uuid4().hex[:12]}"
        temporary = self.directory / f".{name}.tmp"
        self._fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
        self.path = self.directory / (name + _SUFFIX)
        os.rename(temporary, self.path)
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)  # the name survives a crash of the node, not only of the process
        finally:
            os.close(directory_fd)
        self._open: set[int] = set()

    def start(self, panda_id: int, definition: Mapping[str, Any], workdir: Path) -> None:
        """Record that the job was taken on (before its ``starting`` update); durable when this returns."""
        record = {"event": "start", "panda_id": panda_id, "pilot": self.pilot, "started": time.time(),
                  "workdir": str(workdir), "definition": dict(definition)}
        self._guard(lambda: _append(self._fd, record))
        self._open.add(panda_id)

    def end(self, panda_id: int) -> None:
        """Record that the job is over (its final update is saved, or was acknowledged)."""
        self._guard(lambda: _append(self._fd, {"event": "end", "panda_id": panda_id}))
        self._open.discard(panda_id)

    def close(self) -> None:
        """Release the journal; it is removed when every job it started was ended (else it stays for recovery)."""
        if self._fd < 0:
            return
        if not self._open:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = -1


class AbandonedJournal:
    """The journal of a pilot that is gone, locked by this process: the jobs it started and did not end.

    Args:
        path: the journal's file.
        fd: its open descriptor, locked by this process.
        guard: runs each write, as for :class:`Journal` (e.g. the state directory's reserve).

    Raises:
        OSError: the file cannot be read.
    """

    def __init__(self, path: Path, fd: int, guard: WriteGuard = unguarded) -> None:
        self.path = path
        self._fd = fd
        self._guard = guard
        content = path.read_bytes()
        self.entries = _entries(content)

    def end(self, panda_id: int) -> None:
        """Record that the job was recovered (its final update is saved): no later pilot recovers it again.

        Raises:
            OSError: the line cannot be written (e.g. a full or broken disk, after the guard's retry).
        """
        self._guard(lambda: _append(self._fd, {"event": "end", "panda_id": panda_id}))

    def release(self) -> None:
        """Remove the journal when none of its jobs is left open, and release its lock (a journal that cannot be
        read is kept for the next pilot)."""
        try:
            if not _entries(self.path.read_bytes()):
                self.path.unlink()  # still locked: a successor that opened it before sees its entries all ended
        except OSError as exc:
            log.error("abandoned journal kept path=%s error=%s", self.path, exc)
        finally:
            os.close(self._fd)


def _lock_if_abandoned(path: Path, guard: WriteGuard) -> AbandonedJournal | None:
    """The journal at ``path`` locked by this process, or None when its owner lives (or another took it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # the owner (or another successor) holds it
        os.close(fd)
        return None
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:  # removed by the successor that held it before us
        same = False
    if not same:
        os.close(fd)
        return None
    try:
        return AbandonedJournal(path, fd, guard)
    except OSError as exc:  # a broken disk: the journal stays for a pilot that can read it
        log.error("abandoned journal not readable path=%s error=%s", path, exc)
        os.close(fd)
        return None


def take_abandoned(state_dir: Path, own: Journal | None = None,
                   guard: WriteGuard = unguarded) -> list[AbandonedJournal]:
    """The journals in ``state_dir`` whose pilots are gone, each locked by the caller (who must
    :meth:`~AbandonedJournal.release` it); ``own`` (this pilot's journal) is skipped; ``guard`` runs their writes
    (as for :class:`Journal`)."""
    directory = state_dir / JOURNAL_DIR
    if not directory.is_dir():
        return []
    taken = []
    for path in sorted(directory.glob("*" + _SUFFIX)):
        if own is not None and path == own.path:
            continue
        journal = _lock_if_abandoned(path, guard)
        if journal is not None:
            taken.append(journal)
    return taken
