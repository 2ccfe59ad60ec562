"""The standard stages of a grid job and the narrow interfaces of their collaborators.

:func:`standard_stages` builds the stage list for :class:`~pilotlib.pipeline.Pipeline` from five collaborators, each a
small :class:`typing.Protocol` a pilot fills with real implementations (:mod:`pilotlib.workflow`'s
``TransferStages`` and ``RunnerExecutor``, its mode's reporter) or a test with fakes: stage-in, payload, stage-out of
outputs, stage-out of the log, and the reporter. Each stager and the payload executor get the job's whole
:class:`~pilotlib.pipeline.JobRun` (its job, work directory and set-up). Each job has a :class:`Heartbeat` on its
own thread from its ``starting`` update until its final update (stage-in, payload and stage-out included); the
heartbeat obeys the server's back-channel: ``tobekilled`` stops the payload (or fails the job during a transfer) with
PANDAKILL (1144), as pilot3 does (``pilot/control/job.py`` ``handle_backchannel_command``). ``softkill`` is an
event-service preemption instruction (panda-server ``taskbuffer/db_proxy_mods/task_event_module.py`` sends it only for
event-service preemption; pilot3 only records it for a plain job): for a plain job it is logged and the payload is
left to finish.
"""

from __future__ import annotations

import contextvars
import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import attrs

from pilotlib._atomic import make_private_dir
from pilotlib.errors import MkdirError, PandaKillError, PilotError
from pilotlib.panda.base import JobReporter, JobUpdate, ServerCommand, UpdateAnswer
from pilotlib.pipeline import JobRun, PayloadSummary, Stage
from pilotlib.recovery import FinalRetry, FinalStore, deliver_final
from pilotlib.report import PilotIdentity, final_update, heartbeat_update, starting_update
from pilotlib.stop import Stop, StopSignal
from pilotlib.transfer.base import TransferResult

__all__ = [
    "HEARTBEAT_CLOSE_TIMEOUT",
    "LOG_STOPPING_TIMEOUT",
    "LOG_STOP_DEADLINE",
    "STOP_BUDGET",
    "Heartbeat",
    "InputStager",
    "LogStager",
    "OutputStager",
    "PayloadExecutor",
    "RunningPayload",
    "Stages",
    "clean_workdir",
    "standard_stages",
]

log = logging.getLogger(__name__)

#: Seconds from a stop (SIGTERM: the batch system sends SIGKILL about two minutes later) to the job's final state
#: reported and the pilot's exit, in every stage. The steps' own bounds add up to less (docs/pipeline.rst, "Stopping:
#: the budget"): the payload's grace (30 s by default) or a copy's cancel (``CANCEL_WAIT``, 5 s), the heartbeat's
#: close, the log's tarball and copy, and the final update's tries with their last attempt.
STOP_BUDGET = 120.0

#: Seconds the log's tarball and its copy may each take once the job or the pilot is stopping (one try).
LOG_STOPPING_TIMEOUT = 20.0

#: Seconds the whole log step (tarball, copy, the pilot log alone when the tarball cannot be made) may take from the
#: moment the job or the pilot is stopping, also when the stop comes while the log is under way.
LOG_STOP_DEADLINE = 2 * LOG_STOPPING_TIMEOUT

#: Seconds :meth:`Heartbeat.close` waits for a heartbeat still in a server call (then it is left behind: its call is
#: bounded by the client, and its answer changes nothing).
HEARTBEAT_CLOSE_TIMEOUT = 5.0


class InputStager(Protocol):
    """Brings a job's inputs into its work directory."""

    def stage_in(self, run: JobRun, stop: Stop) -> Sequence[TransferResult]:
        """Bring ``run.job``'s inputs into ``run.workdir`` with ``run.setup``'s copytools: one result per input, in
        order; a failed file is a result with an error. Once ``stop`` is set (the job or the pilot is stopping) no new
        file transfer starts and the copies under way are cancelled."""
        ...


class OutputStager(Protocol):
    """Sends a job's outputs to storage."""

    def stage_out(self, run: JobRun, stop: Stop) -> Sequence[TransferResult]:
        """Send ``run.job``'s outputs from ``run.workdir``: one result per output, in order; a missing or failed file is
        a result with an error. Once ``stop`` is set no new file transfer starts and the copies under way are
        cancelled."""
        ...


