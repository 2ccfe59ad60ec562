"""Which rank a process is, and which of the worker's jobs it takes (:mod:`pilotlib.hpc.ranks`)."""

from __future__ import annotations

import logging

import pytest

from pilotlib.hpc import RankPlace, detect_rank, slots


def _never() -> RankPlace:
    raise AssertionError("MPI must not be asked")


def test_a_process_started_by_hand_is_the_only_rank() -> None:
    """No launcher variable: rank 0 of 1, MPI never initialised (a singleton would be rank 0 anyway, but costs
    MPI_Init and under ``srun`` without PMI every task would be 0)."""
    assert detect_rank({}, mpi=_never) == RankPlace(0, 1, "single")


def test_slurm_tasks_take_their_place_from_the_launcher_without_mpi() -> None:
    """``srun`` sets ``SLURM_PROCID``/``SLURM_NTASKS``; it is not an MPI launcher here, so MPI is not asked."""
    assert detect_rank({"SLURM_PROCID": "3", "SLURM_NTASKS": "8"}, mpi=_never) == RankPlace(3, 8, "slurm")


def test_an_mpi_launcher_asks_mpi_and_mpi_agrees() -> None:
    """Under ``mpirun`` (``OMPI_COMM_WORLD_*``) the place is MPI's own."""
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert detect_rank(env, mpi=lambda: RankPlace(1, 2, "mpi")) == RankPlace(1, 2, "mpi")


def test_mpi_that_disagrees_with_the_launcher_loses(caplog: pytest.LogCaptureFixture) -> None:
    """A singleton MPI (rank 0 of 1, e.g. mpi4py built for another MPI) under an 8-rank launcher would make every
    rank take job 0: the launcher's variables win, and it is logged."""
    env = {"PMI_RANK": "5", "PMI_SIZE": "8"}
    with caplog.at_level(logging.WARNING):
        assert detect_rank(env, mpi=lambda: RankPlace(0, 1, "mpi")) == RankPlace(5, 8, "pmi")
    assert "the launcher's variables win" in caplog.text


def test_missing_mpi4py_falls_back_to_the_launcher() -> None:
    """mpi4py not installed: the launcher's variables, not a crash."""
    def missing() -> RankPlace:
        raise ImportError("No module named 'mpi4py'")

    assert detect_rank({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4"}, mpi=missing) == \
        RankPlace(2, 4, "openmpi")


@pytest.mark.parametrize("env", [{"SLURM_PROCID": "x", "SLURM_NTASKS": "2"}, {"SLURM_PROCID": "2", "SLURM_NTASKS": "2"},
                                 {"SLURM_PROCID": "0"}])
def test_nonsense_launcher_variables_are_ignored(env: dict[str, str]) -> None:
    """A rank that is not a number, not below the size, or without a size is not a place."""
    assert detect_rank(env, mpi=_never) == RankPlace()


def test_slots_rank_i_takes_the_ith_job_then_every_sizeth() -> None:
    """Rank i takes entry i; with more jobs than ranks, i+size, ...; a rank beyond the list takes none; a single
    process takes them all."""
    assert slots(RankPlace(1, 4), 4) == (1,)
    assert slots(RankPlace(1, 4), 10) == (1, 5, 9)
    assert slots(RankPlace(3, 4), 2) == ()
    assert slots(RankPlace(), 3) == (0, 1, 2)


def test_a_place_outside_the_allocation_is_refused() -> None:
    """Rank 2 of 2 is no place."""
    with pytest.raises(ValueError, match="not a place"):
        RankPlace(2, 2)
