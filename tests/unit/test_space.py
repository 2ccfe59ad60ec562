"""The work area's space checks (:mod:`pilotlib.space`), the state directory's reserve (:mod:`pilotlib.reserve`) and
the diagnosis of a payload that filled the disk, on a real small file system (a tmpfs) where the disk matters.

pilot3 facts the numbers follow: ``pilot/util/monitoring.py`` ``check_local_space`` (``spaceleft <= limit`` fails
with NOLOCALSPACE; ``pilot/util/default.cfg`` ``free_space_limit`` 2 GB, ``free_space_limit_running`` 1 GB) and
``pilot/util/workernode.py`` ``get_disk_space`` (``diskSpace`` = min(free MB, the queue's ``maxwdir``)).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import attrs
import pytest
from fixtures.smallfs import SMALL_FS_SIZE, fill

from pilotlib.errors import ErrorCode, NoLocalSpaceError
from pilotlib.panda.base import JobUpdate
from pilotlib.payload import PayloadOutcome, diagnose
from pilotlib.recovery import FinalStore
from pilotlib.reserve import RESERVE_NAME, SpaceReserve
from pilotlib.space import (
    FREE_SPACE_LIMIT,
    FREE_SPACE_LIMIT_RUNNING,
    MB,
    check_free_space,
    free_bytes,
    payload_space_need,
    request_disk_mb,
)
from pilotlib.workflow.state import ReservedFileHandler
from tests.pipeline.fakes import make_job

MiB = 1024 * 1024


def test_the_limits_are_pilot3s() -> None:
    """2 GB before a job is asked for, 1 GB before and while the payload runs (pilot3 ``default.cfg``)."""
    assert (FREE_SPACE_LIMIT, FREE_SPACE_LIMIT_RUNNING) == (2 * 10**9, 10**9)


def test_free_space_equal_to_the_limit_is_too_little() -> None:
    """``free <= need`` fails with NoLocalSpaceError (1098) naming the place, what is free and what is needed."""
    with pytest.raises(NoLocalSpaceError) as caught:
        check_free_space(100, 100, Path("/w"), "asking for a job")
    assert caught.value.code == ErrorCode.NOLOCALSPACE
    assert str(caught.value) == "too little space left in /w before asking for a job: 100 B free, need more than 100 B"
    check_free_space(101, 100, Path("/w"), "asking for a job")


def test_the_payload_needs_its_max_disk_count_beyond_what_its_directory_holds() -> None:
    """maxDiskCount (MB) less what is already in the work directory, capped by the queue's limit, never below the
    running limit."""
    job = attrs.evolve(make_job(), max_disk_count=50)
    assert payload_space_need(job, limit_running=MB) == 50 * MB
    assert payload_space_need(job, limit_running=MB, used=10 * MB) == 40 * MB
    assert payload_space_need(job, limit_running=MB, workdir_limit=20 * MB) == 20 * MB
    assert payload_space_need(job, limit_running=60 * MB) == 60 * MB
    assert payload_space_need(make_job(), limit_running=MB) == MB  # no maxDiskCount: the running limit


def test_disk_space_asked_for_is_capped_by_maxwdir() -> None:
    """``diskSpace`` is the free space in MB, at most the queue's ``maxwdir`` (0: no cap)."""
    assert request_disk_mb(5 * 10**9, 3000) == 3000
    assert request_disk_mb(2 * 10**9, 3000) == 2000
    assert request_disk_mb(2 * 10**9, 0) == 2000


def test_free_bytes_measures_the_file_system(small_fs: Path) -> None:
    """``free_bytes`` is what a writer can still use: the whole tmpfs when empty, 0 once filled."""
    assert free_bytes(small_fs) == SMALL_FS_SIZE
    fill(small_fs)
    assert free_bytes(small_fs) == 0


def test_the_reserve_takes_real_blocks_and_gives_them_back(small_fs: Path) -> None:
    """``ensure`` preallocates the reserve (the free space drops by its size); ``release`` returns it."""
    reserve = SpaceReserve(small_fs, 4 * MiB)
    assert reserve.ensure()
    assert (small_fs / RESERVE_NAME).is_file() and reserve.held == 4 * MiB
    assert free_bytes(small_fs) == SMALL_FS_SIZE - 4 * MiB
    assert reserve.ensure()  # already whole: nothing more is taken
    assert free_bytes(small_fs) == SMALL_FS_SIZE - 4 * MiB
    assert reserve.release() == 4 * MiB
    assert free_bytes(small_fs) == SMALL_FS_SIZE and not (small_fs / RESERVE_NAME).exists()
    assert reserve.release() == 0


def test_no_reserve_on_a_full_disk(small_fs: Path) -> None:
    """On a full file system the reserve cannot be made: ``ensure`` says so and leaves no file."""
    fill(small_fs)
    reserve = SpaceReserve(small_fs, MiB)
    assert not reserve.ensure()
    assert not (small_fs / RESERVE_NAME).exists()