class LogStager(Protocol):
    """Packs the work directory into the job's log tarball and sends it to storage."""

    def stage_out_log(self, run: JobRun, timeout_cap: float | None,
                      stop: StopSignal | None = None) -> TransferResult:
        """Pack ``run.workdir`` as ``run.job``'s log and send it: the transfer result; a failure is a result with an
        error. ``timeout_cap`` (when not None) bounds the tarball and each copy in seconds, one try each (the pilot is
        stopping); ``stop`` (when set) ends the tarball and cancels the copies under way: the log's time is over."""
        ...


class RunningPayload(Protocol):
    """A started payload."""

    def usage(self) -> Mapping[str, object]:
        """The resource figures so far, as ``updateJob`` fields (``cpuConsumptionTime``, ``maxRSS``, ...)."""
        ...

    def wait(self, stop: Stop) -> PayloadSummary:
        """Block until the payload ends; when ``stop`` is set, stop the payload first. Never raises for the payload."""
        ...

    def soft_stop(self) -> None:
        """The server's ``softkill``: an event-service payload gets no more ranges and ends after the one it is on."""
        ...


class PayloadExecutor(Protocol):
    """Starts a job's payload."""

    def start(self, run: JobRun, stop: StopSignal | None = None) -> RunningPayload:
        """Start ``run.job``'s payload in ``run.workdir`` (with ``run.setup``'s limits); raises a :class:`PilotError`
        when it cannot start. ``stop`` (the job's) ends what starting it may wait for (a transformation download)."""
        ...


class Heartbeat:
    """One job's heartbeat from its first update until its final one, on its own thread, and the job's own stop.

    pilot3 sends heartbeats from the job's first update until the final one (``pilot/control/job.py``
    ``send_heartbeat_if_time``), stage-in and stage-out included. Before the payload the state is ``starting`` with
    no usage figures; from the payload on it is ``running`` with the figures (:meth:`running`), and the first
    ``running`` update is sent as the payload starts (pilot3 ``pilot/control/payloads/generic.py`` sends the state
    once the payload process runs), then every ``interval`` seconds. A ``tobekilled`` answer sets :attr:`stop`
    (PANDAKILL); ``nocleanup`` is remembered (:attr:`nocleanup`). Use as a context manager or :meth:`start`/
    :meth:`close`.

    Args:
        reporter: where the updates go.
        starting: makes the ``starting`` update.
        running: makes a ``running`` update from usage figures.
        stop: the pilot's stop (the job's own stop is its child).
        interval: seconds between heartbeats.
    """

    def __init__(
        self,
        reporter: JobReporter,
        starting: Callable[[], JobUpdate],
        running: Callable[[Mapping[str, object]], JobUpdate],
        stop: Stop,
        interval: float,
    ) -> None:
        self._reporter = reporter
        self._starting = starting
        self._running = running
        self._parent = stop
        self.stop = stop.child()
        self._interval = interval
        self._usage: Callable[[], Mapping[str, object]] | None = None
        self._soft_stop: Callable[[], None] = lambda: None
        self._wake = threading.Event()
        self._closed = False
        self._first_running = False
        context = contextvars.copy_context()  # the heartbeat's log records belong to the job, as its stage's do
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="heartbeat", daemon=True)
        self.sent = 0
        self.nocleanup = False

    def start(self) -> Heartbeat:
        """Start the heartbeat thread (the first update comes after ``interval``, or when the payload starts)."""
        self._thread.start()
        return self

    def close(self, timeout: float = HEARTBEAT_CLOSE_TIMEOUT) -> None:
        """Stop the heartbeats (before the final update) and forget the job's stop in the pilot's; returns within
        ``timeout`` seconds, also when a heartbeat is stuck in a server call (the thread is then left behind)."""
        self._closed = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("heartbeat left behind in a server call seconds=%.1f", timeout)
        self._parent.release(self.stop)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def running(self, usage: Callable[[], Mapping[str, object]], soft_stop: Callable[[], None] | None = None) -> None:
        """From now on report ``running`` with ``usage()``; the first such update is sent at once. ``soft_stop`` is
        called on a ``softkill`` answer."""
        first = self._usage is None
        self._usage = usage
        if soft_stop is not None:
            self._soft_stop = soft_stop
        if first:
            self._first_running = True  # sent even when the job is over before the thread wakes
            self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._first_running or not self._closed:
                self._first_running = False
                self.beat()
            if self._closed:
                return

    def beat(self) -> None:
        """Send one heartbeat now and act on the answer's command."""
        usage = self._usage
        update = self._starting() if usage is None else self._running(usage())
        try:
            answer = self._reporter.update_job(update)
        except (PilotError, OSError) as exc:
            log.warning("heartbeat not sent error=%s", exc)
            return
        self.sent += 1
        self.obey(answer)

    def obey(self, answer: UpdateAnswer) -> None:
        """Act on an update answer's back-channel command (also the ``starting`` update's)."""
        if answer.command is ServerCommand.TOBEKILLED:
            log.warning("server asked to kill the job command=tobekilled")
            self.stop.set(PandaKillError("job killed by the PanDA server (tobekilled)"))
        elif answer.command is ServerCommand.SOFTKILL:
            log.info("server sent softkill: the payload is to finish what it is on")
            self._soft_stop()
        elif answer.command is ServerCommand.NOCLEANUP:
            log.info("server sent nocleanup: the work directory will be kept")
            self.nocleanup = True


