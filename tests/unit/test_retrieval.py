"""What a job taken carries on its run (:class:`pilotlib.workflow.Retriever`): its set-up, resolved once, bound by
the pilot's end of life; and which failure wins when a placed job can neither be set up nor run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from pilotlib.errors import ErrorCode
from pilotlib.job import Job
from pilotlib.jobsetup import CopytoolChoice, SetupResolver
from pilotlib.panda.base import JobRequest
from pilotlib.reserve import SpaceReserve
from pilotlib.stop import Stop
from pilotlib.workflow import PilotLimits, Retriever, WorkAreaSpace
from tests.pipeline.fakes import make_job

BAD_OVERRIDE = "--overwriteQueueData=[1,2] --events 10"


class _Source:
    def __init__(self, job: Job) -> None:
        self._jobs = [job]

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        taken, self._jobs = self._jobs, []
        return taken


def _take(tmp_path: Path, job: Job, *, space: WorkAreaSpace | None = None):  # type: ignore[no-untyped-def]
    limits = PilotLimits(lifetime=3600.0, timefloor=0.0, deadline=1234567.0)
    retriever = Retriever(_Source(job), JobRequest("S", "Q"), tmp_path, time.monotonic(), limits=limits,
                          setups=SetupResolver(choice=CopytoolChoice(("cp",), ("xrdcp",))), space=space)
    run = retriever(Stop())
    assert run is not None
    return run


def test_the_run_carries_its_set_up_with_the_pilots_end_of_life(tmp_path: Path) -> None:
    """The set-up on the run is the resolver's (the pilot's copytools, the job's parameters without overrides) and
    its deadline is the pilot's end of life (the payload's wall-time monitor reads it from there)."""
    run = _take(tmp_path, attrs.evolve(make_job(5001), job_pars="--events 10"))
    assert run.failure is None
    assert (run.setup.tools_in, run.setup.tools_out, run.setup.tools_log) == (("cp",), ("xrdcp",), ("xrdcp",))
    assert run.setup.deadline == 1234567.0 and run.setup.job_pars == "--events 10"


def test_a_job_that_cannot_be_set_up_fails_with_the_pilots_own_set_up(tmp_path: Path) -> None:
    """A bad ``--overwriteQueueData`` fails the run as it is taken with QUEUEDATANOTOK (1117); the run still
    carries the pilot's copytools (for its log) and end of life."""
    run = _take(tmp_path, attrs.evolve(make_job(5002), job_pars=BAD_OVERRIDE))
    assert run.failure is not None and run.failure.code == ErrorCode.QUEUEDATANOTOK
    assert run.setup.tools_log == ("xrdcp",) and run.setup.deadline == 1234567.0


def test_a_full_work_area_wins_over_a_bad_set_up_for_a_placed_job(tmp_path: Path) -> None:
    """For a placed job, the work area's space is checked first: a full disk is the pilot's to say (NOLOCALSPACE
    1098, the pilot's exit status 69), whatever else is wrong with the job."""
    full = WorkAreaSpace(tmp_path, limit=10**18, reserve=SpaceReserve(tmp_path, 0), placed=True)
    run = _take(tmp_path, attrs.evolve(make_job(5003), job_pars=BAD_OVERRIDE), space=full)
    assert run.failure is not None and run.failure.code == ErrorCode.NOLOCALSPACE
