"""Which rank of the allocation this process is, and which of the worker's jobs it takes.

HPC centres start one process per job slot with their launcher (``mpirun``/``mpiexec``, ``srun``, ``aprun``,
``jsrun``). A rank knows its place either from MPI itself (mpi4py's ``COMM_WORLD``) or from the variables its
launcher sets. :func:`detect_rank` asks MPI only when an MPI launcher started the process (asking a process that
no MPI launcher started makes it a singleton of size 1, and under ``srun`` without a PMI plug-in every task would
believe it is rank 0); otherwise it reads the launcher's variables; a process started by hand is the only rank.

No collective MPI call is ever made: a rank that dies cannot hang the others (see :mod:`pilotlib.hpc.gather` for
how rank 0 learns the outcomes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import attrs

__all__ = ["LAUNCHER_VARIABLES", "MPI_LAUNCHED", "MPI_PREFIXES", "RankPlace", "detect_rank", "mpi_place",
           "outside_mpi", "slots"]

log = logging.getLogger(__name__)

#: The (rank, size) variables each launcher sets, in the order they are trusted.
LAUNCHER_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("pmi", "PMI_RANK", "PMI_SIZE"),
    ("pmix", "PMIX_RANK", "PMIX_SIZE"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS"),
    ("alps", "ALPS_APP_PE", "ALPS_APP_SIZE"),
    ("jsrun", "JSM_NAMESPACE_RANK", "JSM_NAMESPACE_SIZE"),
)

#: The prefixes of the variables an MPI launcher gives each of its processes (Open MPI, PMIx, PMI).
MPI_PREFIXES = ("OMPI_", "PMIX_", "PMI_")

#: Launchers whose processes are MPI processes (mpi4py's ``COMM_WORLD`` then spans the allocation).
MPI_LAUNCHED = frozenset({"openmpi", "pmi", "pmix"})


@attrs.frozen
class RankPlace:
    """This process's place in the allocation.

    Attributes:
        rank: 0-based rank.
        size: number of ranks.
        launcher: what told it (``mpi``, ``slurm``, ... or ``single`` for a process started by hand).
    """

    rank: int = 0
    size: int = 1
    launcher: str = "single"

    def __attrs_post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise ValueError(f"rank {self.rank} of {self.size} is not a place")


def mpi_place() -> RankPlace:
    """The rank and size of mpi4py's ``COMM_WORLD`` (initialises MPI; ``MPI_Finalize`` runs at exit).

    Raises:
        ImportError: mpi4py is not installed.
    """
    from mpi4py import MPI  # noqa: PLC0415 - only a process an MPI launcher started pays for MPI

    world = MPI.COMM_WORLD
    return RankPlace(int(world.Get_rank()), int(world.Get_size()), "mpi")


def _launcher_place(env: Mapping[str, str]) -> RankPlace | None:
    for name, rank_var, size_var in LAUNCHER_VARIABLES:
        rank, size = env.get(rank_var, ""), env.get(size_var, "")
        if rank.isdigit() and size.isdigit() and int(rank) < int(size):
            return RankPlace(int(rank), int(size), name)
    return None


def detect_rank(env: Mapping[str, str], *, mpi: Callable[[], RankPlace] | None = mpi_place) -> RankPlace:
    """This process's place: MPI's when an MPI launcher started it (``mpi``; None never asks MPI), else its
    launcher's variables, else rank 0 of 1.

    When mpi4py is missing or MPI disagrees with the launcher's variables, the variables win and the reason is
    logged: the place must never be guessed as 0 by several ranks.
    """
    launched = _launcher_place(env)
    if launched is not None and launched.launcher in MPI_LAUNCHED and mpi is not None:
        try:
            place = mpi()
        except ImportError as exc:
            log.warning("mpi4py cannot be imported, the launcher's variables give the rank error=%s", exc)
            return launched
        if (place.rank, place.size) != (launched.rank, launched.size):
            log.warning("MPI says rank %d of %d, the launcher %d of %d: the launcher's variables win",
                        place.rank, place.size, launched.rank, launched.size)
            return launched
        return place
    return launched or RankPlace()


def slots(place: RankPlace, n_jobs: int) -> tuple[int, ...]:
    """The entries of ``worker_pandaids.json`` this rank takes: its own, then every ``size``-th after it (a rank
    without one takes none; a single process takes them all)."""
    return tuple(range(place.rank, n_jobs, place.size))


def outside_mpi(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the variables of the pilot's own MPI world (:data:`MPI_PREFIXES`): a payload must not believe
    it is a rank of the pilot's ``mpirun`` (an MPI payload would connect to the pilot's PMIx server, or come up as
    the pilot's rank). The batch system's own variables (``SLURM_*``) stay: they describe the allocation."""
    return {key: value for key, value in env.items() if not key.startswith(MPI_PREFIXES)}