def _first_error(results: Sequence[TransferResult]) -> PilotError | None:
    return next((r.error for r in results if r.error is not None), None)


@attrs.frozen
class Stages:
    """The collaborators of the standard stages and the reporting settings.

    Attributes:
        stage_in, payload, stage_out, log_out, reporter: the collaborators.
        identity: who reports (site, node, ids).
        store: where final updates are kept until acknowledged.
        heartbeat_interval: seconds between heartbeats, from the ``starting`` update to the final one.
        final_retry: how long to keep trying the final update.
        pilot_log: returns a short extract of the pilot's log for a failed job's ``pilotLog``.
        cleanup: remove a job's work directory once its final update is acknowledged and its log staged out (the
            final-update files are kept); the server's ``nocleanup`` keeps that job's directory.
    """

    stage_in: InputStager
    payload: PayloadExecutor
    stage_out: OutputStager
    log_out: LogStager
    reporter: JobReporter
    identity: PilotIdentity
    store: FinalStore
    heartbeat_interval: float = 1800.0
    final_retry: FinalRetry = attrs.field(factory=FinalRetry)
    pilot_log: Callable[[], str] = str
    cleanup: bool = True

    _beats: dict[int, Heartbeat] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def _heartbeat(self, run: JobRun, stop: Stop) -> Heartbeat:
        """The job's heartbeat, started by :meth:`validate` (or here, for a job that skipped it)."""
        beat = self._beats.get(run.job.panda_id)
        if beat is None:
            beat = Heartbeat(self.reporter, lambda: starting_update(run, self.identity),
                             lambda usage: heartbeat_update(run, self.identity, usage), stop,
                             self.heartbeat_interval)
            self._beats[run.job.panda_id] = beat.start()
        return beat

    def _end_heartbeat(self, run: JobRun) -> tuple[JobRun, Heartbeat | None]:
        """Stop the job's heartbeat; a ``tobekilled`` it received fails the job (if nothing failed it before)."""
        beat = self._beats.pop(run.job.panda_id, None)
        if beat is None:
            return run, None
        beat.close()
        return (run if beat.stop.reason is None else run.failed(beat.stop.reason)), beat

    @staticmethod
    def _checked(run: JobRun, beat: Heartbeat, error: PilotError | None) -> JobRun:
        """The job's stop (signal, server kill) wins over the error it caused (an interrupted transfer)."""
        error = beat.stop.reason or error
        return run if error is None else run.failed(error)

    def validate(self, run: JobRun, stop: Stop) -> JobRun:
        """Make the work directory, tell the server the job is starting (a ``tobekilled`` answer fails it), and
        start the job's heartbeat."""
        try:
            make_private_dir(run.workdir)
        except OSError as exc:
            raise MkdirError(f"cannot create work directory {run.workdir}: {exc.strerror}") from exc
        answer = self._send(starting_update(run, self.identity))
        if answer is not None and answer.command is ServerCommand.TOBEKILLED:
            raise PandaKillError("job killed by the PanDA server (tobekilled) before its payload started")
        beat = self._heartbeat(run, stop)
        if answer is not None:
            beat.obey(answer)
        return run

    def do_stage_in(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the inputs in (heartbeats go on); the job's stop or the first failed file fails the job."""
        beat = self._heartbeat(run, stop)
        results = tuple(self.stage_in.stage_in(run, beat.stop))
        return self._checked(attrs.evolve(run, stage_in=results), beat, _first_error(results))

    def run_payload(self, run: JobRun, stop: Stop) -> JobRun:
        """Run the payload, reporting ``running`` with its usage; a stop (signal, server kill) or the diagnosis
        fails the job."""
        beat = self._heartbeat(run, stop)
        if beat.stop.reason is not None:
            return run.failed(beat.stop.reason)
        try:
            running = self.payload.start(run, beat.stop)
        except PilotError as exc:  # the job's stop (signal, server kill) wins over the error it caused
            log.error("payload not started code=%d error=%s", int(exc.code), exc)
            return self._checked(run, beat, exc)
        beat.running(running.usage, running.soft_stop)
        summary = running.wait(beat.stop)
        beat.running(lambda: summary.usage)  # stage-out's heartbeats carry the payload's final figures
        return self._checked(attrs.evolve(run, payload=summary), beat, summary.error)

    def do_stage_out(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the outputs out (heartbeats go on); the job's stop or the first failed (or missing) file fails
        the job."""
        beat = self._heartbeat(run, stop)
        results = tuple(self.stage_out.stage_out(run, beat.stop))
        return self._checked(attrs.evolve(run, stage_out=results), beat, _first_error(results))

    def do_log(self, run: JobRun, stop: Stop) -> JobRun:
        """Stage the log out (always, also after a failure); a log failure fails a job that had not failed.

        Once the job or the pilot is stopping, the log gets :data:`LOG_STOPPING_TIMEOUT` seconds per step, and the
        whole step ends :data:`LOG_STOP_DEADLINE` seconds after the stop at the latest (also a stop that comes while
        the log is under way), so that the log is out and the final state reported within the two minutes a signal
        leaves.
        """
        if run.job.log is None:
            return run
        beat = self._beats.get(run.job.panda_id)
        job_stop = beat.stop if beat is not None else stop
        stopping = job_stop.is_set()
        deadline = job_stop.later(LOG_STOP_DEADLINE)
        try:
            result = self.log_out.stage_out_log(run, LOG_STOPPING_TIMEOUT if stopping else None, deadline)
        finally:
            job_stop.release(deadline)
        run = attrs.evolve(run, log_result=result)
        return run if result.error is None else run.failed(result.error)

    def report(self, run: JobRun, stop: Stop) -> JobRun:
        """Stop the heartbeat, write the final update to disk, then send it until acknowledged (always).

        Once the pilot is stopping (a signal, also one that comes while the server is being retried), the tries end
        within ``final_retry.stopping_deadline`` seconds: the whole shutdown must end within about two minutes.
        """
        run, beat = self._end_heartbeat(run)
        update = final_update(run, self.identity, self.pilot_log() if run.failure is not None else "")
        sent = deliver_final(update, self.reporter, self.store, self.final_retry, stopping=stop)
        log_out = run.job.log is None or (run.log_result is not None and run.log_result.ok)
        if sent and log_out and self.cleanup and not (beat is not None and beat.nocleanup):
            clean_workdir(run.workdir)
        return attrs.evolve(run, final_sent=sent)

    def _send(self, update: JobUpdate) -> UpdateAnswer | None:
        try:
            return self.reporter.update_job(update)
        except (PilotError, OSError) as exc:
            log.warning("update not sent error=%s", exc)
            return None


def clean_workdir(workdir: Path) -> None:
    """Empty a finished job's work directory (the final-update records live in the pilot's state directory, apart).

    Only called once the final update was acknowledged and the log (which holds the directory's content) was staged
    out; a failure to remove something is logged, never raised.
    """
    try:
        entries = list(workdir.iterdir())
    except OSError as exc:
        log.warning("work directory not cleaned path=%s error=%s", workdir, exc)
        return
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            log.warning("work directory entry not removed path=%s error=%s", entry, exc)
    log.info("work directory cleaned path=%s", workdir)


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
