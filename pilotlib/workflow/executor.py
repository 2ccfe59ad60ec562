"""The payload stage's collaborator: :class:`~pilotlib.payload.PayloadRunner` and :func:`pilotlib.payload.diagnose`
behind the pipeline's :class:`~pilotlib.stages.PayloadExecutor` interface, with the monitors of pilot3's job
monitor and the limits of the job's :class:`~pilotlib.jobsetup.JobSetup`."""

from __future__ import annotations

import json
import logging
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

import attrs

from pilotlib.containers import (
    ContainerChoice,
    ContainerRuntime,
    ContainerSpec,
    ContainerWrapper,
    RuntimeRegistry,
)
from pilotlib.containers.base import credential_binds, link_binds
from pilotlib.errors import ErrorCode, PilotError
from pilotlib.job import Job
from pilotlib.jobsetup import JobSetup
from pilotlib.payload import (
    FreeDiskMonitor,
    Lifeline,
    LoopingMonitor,
    MemoryMonitor,
    Monitor,
    PayloadOutcome,
    PayloadResult,
    PayloadRunner,
    PayloadSettings,
    StdoutSizeMonitor,
    WalltimeMonitor,
    WorkdirSizeMonitor,
    build_command,
    build_job_metrics,
    diagnose,
    parse_queue_environ,
)
from pilotlib.pipeline import JobRun, PayloadSummary
from pilotlib.space import FREE_SPACE_LIMIT_RUNNING, check_free_space, free_bytes, payload_space_need
from pilotlib.stop import Stop, StopSignal
from pilotlib.workflow.state import tail

__all__ = ["REPORT_MAX_DEPTH", "DiagnosedPayloadError", "RunnerExecutor", "RunnerPayload"]

log = logging.getLogger(__name__)