def test_a_write_that_finds_the_disk_full_releases_the_reserve_and_succeeds(small_fs: Path) -> None:
    """A write failing with ENOSPC releases the reserve and is run again, which then succeeds."""
    reserve = SpaceReserve(small_fs, MiB)
    assert reserve.ensure()
    fill(small_fs)
    calls = []

    def write() -> int:
        calls.append(1)
        return (small_fs / "state.json").write_bytes(b"x" * 100_000)

    assert reserve.retrying(write) == 100_000
    assert len(calls) == 2 and not (small_fs / RESERVE_NAME).exists()


def test_a_write_failing_for_another_reason_is_not_retried(small_fs: Path) -> None:
    """Only a full disk releases the reserve: another error is raised at once, the reserve kept."""
    reserve = SpaceReserve(small_fs, MiB)
    assert reserve.ensure()
    with pytest.raises(FileNotFoundError):
        reserve.retrying(lambda: (small_fs / "missing" / "x").write_bytes(b"x"))
    assert reserve.held == MiB


def test_the_final_store_writes_on_a_full_disk_with_the_reserve(small_fs: Path) -> None:
    """The grid pilot's final store on a full disk: the update is written whole, thanks to the reserve."""
    reserve = SpaceReserve(small_fs, MiB)
    assert reserve.ensure()
    fill(small_fs)
    store = FinalStore(small_fs / "state", guard=reserve.retrying)
    path = store.save(JobUpdate(7, "failed", {"pilotErrorCode": 1098, "pilotErrorDiag": "x" * 20_000}, final=True))
    assert path == small_fs / "state" / "7" / "final_update.json"
    assert '"pilotErrorCode":1098' in path.read_text()


def test_a_log_file_keeps_its_records_on_a_full_disk_with_the_reserve(small_fs: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A log record that cannot be written (the disk is full) releases the reserve and is written; once nothing is
    left to release, the loss is said once on stderr, not a traceback per record."""
    monkeypatch.setattr(logging.getLogger("pilotlib.reserve"), "propagate", False)  # only this handler's output
    reserve = SpaceReserve(small_fs, 64 * 1024)
    assert reserve.ensure()
    handler = ReservedFileHandler(small_fs / "pilotlog.txt", reserve)
    logger = logging.getLogger("test_space.full")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        fill(small_fs)
        logger.warning("after the disk filled %s", "x" * 100)
        assert "after the disk filled" in (small_fs / "pilotlog.txt").read_text()
        fill(small_fs)  # the space the reserve gave back is taken too
        for _ in range(3):
            logger.warning("%s", "y" * 10_000)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.count("log records lost, the disk is full") == 1 and "Traceback" not in err, err


def test_a_failed_payload_on_a_full_disk_is_1098_without_any_stderr(small_fs: Path) -> None:
    """Exit status 3, empty stderr, the work directory's file system full: NOLOCALSPACE from ``statvfs``."""
    (small_fs / "payload.stderr").write_bytes(b"")
    fill(small_fs)
    outcome = PayloadOutcome.from_workdir(small_fs, 3, job_report_required=False)
    assert outcome.free_bytes == 0 and outcome.stderr_tail == ""
    diagnosis = diagnose(outcome)
    assert diagnosis.pilot_error_code == ErrorCode.NOLOCALSPACE
    assert diagnosis.pilot_error_diag == ("Too little free space on the local disk: exit status 3, the work "
                                          "directory's disk is full (0 B)")


def test_a_full_disk_wins_over_the_transform_error_report() -> None:
    """Out of space has priority over the codes found before it (pilot3 ``diagnose.py`` ``priority=True``)."""
    report = '{"error_code": 65, "error_diag": "cannot write"}'
    assert diagnose(PayloadOutcome(65, error_report=report, free_bytes=0,
                                   job_report_required=False)).pilot_error_code == ErrorCode.NOLOCALSPACE


def test_a_failed_payload_with_space_left_is_not_a_full_disk() -> None:
    """Space left (more than 1 MiB), or a payload that succeeded: the full-disk rule does not apply."""
    assert diagnose(PayloadOutcome(3, free_bytes=2 * MiB, job_report_required=False)).pilot_error_code == \
        ErrorCode.PAYLOADEXECUTIONFAILURE
    assert diagnose(PayloadOutcome(0, free_bytes=0, job_report_required=False)).pilot_error_code is None


def test_an_enospc_error_is_what_counts_as_full() -> None:
    """ENOSPC and EDQUOT are a full disk; other OSErrors are not."""
    from pilotlib.reserve import is_full_error  # noqa: PLC0415

    assert is_full_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert is_full_error(OSError(errno.EDQUOT, "quota"))
    assert not is_full_error(OSError(errno.EACCES, "denied"))
