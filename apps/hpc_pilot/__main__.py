"""``hpc-pilot``: argv -> settings -> this rank's place -> logging, signals, lifeline -> run the rank -> exit status.

One process per job slot, started by the site's launcher (``mpirun``/``mpiexec``, ``srun``, ``aprun``, ``jsrun``),
or alone on one node (it then runs all the worker's jobs itself). See ``docs/hpc-pilot.rst``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from apps.hpc_pilot.cli import parse_settings
from apps.hpc_pilot.compose import rank_state, run_rank
from apps.hpc_pilot.settings import ConfigError
from pilotlib.errors import PilotError
from pilotlib.hpc import detect_rank, load_site, mpi_place
from pilotlib.stop import Stop
from pilotlib.workflow import configure_logging, handle_signals, summary, tie_payloads

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run this rank of the HPC pilot; return the process exit status."""
    started = time.monotonic()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"hpc-pilot: {exc}", file=sys.stderr)
        return 2
    place = detect_rank(settings.environ, mpi=mpi_place if settings.use_mpi else None)
    state = rank_state(settings, place.rank)
    per_job = configure_logging(state, settings.log_level, program=f"hpc-pilot rank {place.rank}")
    try:
        profile = load_site(settings.site, settings.site_options)
    except PilotError as exc:
        print(f"hpc-pilot: {exc}", file=sys.stderr)
        return 2
    stop = Stop()
    with handle_signals(stop), tie_payloads() as tied:
        ran = run_rank(settings, place, profile, stop, started, lifeline=tied,
                       on_done=lambda run: per_job.close_job(run.job.panda_id))
    print(summary(ran.outcome, state, ran.status))
    return ran.status


if __name__ == "__main__":
    sys.exit(main())
