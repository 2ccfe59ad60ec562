"""The pilot's log: the story of the pilot and of each of its jobs, kept in the state directory.

:func:`configure_logging` sends the pilot's records to stderr and to ``<state dir>/pilotlog.txt``, and each job's
records also to ``<state dir>/pilotlog-<PandaID>.txt`` (copied into the job's log tarball: its own story). Every
record names its job (``job=<PandaID>``) and passes the secret filter (:class:`~pilotlib.logcontext.SecretFilter`).
The files release the state directory's reserve when the disk is full.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pilotlib._atomic import make_private_dir
from pilotlib.logcontext import JobIdFilter, PerJobFileHandler, SecretFilter
from pilotlib.workflow.state import PilotState, ReservedFileHandler

__all__ = ["LOG_FORMAT", "configure_logging"]

#: Every record's form: time, level, thread, the job it belongs to (``job=<PandaID>``), logger, message.
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)-10s job=%(panda_id)s %(name)s: %(message)s"


def configure_logging(state: PilotState, level: str = "INFO", stream: TextIO | None = None, *,
                      program: str = "pilot") -> PerJobFileHandler:
    """Log to ``stream`` (default stderr) at ``level`` and to the state directory's files (INFO, or DEBUG when
    asked: the files always tell the whole story); returns the per-job handler (close a finished job's file with
    its ``close_job``). Called by a pilot's ``main``: the library never configures logging by itself. ``program``
    names the pilot in the one line said on stderr when log records are lost to a full disk."""
    make_private_dir(state.path)
    per_job = PerJobFileHandler(state.job_log, opener=lambda path: ReservedFileHandler(path, state.reserve, program))
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr if stream is None else stream),
        ReservedFileHandler(state.pilot_log, state.reserve, program),
        per_job,
    ]
    formatter = logging.Formatter(LOG_FORMAT)
    for handler in handlers:
        handler.addFilter(JobIdFilter())
        handler.addFilter(SecretFilter())
        handler.setFormatter(formatter)
    console_level = logging.getLevelName(level)
    file_level = min(logging.INFO, console_level) if isinstance(console_level, int) else logging.INFO
    handlers[0].setLevel(level)
    for handler in handlers[1:]:
        handler.setLevel(file_level)
    logging.basicConfig(level=file_level, handlers=handlers, force=True)
    return per_job
