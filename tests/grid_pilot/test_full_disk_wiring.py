"""How the grid pilot wires the full-disk behaviour: the check before each getJob, its ``diskSpace``, the options,
and the exit status (pilot3 ``pilot.py`` ``get_proper_exit_code``: the traces' NOLOCALSPACE becomes 69)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from fixtures.smallfs import fill

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import build_kit
from apps.grid_pilot.settings import Mode, Settings
from pilotlib.errors import Direction, NoLocalSpaceError, PayloadExecutionError
from pilotlib.info import QueueDescription
from pilotlib.job import Job
from pilotlib.panda.base import JobRequest
from pilotlib.pipeline import JobRun
from pilotlib.report import PilotIdentity, final_update
from pilotlib.stop import Stop
from pilotlib.transfer.base import TransferResult
from pilotlib.transfer.logtar import LogTarballError
from pilotlib.workflow import Outcome, Retriever, WorkAreaSpace, exit_code
from tests.pipeline.fakes import make_job


def _space(settings: Settings, queue: QueueDescription | None = None) -> WorkAreaSpace:
    """The work area's checks as the grid pilot of ``settings`` makes them (its kit: the work area, the limit, the
    state's reserve, and whether its mode places the jobs)."""
    kit = build_kit(settings, Stop())
    return WorkAreaSpace.of_queue(kit.config.workdir, kit.config.free_space_limit, kit.state.reserve,
                                  placed=kit.mode.placed, queue=queue)


class _Source:
    def __init__(self) -> None:
        self.requests: list[JobRequest] = []

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        self.requests.append(request)
        return [make_job(7100)] if len(self.requests) == 1 else []


def test_no_job_is_asked_for_on_a_full_work_area(small_fs: Path) -> None:
    """The check raises NoLocalSpaceError (1098) before the source is asked: no request is made."""
    settings = Settings(workdir=small_fs, free_space_limit_mb=1, state_reserve_mb=0)
    fill(small_fs)
    source = _Source()
    retriever = Retriever(source, JobRequest("S", "Q"), settings.workdir, time.monotonic(),
                          space=_space(settings))
    with pytest.raises(NoLocalSpaceError, match="before asking for a job: 0 B free, need more than 1000000 B"):
        retriever(Stop())
    assert source.requests == []


def test_the_request_carries_disk_space_capped_by_maxwdir(small_fs: Path) -> None:
    """With room, the job is asked for with ``diskSpace`` = min(free MB, the queue's maxwdir)."""
    settings = Settings(workdir=small_fs, free_space_limit_mb=1, state_reserve_mb=0)
    source = _Source()
    space = _space(settings, QueueDescription(name="Q", maxwdir=10))
    run = Retriever(source, JobRequest("S", "Q"), settings.workdir, time.monotonic(), space=space)(Stop())
    assert run is not None and [r.disk_mb for r in source.requests] == [10]
    roomy = _space(settings, QueueDescription(name="Q", maxwdir=1000))
    assert roomy.before_request() == 16  # the 16 MiB tmpfs: 16.7 MB


def test_a_placed_job_on_a_full_work_area_fails_with_1098(small_fs: Path) -> None:
    """ARC and Harvester place the job: it is read (no check stops that, as pilot3 delays it in push mode), then
    it fails with 1098 without running, so that it is reported; server mode fails no job that way."""
    fill(small_fs)
    for mode in (Mode.ARC, Mode.HARVESTER):
        settings = Settings(mode=mode, workdir=small_fs, free_space_limit_mb=1, state_reserve_mb=0,
                            launch_dir=small_fs, harvester_workdir=small_fs)
        source = _Source()
        run = Retriever(source, JobRequest("S", "Q"), settings.workdir, time.monotonic(),
                        space=_space(settings))(Stop())
        assert run is not None and run.job.panda_id == 7100 and len(source.requests) == 1
        assert isinstance(run.failure, NoLocalSpaceError)
        assert "before running the job: 0 B free" in str(run.failure)
    server = Settings(workdir=small_fs, free_space_limit_mb=1, state_reserve_mb=0)
    assert _space(server).placed_job() is None


def test_exit_status_of_a_full_disk_and_of_a_log_not_staged_out() -> None:
    """A job that failed with 1098 gives 69; a job whose log was not staged out gives 1; else 0."""
    job = make_job(1)
    log_ok = TransferResult(lfn="log.tgz", direction=Direction.STAGE_OUT, tool="cp", url="u", local_path="log.tgz")
    assert log_ok.ok
    full = JobRun(job, Path("/x"), final_sent=True, log_result=log_ok).failed(NoLocalSpaceError("full"))
    assert exit_code(Outcome((full,), None), Stop()) == 69
    failed = JobRun(job, Path("/x"), final_sent=True, log_result=log_ok).failed(PayloadExecutionError("rc 1"))
    assert exit_code(Outcome((failed,), None), Stop()) == 0
    lost_log = JobRun(job, Path("/x"), final_sent=True, log_result=TransferResult(
        lfn="log.tgz", direction=Direction.STAGE_OUT, tool="", url="", local_path="log.tgz",
        error=LogTarballError("tar failed")))
    assert exit_code(Outcome((lost_log,), None), Stop()) == 1


def test_the_space_options(tmp_path: Path) -> None:
    """--free-space-limit, --free-space-limit-running and --state-reserve are MB; the defaults are pilot3's."""
    base = ["-q", "Q", "--url", "http://x", "-a", str(tmp_path)]
    assert (parse_settings(base).free_space_limit_mb, parse_settings(base).free_space_limit_running_mb,
            parse_settings(base).state_reserve_mb) == (2000, 1000, 4)
    given = parse_settings([*base, "--free-space-limit", "5", "--free-space-limit-running", "3", "--state-reserve",
                            "0"])
    assert (given.free_space_limit_mb, given.free_space_limit_running_mb, given.state_reserve_mb) == (5, 3, 0)
    with pytest.raises(ConfigError, match="must not be negative"):
        parse_settings([*base, "--state-reserve", "-1"])


def test_the_final_diag_says_why_the_log_was_not_staged_out() -> None:
    """A job that failed (1098) and whose log then failed too: ``pilotErrorDiag`` holds both, the failure first;
    a log staged out (or a log failure that is the job's failure) leaves the diag as it was."""
    job = make_job(3)
    tar_failed = LogTarballError("tar failed: disk full")
    log_failed = TransferResult(lfn="log.tgz", direction=Direction.STAGE_OUT, tool="", url="", local_path="log.tgz",
                                error=tar_failed)
    run = JobRun(job, Path("/x"), log_result=log_failed).failed(NoLocalSpaceError("0 B free"))
    fields = final_update(run, PilotIdentity("S", "n")).fields
    assert fields["pilotErrorCode"] == 1098
    assert fields["pilotErrorDiag"] == "0 B free; log not staged out: tar failed: disk full"
    alone = JobRun(job, Path("/x"), log_result=log_failed).failed(tar_failed)
    assert final_update(alone, PilotIdentity("S", "n")).fields["pilotErrorDiag"] == "tar failed: disk full"
