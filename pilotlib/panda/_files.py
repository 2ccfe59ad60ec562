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
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotlib._atomic import write_atomic
from pilotlib._jsontext import JsonTextError, decode_utf8, loads
from pilotlib.panda._file_errors import LaunchDirFileError, LaunchDirFormatError

__all__ = [
    "READ_SUFFIX",
    "atomic_write_json",
    "atomic_write_text",
    "merge_entries",
    "read_json",
    "read_text",
    "remove_file",
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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode ``0o644`` (:func:`pilotlib._atomic.write_atomic`).

    Raises:
        LaunchDirFileError: the directory is missing or not writable, or the disk is full.
    """
    try:
        write_atomic(path, text, mode=_MODE)
    except OSError as exc:
        raise LaunchDirFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def atomic_write_json(path: Path, value: Any, what: str = "") -> None:
    """Write ``value`` as JSON to ``path`` atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(path, to_json_text(value, what or path.name))


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


def _read_with_inode(path: Path) -> tuple[Any, int | None]:
    try:
        with path.open("rb") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            data = handle.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise LaunchDirFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return loads(decode_utf8(data)), inode
    except JsonTextError:
        log.warning("replacing unreadable launch-directory file path=%s", path)
        return None, inode


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _combine(
    base: dict[str, list[Entry]], additions: Mapping[str, Sequence[Entry]], taken: dict[str, list[Entry]], key: KeyFn
) -> dict[str, list[Entry]]:
    merged = {job: list(entries) for job, entries in base.items()}
    for job, entries in additions.items():
        held = {key(entry) for entry in taken.get(job, ())}
        current = merged.setdefault(job, [])
        for entry in entries:
            if key(entry) in held:
                continue
            current[:] = [old for old in current if key(old) != key(entry)]
            current.append(dict(entry))
    return {job: entries for job, entries in merged.items() if entries}


def merge_entries(path: Path, additions: Mapping[str, Sequence[Entry]], key: KeyFn) -> None:
    """Merge ``{"<PandaID>": [entry, ...]}`` into ``path`` without losing what Harvester has or will take.

    An entry whose key is already in ``path`` replaces the old one; an entry whose key is in ``<path>.read`` (taken by
    Harvester, not yet acknowledged) is skipped. When Harvester renames ``path`` to ``.read`` while this merge runs,
    the merge is redone without the entries Harvester took (Harvester leaves the plain file alone while a ``.read``
    one exists, so the redo is safe). The caller serialises merges of one file within the process.
    """
    taken_path = path.with_name(path.name + READ_SUFFIX)
    document, inode = _read_with_inode(path)
    taken = _entries_by_job(read_json(taken_path), taken_path)
    text = to_json_text(_combine(_entries_by_job(document, path), additions, taken, key), path.name)
    atomic_write_text(path, text)
    if inode is not None and _inode(taken_path) == inode:
        log.info("harvester took the file during a merge, rewriting path=%s", path)
        taken = _entries_by_job(read_json(taken_path), taken_path)
        atomic_write_text(path, to_json_text(_combine({}, additions, taken, key), path.name))
