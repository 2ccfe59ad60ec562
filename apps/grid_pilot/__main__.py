"""``grid-pilot``: argv and config -> settings -> logging, signals -> run the pipeline -> exit status."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Sequence

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import PILOT_LOG, Outcome, exit_code, job_log_path, run_pilot
from apps.grid_pilot.settings import Settings
from apps.grid_pilot.signals import handle_signals
from apps.grid_pilot.state import ReservedFileHandler, state_reserve
from pilotlib.logcontext import JobIdFilter, PerJobFileHandler, SecretFilter
from pilotlib.payload import Lifeline
from pilotlib.reserve import SpaceReserve
from pilotlib.stop import Stop

__all__ = ["main"]
_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)-10s job=%(panda_id)s %(name)s: %(message)s"


def _configure_logging(settings: Settings, reserve: SpaceReserve | None = None) -> PerJobFileHandler:
    """The pilot's log to stderr and ``<state dir>/pilotlog.txt``; each job's records also go to
    ``<state dir>/pilotlog-<PandaID>.txt``, copied into the job's log tarball (its own story). Returns the per-job
    handler (a finished job's file is closed with its ``close_job``). The files release the state directory's
    ``reserve`` (default: the settings') when the disk is full."""
    settings.state_path.mkdir(parents=True, exist_ok=True)
    reserve = reserve or state_reserve(settings)
    per_job = PerJobFileHandler(lambda panda_id: job_log_path(settings, panda_id),
                                opener=lambda path: ReservedFileHandler(path, reserve))
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        ReservedFileHandler(settings.state_path / PILOT_LOG, reserve),
        per_job,
    ]
    formatter = logging.Formatter(_FORMAT)
    for handler in handlers:
        handler.addFilter(JobIdFilter())
        handler.addFilter(SecretFilter())
        handler.setFormatter(formatter)
    # the files always tell the whole story (INFO, or DEBUG when asked); --log-level sets what reaches stderr
    console_level = logging.getLevelName(settings.log_level)
    file_level = min(logging.INFO, console_level) if isinstance(console_level, int) else logging.INFO
    handlers[0].setLevel(settings.log_level)
    for handler in handlers[1:]:
        handler.setLevel(file_level)
    logging.basicConfig(level=file_level, handlers=handlers, force=True)
    return per_job


@contextlib.contextmanager
def _lifeline() -> Iterator[Lifeline | None]:
    """The pilot's lifeline for its whole run (payloads die with the pilot), closed at the end; None (logged) when
    it cannot be started: the pilot still runs its jobs."""
    try:
        lifeline = Lifeline.start()
    except OSError as exc:
        logging.getLogger(__name__).error("no lifeline: payloads would outlive a killed pilot error=%s", exc)
        yield None
        return
    with lifeline:
        yield lifeline


def _summary(outcome: Outcome, settings: Settings, status: int) -> str:
    lines = []
    for run in outcome.runs:
        code = int(run.failure.code) if run.failure is not None else 0
        state = "failed" if run.failure is not None else "finished"
        sent = "acknowledged" if run.final_sent else "kept for recovery"
        lines.append(f"job {run.job.panda_id}: {state} pilotErrorCode={code} final update {sent}; "
                     f"work directory {run.workdir}")
    if outcome.recovered:
        lines.append(f"recovered final updates of jobs {', '.join(map(str, outcome.recovered))}")
    if outcome.unrecovered:
        lines.append(f"final updates of earlier jobs still not delivered (kept for the next pilot): "
                     f"{', '.join(map(str, outcome.unrecovered))}")
    if not outcome.runs:
        lines.append("no job was run")
    if outcome.retrieve_error is not None:
        error = outcome.retrieve_error
        lines.append(f"stopped asking for jobs: {type(error).__name__} code={int(error.code)}: {error}")
    lines.append(f"pilot log {settings.state_path / PILOT_LOG}; exit status {status}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid pilot; return the process exit status."""
    started = time.monotonic()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"grid-pilot: {exc}", file=sys.stderr)
        return 2
    reserve = state_reserve(settings)
    per_job = _configure_logging(settings, reserve)
    stop = Stop()
    with handle_signals(stop) as received, _lifeline() as lifeline:
        # each finished job's own log file is closed: a multi-job pilot would otherwise keep one open per job
        outcome = run_pilot(settings, stop, started, on_done=lambda run: per_job.close_job(run.job.panda_id),
                            lifeline=lifeline, reserve=reserve)
    status = exit_code(outcome, stop)
    if len(received.received) > 1:
        logging.getLogger(__name__).warning("signals after the first ignored count=%d", len(received.received) - 1)
    print(_summary(outcome, settings, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
