"""The HPC pilot's settings: one frozen value, made once from argv and the environment (STYLE R1)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["ConfigError", "Settings"]


class ConfigError(Exception):
    """A setting is missing or invalid (exit status 2)."""


def _frozen(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@attrs.frozen
class Settings:
    """Everything one rank of the HPC pilot is told.

    Attributes:
        harvester_workdir: the worker's access point (Harvester's ``accessPoint``).
        per_job_dirs: each job's files are in ``<access point>/<PandaID>`` (Harvester's many-jobs workers).
        site: the site profile's name (``pilotlib.hpc_sites`` entry point).
        site_options: the profile's options (``--site-option KEY=VALUE``).
        state_dir: the root of the ranks' state directories (``<state_dir>/rank-<N>``) and rank folders; never on a
            RAM disk.
        site_name: the PanDA queue (``PANDA_RESOURCE`` of the payload, the queue description's name).
        queuedata_file: the queue description as a file (None: none).
        end_time: the allocation's end (epoch seconds) when the batch system does not tell.
        walltime: seconds from the start the allocation lasts, when neither the option above nor the batch system
            tells.
        end_margin: seconds before the allocation's end by which every rank's jobs are over and reported.
        grace: seconds between SIGTERM and SIGKILL when a payload is stopped.
        heartbeat: seconds between a job's ``worker_attributes.json`` updates while it runs.
        wait_timeout: seconds to wait for Harvester's files of a job.
        start_timeout: seconds rank 0 waits for another rank to check in.
        use_mpi: ask MPI (mpi4py) for the rank when an MPI launcher started the process.
        container_runtime, container_image: the payload's container when the job or queue asks for one.
        state_reserve_mb: MB preallocated in each rank's state directory.
        log_level: the console's level.
        environ: the pilot's environment (read once, by the CLI).
    """

    harvester_workdir: Path
    per_job_dirs: bool = True
    site: str = "generic"
    site_options: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    state_dir: Path | None = None
    site_name: str = ""
    queuedata_file: Path | None = None
    end_time: float | None = None
    walltime: float | None = None
    end_margin: float = 180.0
    grace: float = 30.0
    heartbeat: float = 300.0
    wait_timeout: float = 60.0
    start_timeout: float = 120.0
    use_mpi: bool = True
    container_runtime: str = ""
    container_image: str = ""
    state_reserve_mb: int = 4
    log_level: str = "INFO"
    environ: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen, repr=False)

    @property
    def state_root(self) -> Path:
        """The ranks' state root (default ``<access point>/.hpc-pilot``)."""
        return self.state_dir or self.harvester_workdir / ".hpc-pilot"
