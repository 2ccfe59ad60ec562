"""``grid-pilot``: argv and config -> settings -> logging, signals, lifeline -> run the kit -> exit status."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import pilot_state, run_grid_pilot
from pilotlib.stop import Stop
from pilotlib.workflow import configure_logging, exit_code, handle_signals, summary, tie_payloads

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid pilot; return the process exit status."""
    started = time.monotonic()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"grid-pilot: {exc}", file=sys.stderr)
        return 2
    state = pilot_state(settings)
    per_job = configure_logging(state, settings.log_level, program="grid-pilot")
    stop = Stop()
    with handle_signals(stop), tie_payloads() as tied:
        # each finished job's own log file is closed: a multi-job pilot would otherwise keep one open per job
        outcome = run_grid_pilot(settings, stop, started, on_done=lambda run: per_job.close_job(run.job.panda_id),
                            lifeline=tied, state=state)
    status = exit_code(outcome, stop)
    print(summary(outcome, state, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
