"""Reading a job definition file that another program may still be writing, and consuming it once read.

Facts relied on:

- Harvester writes the job file with a plain ``open(path, "w")`` and ``json.dump({PandaID: params})``, or
  ``urlencode(params)`` when the queue's ``jobSpecFileFormat`` is ``cgi``; then ``PoolFileCatalog_H.xml``, the input
  links, then ``worker_pandaids.json``, then it removes ``worker_requestjob.json`` (HSF/harvester
  ``pandaharvester/harvestermessenger/shared_file_messenger.py``, ``feed_jobs``). A reader can therefore see an empty
  or truncated file.
- A truncated JSON object never parses, so a JSON file that parses is complete. Only a file that looks truncated (it
  ends inside a UTF-8 character, a string, a literal or before a closing bracket: :mod:`pilotlib._jsontext`) is read
  again; one that is broken before its end (bytes that are not UTF-8, a syntax error, nesting too deep) is a final
  :class:`BrokenJobFileError` at once. A truncated url-encoded definition
  may parse (``PandaID=12`` of ``PandaID=123...``), so such a file is taken only once ``worker_pandaids.json`` lists
  its PandaID (written after the job file was closed) or once two reads one poll interval apart give the same text.
- pilot3 removes the file once read (``pilot/control/job.py``, ``get_job_definition_from_file``); Harvester leaves
  the job-spec file, and anything starting with its name (so ``<name>.read`` too), out of the log tarball
  (``tar_directory``'s ``grep -v``).
"""

from __future__ import annotations

import enum
import logging
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from pilotlib._atomic import Waitable, wait_until
from pilotlib._jsontext import JsonTextError, decode_utf8, loads
from pilotlib.job import Job, load_job_definitions
from pilotlib.panda._file_errors import BrokenJobFileError, LaunchDirFileError
from pilotlib.panda._files import READ_SUFFIX, remove_file

__all__ = ["Consume", "consume_job_file", "read_job_file"]

log = logging.getLogger(__name__)


class Consume(enum.Enum):
    """What a job source does with a job file once it has read it."""

    RENAME = "rename"
    """Rename it to ``<name>.read`` (kept for debugging, never read as a new job again)."""
    REMOVE = "remove"
    """Remove it, as pilot3 does."""
    KEEP = "keep"
    """Leave it (several readers share the file); the source still never returns a PandaID twice."""


def _complete_json(text: str) -> bool:
    """True when ``text`` is a whole JSON document, False when it looks truncated (worth reading again).

    Raises:
        JsonTextError: the text is bad in a way a longer prefix cannot repair (final).
    """
    try:
        loads(text)
    except JsonTextError as exc:
        if exc.truncated:
            return False
        raise
    return True


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LaunchDirFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _urlencoded_panda_id(text: str) -> str | None:
    """The PandaID of a syntactically complete url-encoded definition, else None."""
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    return dict(pairs).get("PandaID", "")


class _Attempt:
    """The state of one bounded attempt to read a job file."""

    def __init__(self, path: Path, confirmed: Callable[[str], bool]) -> None:
        self.path = path
        self.confirmed = confirmed
        self.previous: str | None = None
        self.reason = "the file is empty"
        self.size = 0
        self.gone = False
        self.jobs: tuple[Job, ...] = ()

    def step(self) -> bool:
        """Read once; True when the file is gone or complete (then ``jobs`` is set).

        Raises:
            BrokenJobFileError: the file is broken in a way that waiting cannot repair (not UTF-8 before its end,
                a JSON syntax error before its end, JSON nested too deeply): final at once.
        """
        data = _read_bytes(self.path)
        if data is None:
            self.gone = not self.path.exists()
            return self.gone
        self.size = len(data)
        try:
            text = decode_utf8(data)
            return self._step_text(text)
        except JsonTextError as exc:
            if not exc.truncated:
                raise BrokenJobFileError(str(self.path), f"<{self.size} bytes>", exc.reason) from None
            self.reason = f"the file looks cut short ({exc.reason})"
            return False

    def _step_text(self, text: str) -> bool:
        if not text.strip():
            self.reason = "the file is empty"
            return False
        if text.lstrip()[0] in "{[":
            if not _complete_json(text):
                self.reason = "the JSON is incomplete"
                return False
            self.jobs = load_job_definitions(text)
            return True
        return self._step_urlencoded(text)

    def _step_urlencoded(self, text: str) -> bool:
        panda_id = _urlencoded_panda_id(text)
        stable = text == self.previous
        self.previous = text
        if panda_id is None:
            self.reason = "the url-encoded definition is incomplete"
            return False
        if not (stable or (panda_id and self.confirmed(panda_id.strip()))):
            self.reason = "the url-encoded definition was still changing"
            return False
        self.jobs = load_job_definitions(text)
        return True


def read_job_file(
    path: Path,
    *,
    timeout: float,
    interval: float,
    stop: Waitable,
    confirmed: Callable[[str], bool] = lambda _panda_id: False,
) -> tuple[Job, ...] | None:
    """Read the job definitions in ``path``, waiting (bounded) for a half-written file to be completed.

    Args:
        path: the job file.
        timeout: seconds a file that exists may stay incomplete.
        interval: seconds between reads.
        stop: set it to give up early (then None is returned).
        confirmed: tells whether a PandaID is known to be completely written (listed in ``worker_pandaids.json``).

    Returns:
        The jobs, or None when the file does not exist (or vanished, or ``stop`` was set).

    Raises:
        BrokenJobFileError: the file was still incomplete when the deadline passed, or at once when it is broken in a
            way more writing cannot repair (CONVERSIONFAILURE).
        pilotlib.errors.JobDefinitionError: the file is complete but the definition is bad, with its code.
        LaunchDirFileError: the file can not be read.
    """
    if not path.exists():
        return None
    attempt = _Attempt(path, confirmed)

    def complete() -> bool:
        done = attempt.step()
        if not done:
            log.debug("job file not complete yet path=%s reason=%s", path, attempt.reason)
        return done

    if not wait_until(complete, timeout, interval, stop):
        if stop.is_set():
            return None
        reason = f"still unreadable after {timeout:g} s: {attempt.reason}"
        shown = f"<{attempt.size} bytes>"  # never the text: it may hold secrets
        raise BrokenJobFileError(str(path), shown, reason)
    return None if attempt.gone else attempt.jobs


def consume_job_file(path: Path, how: Consume) -> None:
    """Rename, remove or keep a job file that has been read (see :class:`Consume`).

    Raises:
        LaunchDirFileError: the file can not be renamed or removed.
    """
    if how is Consume.KEEP:
        return
    if how is Consume.REMOVE:
        remove_file(path)
        return
    try:
        os.replace(path, path.with_name(path.name + READ_SUFFIX))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LaunchDirFileError(f"cannot rename {path}: {exc.strerror or exc}") from exc
