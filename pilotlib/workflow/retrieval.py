"""Taking jobs: the pipeline's retrieve, within the pilot's lifetime, timefloor and job limit.

A job taken is journalled (before its ``starting`` update: a pilot lost from here on is recovered by the next one,
:mod:`pilotlib.abandoned`), its set-up resolved once (:class:`~pilotlib.jobsetup.SetupResolver`) and put on its run;
a set-up that cannot be resolved, or too little space for a placed job, fails that run before it starts (it is then
reported failed like any other).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import attrs

from pilotlib.job import Job, is_secret_field, job_to_wire
from pilotlib.jobsetup import SetupResolver
from pilotlib.journal import Journal
from pilotlib.logcontext import job_context
from pilotlib.panda.base import JobRequest, JobSource
from pilotlib.pipeline import JobRun
from pilotlib.stop import Stop
from pilotlib.workflow.queue import DEFAULT_LIFETIME, PilotLimits, pilot_limits
from pilotlib.workflow.state import WorkAreaSpace

__all__ = ["Retriever"]

log = logging.getLogger(__name__)


class Retriever:
    """Fetches the next job while the pilot's lifetime, timefloor and job limit allow (the pipeline's retrieve).

    The first job is always asked for. Another one is asked for while less than ``limits.timefloor`` seconds passed
    since the start, or while fewer than ``max_jobs`` ran; never when less than ``reserve`` seconds of lifetime
    remain. ``space`` (when given) checks the work area before each request (too little free space raises
    NOLOCALSPACE 1098: no job is asked for; it gives the ``diskSpace`` MB to ask with) and, for placed jobs, after
    the job is read (too little fails that job, which is then reported).

    Args:
        source: where jobs come from.
        request: what to ask for.
        workdir: the work area; each job runs in ``<workdir>/<PandaID>``.
        started: the pilot's start (:func:`time.monotonic`).
        limits: the pilot's lifetime, timefloor and end of life, which each job's payload must end before
            (default: :data:`~pilotlib.workflow.queue.DEFAULT_LIFETIME` from now, no timefloor).
        max_jobs: the most jobs to take (0: as many as the lifetime and timefloor allow).
        reserve: seconds of lifetime a job needs at least.
        setups: resolves each job's set-up (default: the defaults, no queue).
        journal: where each job is recorded before it starts (None: not recorded).
        space: the work area's checks (None: none).
    """

    def __init__(self, source: JobSource, request: JobRequest, workdir: Path, started: float, *,
                 limits: PilotLimits | None = None, max_jobs: int = 0, reserve: float = 120.0,
                 setups: SetupResolver | None = None, journal: Journal | None = None,
                 space: WorkAreaSpace | None = None) -> None:
        self._source = source
        self._request = request
        self._workdir = workdir
        self._started = started
        self._limits = limits or pilot_limits(DEFAULT_LIFETIME, 0.0, None)
        self._max_jobs = max_jobs
        self._reserve = reserve
        self._setups = setups or SetupResolver()
        self._journal = journal
        self._space = space
        self._pending: list[Job] = []
        self.count = 0

    def _may_fetch(self) -> bool:
        limits = self._limits
        elapsed = time.monotonic() - self._started
        if limits.lifetime - elapsed < min(self._reserve, limits.lifetime / 2):
            return False
        if self.count == 0:
            return True
        if self._max_jobs:
            return self.count < self._max_jobs
        return elapsed < limits.timefloor

    def __call__(self, stop: Stop) -> JobRun | None:
        """The next job's run, or None when the pilot should take no more work."""
        if stop.is_set() or not self._may_fetch():
            return None
        begin = time.monotonic()
        if not self._pending:
            request = self._request if self._space is None else attrs.evolve(self._request,
                                                                              disk_mb=self._space.before_request())
            self._pending.extend(self._source.get_jobs(request))
        if not self._pending:
            log.info("no job to run jobs_done=%d", self.count)
            return None
        job = self._pending.pop(0)
        timings = {"getjob": time.monotonic() - begin}
        if self.count == 0:
            timings["initial_setup"] = begin - self._started
        self.count += 1
        log.info("job taken panda_id=%d number=%d", job.panda_id, self.count)
        workdir = self._workdir / str(job.panda_id)
        self._record(job, workdir)
        with job_context(job.panda_id):
            return self._prepared(job, workdir, timings)

    def _prepared(self, job: Job, workdir: Path, timings: dict[str, float]) -> JobRun:
        """The job's run with its set-up (its payload bound by the pilot's end of life), or failed before it
        starts: too little space for a placed job (first: a full disk is the pilot's to say), or no set-up (the
        run then carries the pilot's own, for its log)."""
        no_space = self._space.placed_job() if self._space is not None else None
        setup, unresolved = (self._setups.fallback(job), None) if no_space is not None else self._setups.settle(job)
        run = JobRun(job, workdir, attrs.evolve(setup, deadline=self._limits.deadline), timings=timings)
        failure = no_space or unresolved
        if failure is None:
            return run
        log.error("job failed before it started code=%d error=%s", int(failure.code), failure)
        return run.failed(failure)

    def _record(self, job: Job, workdir: Path) -> None:
        """Journal the job before its ``starting`` update (a pilot that cannot write it still runs the job), without
        its credential fields: the journal is a file on disk, and recovery needs none of them."""
        if self._journal is None:
            return
        definition = {key: value for key, value in job_to_wire(job).items() if not is_secret_field(key)}
        try:
            self._journal.start(job.panda_id, definition, workdir)
        except OSError as exc:
            log.error("job not journalled: it cannot be recovered if this pilot is lost panda_id=%d error=%s",
                      job.panda_id, exc)
