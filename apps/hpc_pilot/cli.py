"""``hpc-pilot``'s command line -> :class:`~apps.hpc_pilot.settings.Settings` (the one place it reads argv and the
environment)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from apps.hpc_pilot.settings import ConfigError, Settings

__all__ = ["build_parser", "parse_settings"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="hpc-pilot", description="Run a Harvester worker's PanDA jobs on an HPC "
                                "allocation: one rank per job slot, started by the site's launcher (mpirun, srun, "
                                "aprun, jsrun) or alone on one node.")
    p.add_argument("--harvester-workdir", type=Path, default=None,
                   help="the worker's access point (default: the current directory)")
    p.add_argument("--single-job-dir", action="store_true",
                   help="the jobs' files are in the access point itself, not in <access point>/<PandaID>")
    p.add_argument("--site", default="generic", help="the site profile (installed: generic, olcf, ...)")
    p.add_argument("--site-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the site profile (repeatable)")
    p.add_argument("--state-dir", type=Path, help="root of the ranks' state (default: <access point>/.hpc-pilot)")
    p.add_argument("--site-name", default="", help="the PanDA queue")
    p.add_argument("--queuedata-file", type=Path, help="the queue description (JSON)")
    p.add_argument("--end-time", type=float, help="the allocation's end, epoch seconds (default: the batch system's)")
    p.add_argument("--walltime", type=float, help="seconds the allocation lasts from the start")
    p.add_argument("--end-margin", type=float, default=180.0,
                   help="seconds before the allocation's end by which the jobs are reported (default: 180)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds from SIGTERM to SIGKILL of a payload")
    p.add_argument("--heartbeat", type=float, default=300.0, help="seconds between a job's attribute updates")
    p.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for Harvester's files")
    p.add_argument("--start-timeout", type=float, default=120.0,
                   help="seconds rank 0 waits for another rank to start")
    p.add_argument("--no-mpi", action="store_true", help="never ask MPI for the rank (the launcher's variables)")
    p.add_argument("--container-runtime", default="", help="the payload's container runtime")
    p.add_argument("--container-image", default="", help="the payload's default container image")
    p.add_argument("--state-reserve", type=int, default=4, help="MB kept preallocated in each state directory")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _options(items: Sequence[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--site-option must be KEY=VALUE, got {item!r}")
        options[key.strip()] = value
    return options


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``argv`` (without the program name) and ``environ`` (None: ``os.environ``).

    Raises:
        ConfigError: a setting is invalid.
        SystemExit: from argparse (``--help``, an unknown option).
    """
    args = build_parser().parse_args(list(argv))
    env = dict(os.environ if environ is None else environ)
    workdir = (args.harvester_workdir or Path.cwd()).absolute()
    if not workdir.is_dir():
        raise ConfigError(f"--harvester-workdir is not a directory: {workdir}")
    for name in ("end_margin", "grace", "heartbeat", "wait_timeout", "start_timeout"):
        if getattr(args, name) < 0 or (name == "heartbeat" and args.heartbeat == 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if args.walltime is not None and args.walltime <= 0:
        raise ConfigError("--walltime must be positive")
    return Settings(workdir, per_job_dirs=not args.single_job_dir, site=args.site,
                    site_options=_options(args.site_option),
                    state_dir=args.state_dir.absolute() if args.state_dir else None, site_name=args.site_name,
                    queuedata_file=args.queuedata_file, end_time=args.end_time, walltime=args.walltime,
                    end_margin=args.end_margin, grace=args.grace, heartbeat=args.heartbeat,
                    wait_timeout=args.wait_timeout, start_timeout=args.start_timeout, use_mpi=not args.no_mpi,
                    container_runtime=args.container_runtime, container_image=args.container_image,
                    state_reserve_mb=args.state_reserve, log_level=args.log_level, environ=env)
