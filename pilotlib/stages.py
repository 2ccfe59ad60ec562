"""The standard stages of a grid job and the narrow interfaces of their collaborators.

:func:`standard_stages` builds the stage list for :class:`~pilotlib.pipeline.Pipeline` from five collaborators, each a
small :class:`typing.Protocol` the app fills with real implementations (or a test with fakes): stage-in, payload,
stage-out of outputs, stage-out of the log, and the reporter. The payload stage runs a :class:`Heartbeat` on its own
thread; the heartbeat obeys the server's back-channel: ``tobekilled`` stops the payload and fails the job with
PANDAKILL (1144), as pilot3 does (``pilot/control/job.py`` ``handle_backchannel_command``). ``softkill`` is an
event-service preemption instruction (panda-server ``taskbuffer/db_proxy_mods/task_event_module.py`` sends it only for
event-service preemption; pilot3 only records it for a plain job): for a plain job it is logged and the payload is
left to finish.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import attrs

from pilotlib.errors import MkdirError, PandaKillError, PilotError
from pilotlib.job import Job
from pilotlib.panda.base import JobReporter, JobUpdate, ServerCommand, UpdateAnswer
from pilotlib.pipeline import JobRun, PayloadSummary, Stage, Stop
from pilotlib.recovery import STOPPING_DEADLINE, FinalStore, RetryPolicy, deliver_final
from pilotlib.report import PilotIdentity, final_update, heartbeat_update, starting_update
from pilotlib.transfer.base import TransferResult

__all__ = [
    "Heartbeat",
    "LogStageOut",
    "PayloadExecutor",
    "RunningPayload",
    "StageIn",
    "StageOut",
    "Stages",
    "standard_stages",
]

log = logging.getLogger(__name__)

#: Seconds the final update is retried once the pilot is stopping (the rest is left for recovery).
STOPPING_FINAL_DEADLINE = STOPPING_DEADLINE


class StageIn(Protocol):
    """Brings a job's inputs into its work directory."""

    def stage_in(self, job: Job, workdir: Path) -> Sequence[TransferResult]:
        """One result per input, in order; a failed file is a result with an error."""
        ...


class StageOut(Protocol):
    """Sends a job's outputs to storage."""

    def stage_out(self, job: Job, workdir: Path) -> Sequence[TransferResult]:
        """One result per output, in order; a missing or failed file is a result with an error."""
        ...


class LogStageOut(Protocol):
    """Packs the work directory into the job's log tarball and sends it to storage."""

    def stage_out_log(self, job: Job, workdir: Path) -> TransferResult:
        """The log's transfer result; a failure is a result with an error."""
        ...


class RunningPayload(Protocol):
    """A started payload."""

    def usage(self) -> Mapping[str, object]:
        """The resource figures so far, as ``updateJob`` fields (``cpuConsumptionTime``, ``maxRSS``, ...)."""
        ...

    def wait(self, stop: Stop) -> PayloadSummary:
        """Block until the payload ends; when ``stop`` is set, stop the payload first. Never raises for the payload."""
        ...


class PayloadExecutor(Protocol):
    """Starts a job's payload."""

    def start(self, job: Job, workdir: Path) -> RunningPayload:
        """Start the payload in ``workdir``; raises a :class:`PilotError` when it cannot start."""
        ...


class Heartbeat:
    """Sends ``running`` updates on its own thread until stopped, the first one as the payload starts (pilot3
    ``pilot/control/payloads/generic.py`` sends the state once the payload process runs), then every ``interval``
    seconds; obeys ``tobekilled``."""

    def __init__(
        self,
        reporter: JobReporter,
        make_update: Callable[[Mapping[str, object]], JobUpdate],
        usage: Callable[[], Mapping[str, object]],
        job_stop: Stop,
        interval: float,
    ) -> None:
        self._reporter = reporter
        self._make_update = make_update
        self._usage = usage
        self._job_stop = job_stop
        self._interval = interval
        self._done = threading.Event()
        context = contextvars.copy_context()  # the heartbeat's log records belong to the job, as its stage's do
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="heartbeat", daemon=True)
        self.sent = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        self.beat()
        while not self._done.wait(self._interval):
            self.beat()

    def beat(self) -> None:
        """Send one heartbeat now and act on the answer's command."""
        update = self._make_update(self._usage())
        try:
            answer = self._reporter.update_job(update)
        except (PilotError, OSError) as exc:
            log.warning("heartbeat not sent error=%s", exc)
            return
        self.sent += 1
        if answer.command is ServerCommand.TOBEKILLED:
            log.warning("server asked to kill the job command=tobekilled")
            self._job_stop.set(PandaKillError("job killed by the PanDA server (tobekilled)"))
        elif answer.command is ServerCommand.SOFTKILL:
            log.info("server sent softkill: payload left to finish (event-service instruction)")