class DiagnosedPayloadError(PilotError):
    """The payload failed; the code is the one :func:`pilotlib.payload.diagnose` found."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        super().__init__(message or code.message)


@attrs.frozen
class RunnerExecutor:
    """Starts payloads with :class:`PayloadRunner`, watched by the monitors of pilot3's job monitor
    (``pilot/util/monitoring.py``): wall time and the pilot's end of life, looping job, memory, work directory size
    (the queue's ``maxwdir``), stdout size and free disk space.

    Attributes:
        settings: environment and file names for the payload command.
        grace: seconds between SIGTERM and SIGKILL when stopping a payload.
        looping_limit: seconds without a file modified in the work directory before the job counts as looping.
        memory_limit_kb: PSS limit in kB (0: from the job's resource type and the queue, see
            :meth:`~pilotlib.jobsetup.JobSetup.memory_limit_kb`).
        sample_interval: seconds between readings of the process tree (heartbeat figures, memory monitor).
        job_report_required: a missing ``jobReport.json`` fails the job (production transforms always write one).
        lifeline: the pilot's lifeline: each payload's session is ended if the pilot dies (None: not tied).
        free_space_limit: bytes the work area must keep free before the payload starts and while it runs (pilot3
            ``free_space_limit_running``); the job's ``maxDiskCount`` may ask for more (:func:`start`).
        runtimes: the container runtimes (the installed ``pilotlib.containers`` entry points, given the settings'
            ``base_env``: a runtime finds its executable on the pilot's ``PATH``); a job whose set-up names a
            container runs in it, the runtime checked usable once per pilot.
    """

    settings: PayloadSettings = attrs.field(factory=PayloadSettings)
    grace: float = 30.0
    looping_limit: float = 7200.0
    memory_limit_kb: int = 0
    sample_interval: float = 60.0
    job_report_required: bool = False
    lifeline: Lifeline | None = attrs.field(default=None, eq=False)
    free_space_limit: int = FREE_SPACE_LIMIT_RUNNING
    runtimes: RuntimeRegistry = attrs.field(
        default=attrs.Factory(lambda self: RuntimeRegistry(base_env=self.settings.base_env), takes_self=True),
        eq=False, repr=False)
    _checked: dict[str, ContainerRuntime] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    _checked_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, eq=False, repr=False)

    def monitors(self, job: Job, setup: JobSetup) -> list[Monitor]:
        """The monitors of ``job``'s payload (``setup``: its queue's limits and the pilot's deadline)."""
        monitors: list[Monitor] = [LoopingMonitor(limit=self.looping_limit, interval=min(900.0, self.looping_limit)),
                                   StdoutSizeMonitor(), FreeDiskMonitor(min_free_bytes=self.free_space_limit)]
        if job.max_walltime or setup.deadline:
            monitors.append(WalltimeMonitor(max_seconds=float(job.max_walltime) if job.max_walltime else None,
                                            deadline=setup.deadline, margin=min(600.0, self.grace * 2 + 60.0)))
        memory = setup.memory_limit_kb(job, self.memory_limit_kb)
        if memory:
            monitors.append(MemoryMonitor(limit_kb=memory, interval=self.sample_interval))
        wdir = setup.workdir_limit_bytes(job)
        if wdir:
            monitors.append(WorkdirSizeMonitor(limit_bytes=wdir))
        return monitors

    def start(self, run: JobRun, stop: StopSignal | None = None) -> RunnerPayload:
        """Check the work area's free space, build the command (without the job's queue-override options; with the
        queue's ``environ`` variables; ``stop`` ends a transformation download) and start it in its own session.

        Raises:
            NoLocalSpaceError: no more than :func:`pilotlib.space.payload_space_need` bytes are free (1098).
        """
        settings, job, workdir, setup = self.settings, run.job, run.workdir, run.setup
        self._check_space(job, workdir, setup.workdir_limit_bytes(job))
        if setup.job_pars is not None:
            job = attrs.evolve(job, job_pars=setup.job_pars)
        if setup.queue is not None and setup.queue.environ:
            settings = attrs.evolve(settings, queue_environ=parse_queue_environ(setup.queue.environ))
        if setup.payload_env:
            settings = attrs.evolve(settings, extra_env={**settings.extra_env, **setup.payload_env})
        monitors = self.monitors(job, setup)
        runtime = self._runtime(setup.container) if setup.container is not None else None
        command = build_command(job, workdir, settings, stop, in_container=runtime is not None)
        wrapper = None
        if runtime is not None and setup.container is not None:
            secrets, binds = credential_binds(command.env)
            binds += link_binds(workdir, (f.lfn for f in job.inputs))
            spec = ContainerSpec(setup.container.image, workdir, binds=binds, secrets=secrets,
                                 options=setup.container.options)
            wrapper = ContainerWrapper(runtime, spec)
        runner = PayloadRunner(command, monitors=monitors, grace=self.grace, sample_interval=self.sample_interval,
                               lifeline=self.lifeline, wrapper=wrapper)
        runner.start()
        return RunnerPayload(job, workdir, runner, self.job_report_required, runtime)

    def _runtime(self, choice: ContainerChoice) -> ContainerRuntime:
        """The job's container runtime, checked usable on this node (once per pilot and runtime).

        Raises:
            RuntimeNotInstalledError: it is not installed or not usable (its NOTINSTALLED code).
        """
        with self._checked_lock:
            runtime = self._checked.get(choice.runtime)
            if runtime is None:
                runtime = self.runtimes.get(choice.runtime)
                runtime.check()
                self._checked[choice.runtime] = runtime
        return runtime

    def _check_space(self, job: Job, workdir: Path, workdir_limit: int | None) -> None:
        files = (p.lstat() for p in workdir.rglob("*")) if job.max_disk_count else iter(())
        used = sum(st.st_size for st in files if stat.S_ISREG(st.st_mode))
        need = payload_space_need(job, limit_running=self.free_space_limit, used=used, workdir_limit=workdir_limit)
        check_free_space(free_bytes(workdir), need, workdir, "the payload")


class RunnerPayload:
    """A running payload: its usage for heartbeats, and the wait that turns its end into a :class:`PayloadSummary`."""

    def __init__(self, job: Job, workdir: Path, runner: PayloadRunner, job_report_required: bool,
                 runtime: ContainerRuntime | None = None) -> None:
        self._runtime = runtime
        self._job = job
        self._workdir = workdir
        self._runner = runner
        self._report_required = job_report_required

    def request_kill(self, reason: PilotError) -> None:
        """Kill the payload for ``reason`` (TERM, grace, KILL, from the wait); returns at once."""
        self._runner.request_kill(reason)

    def soft_stop(self) -> None:
        """The server's ``softkill``: a plain payload is left to finish (pilot3 acts on it for event service)."""
        log.info("softkill: the payload is left to finish pid=%s", self._runner.pid)

    def usage(self) -> Mapping[str, object]:
        """``cpuConsumptionTime``, the prmon memory figures and ``jobMetrics`` so far."""
        return _usage_fields(self._job, self._runner.usage().cpu_seconds, self._runner.usage().as_prmon())

    def wait(self, stop: Stop) -> PayloadSummary:
        """Wait for the end; a stop (signal, server kill) makes the runner kill the payload with the stop's reason."""
        callback = stop.when_set(self._runner.request_kill)
        try:
            result = self._runner.wait()
        finally:
            stop.forget(callback)
        return self._summarize(result)

    def _summarize(self, result: PayloadResult) -> PayloadSummary:
        returncode = result.exit_code if result.exit_code is not None else -(result.signal or 0)
        outcome = PayloadOutcome.from_workdir(self._workdir, returncode, payload_pid=self._runner.pid,
                                              job_report_required=self._report_required)
        diagnosis = diagnose(outcome, runtime_judged=self._runtime is not None)
        error = result.error
        runtime_failed = False
        if error is None and self._runtime is not None:  # the runtime's own failure, apart from the payload's
            error = self._runtime.failure(returncode, tail(self._runner.command.stderr))
            if error is not None:
                runtime_failed = True  # the payload never ran: its exit code is not the runtime's status
                log.error("container runtime failed code=%d status=%d error=%s", int(error.code), returncode, error)
        if error is None and diagnosis.failed:
            code = diagnosis.pilot_error_code or ErrorCode.PAYLOADEXECUTIONFAILURE
            error = DiagnosedPayloadError(code, diagnosis.pilot_error_diag or f"payload exit code {returncode}")
            log.warning("payload failed code=%d diag=%s", int(code), error)
        return PayloadSummary(
            exit_code=0 if runtime_failed else diagnosis.trans_exit_code if result.error is None else returncode,
            started=result.started,
            ended=result.ended,
            usage=_usage_fields(self._job, result.cpu_seconds, result.usage.as_prmon()),
            job_report=_job_report(outcome.job_report),
            error=error,
            exe_error_code=diagnosis.exe_error_code,
            exe_error_diag=diagnosis.exe_error_diag,
        )


def _usage_fields(job: Job, cpu_seconds: float, memory: Mapping[str, int]) -> dict[str, object]:
    fields: dict[str, object] = {"cpuConsumptionTime": round(cpu_seconds)}
    fields.update(memory)
    fields["jobMetrics"] = build_job_metrics({"coreCount": job.core_count})
    return fields


#: A job report nested deeper than this is not taken as ``metaData`` (a transform's report nests about ten levels;
#: a hostile one nested hundreds deep would break encoding the final update, 10000 deep even decoding it).
REPORT_MAX_DEPTH = 64


def _job_report(text: str | None) -> Mapping[str, object] | None:
    """The payload's job report as a JSON object for ``metaData``; None (and the report is not sent) when it is not
    a JSON object, holds an integer too long to convert, or nests more than :data:`REPORT_MAX_DEPTH` levels."""
    if not text:
        return None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, an integer beyond 4300 digits, nesting 10000 deep
        return None
    if not isinstance(document, dict) or _depth(document) > REPORT_MAX_DEPTH:
        return None
    return document


def _depth(value: object) -> int:
    """How deep lists and objects nest in ``value`` (counted without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in children)
    return deepest
