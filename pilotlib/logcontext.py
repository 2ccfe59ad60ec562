"""The job a log record belongs to, carried by a context variable (STYLE R15), and the filters and handler a pilot
installs.

The pipeline sets :data:`current_panda_id` while a stage works on a job, so every record logged from that stage's
thread knows its job without loggers being passed around. Nothing in the library configures logging by itself: a
pilot's main calls :func:`pilotlib.workflow.configure_logging`, which adds :class:`JobIdFilter` (records then have
``%(panda_id)s``) and :class:`SecretFilter` to its handlers and, to give each job its own log in the state directory
(copied into the job's log tarball, so that it tells that job's story), a :class:`PerJobFileHandler`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

from pilotlib._atomic import make_private_dir
from pilotlib._redact import redact_text

__all__ = ["JobIdFilter", "PerJobFileHandler", "SecretFilter", "current_panda_id", "job_context"]

#: The PandaID of the job being worked on in this context, or None.
current_panda_id: ContextVar[int | None] = ContextVar("pilotlib_panda_id", default=None)


@contextlib.contextmanager
def job_context(panda_id: int) -> Iterator[None]:
    """Within the block, log records of this thread (and of contexts copied from it) belong to job ``panda_id``."""
    token = current_panda_id.set(panda_id)
    try:
        yield
    finally:
        current_panda_id.reset(token)


class JobIdFilter(logging.Filter):
    """Adds ``record.panda_id`` (the current job's PandaID, or ``-``) to every record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record."""
        if not hasattr(record, "panda_id"):
            panda_id = current_panda_id.get()
            record.panda_id = "-" if panda_id is None else panda_id
        return True


class SecretFilter(logging.Filter):
    """Redacts every record's message with :func:`~pilotlib._redact.redact_text` (tokenised URLs, ``Bearer``
    tokens, secret ``key=value`` pairs), also a third-party library's (rucio-clients, gfal2); never drops one.

    A handler filter, added next to :class:`JobIdFilter` (:func:`pilotlib.workflow.configure_logging`): pilotlib
    redacts its own lines where it writes them, this catches what a backend logs on its own loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message by its redacted form (a record is formatted once, here)."""
        message = record.getMessage()
        shown = redact_text(message)
        if shown != message or record.args:
            record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


class PerJobFileHandler(logging.Handler):
    """Writes each record that belongs to a job to that job's own log file, ``path_of(panda_id)``.

    Records with no job are left to the pilot's other handlers. Files are opened on a job's first record and closed
    with :meth:`close_job` (or :meth:`close`). ``opener`` makes a file's handler (default: a UTF-8
    :class:`logging.FileHandler`; e.g. one that frees reserved space when the disk is full).
    """

    def __init__(self, path_of: Callable[[int], Path],
                 opener: Callable[[Path], logging.FileHandler] | None = None) -> None:
        super().__init__()
        self._path_of = path_of
        self._opener = opener or (lambda path: logging.FileHandler(path, encoding="utf-8"))
        self._files: dict[int, logging.FileHandler] = {}
        self._files_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to its job's file (nothing for records without a job)."""
        panda_id = getattr(record, "panda_id", None)
        if not isinstance(panda_id, int):
            panda_id = current_panda_id.get()
        if panda_id is None:
            return
        try:
            handler = self._handler(panda_id)
            handler.emit(record)
        except Exception:  # logging must never break the pilot; report through logging's own channel
            self.handleError(record)

    def _handler(self, panda_id: int) -> logging.FileHandler:
        with self._files_lock:
            handler = self._files.get(panda_id)
            if handler is None:
                path = self._path_of(panda_id)
                make_private_dir(path.parent)
                handler = self._opener(path)
                handler.setFormatter(self.formatter)
                self._files[panda_id] = handler
            return handler

    def close_job(self, panda_id: int) -> None:
        """Close job ``panda_id``'s file (its later records open it again, appending)."""
        with self._files_lock:
            handler = self._files.pop(panda_id, None)
        if handler is not None:
            handler.close()

    def close(self) -> None:
        """Close every job's file."""
        with self._files_lock:
            handlers = list(self._files.values())
            self._files.clear()
        for handler in handlers:
            handler.close()
        super().close()