def _first_error(results: Sequence[TransferResult]) -> PilotError | None:
    return next((r.error for r in results if r.error is not None), None)


@attrs.frozen
class Stages:
    """The collaborators of the standard stages and the reporting settings.

    Attributes:
        stage_in, payload, stage_out, log_out, reporter: the collaborators.
        identity: who reports (site, node, ids).
        store: where final updates are kept until acknowledged.
        heartbeat_interval: seconds between ``running`` updates while the payload runs.
        final_retry: how long to keep trying the final update.
        pilot_log: returns a short extract of the pilot's log for a failed job's ``pilotLog``.
    """

    stage_in: StageIn
    payload: PayloadExecutor
    stage_out: StageOut
    log_out: LogStageOut
    reporter: JobReporter
    identity: PilotIdentity
    store: FinalStore
    heartbeat_interval: float = 1800.0
    final_retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    pilot_log: Callable[[], str] = str

    def validate(self, run: JobRun, stop: Stop) -> JobRun:
        """Make the work directory and tell the server the job is starting (a ``tobekilled`` answer fails it)."""
        try:
            run.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MkdirError(f"cannot create work directory {run.workdir}: {exc.strerror}") from exc
        answer = self._send(starting_update(run, self.identity))
        if answer is not None and answer.command is ServerCommand.TOBEKILLED:
            raise PandaKillError("job killed by the PanDA server (tobekilled) before its payload started")
        return run

    def do_stage_in(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the inputs in; the first failed file fails the job."""
        results = tuple(self.stage_in.stage_in(run.job, run.workdir))
        run = attrs.evolve(run, stage_in=results)
        error = _first_error(results)
        return run if error is None else run.failed(error)

    def run_payload(self, run: JobRun, stop: Stop) -> JobRun:
        """Run the payload with heartbeats; a stop (signal, server kill) or the diagnosis fails the job."""
        job_stop = stop.child()
        try:
            running = self.payload.start(run.job, run.workdir)

            def make(usage: Mapping[str, object]) -> JobUpdate:
                return heartbeat_update(run, self.identity, usage)

            with Heartbeat(self.reporter, make, running.usage, job_stop, self.heartbeat_interval):
                summary = running.wait(job_stop)
        finally:
            stop.release(job_stop)
        run = attrs.evolve(run, payload=summary)
        error = job_stop.reason or summary.error
        return run if error is None else run.failed(error)

    def do_stage_out(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the outputs out; the first failed (or missing) file fails the job."""
        results = tuple(self.stage_out.stage_out(run.job, run.workdir))
        run = attrs.evolve(run, stage_out=results)
        error = _first_error(results)
        return run if error is None else run.failed(error)

    def do_log(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the log out (always, also after a failure); a log failure fails a job that had not failed."""
        if run.job.log is None:
            return run
        result = self.log_out.stage_out_log(run.job, run.workdir)
        run = attrs.evolve(run, log_result=result)
        return run if result.error is None else run.failed(result.error)

    def report(self, run: JobRun, stop: Stop) -> JobRun:
        """Write the final update to disk, then send it until acknowledged (always).

        Once the pilot is stopping (a signal, also one that comes while the server is being retried), the tries end
        within ``final_retry.stopping_deadline`` seconds: the whole shutdown must end within about two minutes.
        """
        update = final_update(run, self.identity, self.pilot_log() if run.failure is not None else "")
        sent = deliver_final(update, self.reporter, self.store, self.final_retry, stopping=stop)
        return attrs.evolve(run, final_sent=sent)

    def _send(self, update: JobUpdate) -> UpdateAnswer | None:
        try:
            return self.reporter.update_job(update)
        except (PilotError, OSError) as exc:
            log.warning("update not sent error=%s", exc)
            return None


def standard_stages(stages: Stages) -> list[Stage]:
    """The grid job's stages in order: validate, stage-in, payload, stage-out, log (always), report (always)."""
    return [
        Stage("validate", stages.validate, timing="setup"),
        Stage("stage-in", stages.do_stage_in, timing="stagein"),
        Stage("payload", stages.run_payload, timing="payload"),
        Stage("stage-out", stages.do_stage_out, timing="stageout"),
        Stage("log", stages.do_log, always=True, timing="stageout"),
        Stage("report", stages.report, always=True),
    ]
