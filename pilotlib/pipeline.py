"""The pipeline: a job moves through stages joined by bounded queues, one thread per stage.

The whole flow, on one screen::

    retrieve -> [q] -> validate -> [q] -> stage-in -> [q] -> payload -> [q] -> stage-out -> [q] -> log -> [q] -> report

Each stage is a function ``(JobRun, Stop) -> JobRun`` that hands on a new frozen :class:`JobRun`. A failure travels as
a value (``JobRun.failure``): once a job has failed, only the stages marked ``always`` (stage out the log, the final
report) run for it. One :class:`Stop` reaches every stage; a stage that sees it set fails the job with the stop's
reason (the signal's error), and the always stages still run. The retriever fetches the next job only when one of
``in_flight`` slots is free, so a multi-job pilot can fetch and stage in the next job while a payload runs.

The library never installs signal handlers by itself: a pilot's main does, with
:func:`pilotlib.workflow.handle_signals`, whose handler calls :meth:`Stop.set`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

import attrs

from pilotlib.errors import InternalPilotError, PilotError
from pilotlib.job import Job
from pilotlib.jobsetup import JobSetup
from pilotlib.logcontext import job_context
from pilotlib.stop import Stop
from pilotlib.transfer.base import TransferResult

__all__ = [
    "TIMING_KEYS",
    "JobRun",
    "PayloadSummary",
    "Pipeline",
    "Stage",
]

log = logging.getLogger(__name__)

#: The keys of ``pilotTiming``, in the order the server reads them (pilot3 ``pilot/control/job.py``).
TIMING_KEYS: Final = ("getjob", "stagein", "payload", "stageout", "initial_setup", "setup")


def _usage(value: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(value))


def _timings(value: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(value))


@attrs.frozen
class PayloadSummary:
    """What the pipeline needs to know about a payload run (:class:`~pilotlib.workflow.executor.RunnerExecutor`
    adapts the payload runner's result to it).

    Attributes:
        exit_code: the payload's exit code (``transExitCode``); negative for a signal (``-9``).
        started: epoch seconds when the payload started; ``ended`` when it ended.
        usage: ``updateJob`` resource fields (``cpuConsumptionTime``, ``maxRSS``, ``jobMetrics``, ...).
        job_report: the payload's ``jobReport.json`` (becomes ``metaData``), if any.
        error: the diagnosis (payload failure, monitor kill, stop), None for a good run.
        exe_error_code: ``exeErrorCode`` from the job report; ``exe_error_diag`` likewise.
    """

    exit_code: int
    started: float
    ended: float
    usage: Mapping[str, object] = attrs.field(factory=dict, converter=_usage)
    job_report: Mapping[str, object] | None = None
    error: PilotError | None = attrs.field(default=None, eq=False)
    exe_error_code: int = 0
    exe_error_diag: str = ""


@attrs.frozen
class JobRun:
    """A job on its way through the pipeline: the job, its work directory, its set-up, what happened so far.

    ``setup`` is the job's :class:`~pilotlib.jobsetup.JobSetup`, resolved once when the job was taken (copytools,
    queue, limits; default: ``mv`` and no queue): every stage reads it from here. ``timings`` holds seconds per
    :data:`TIMING_KEYS` entry; ``failure`` is the first error (later ones are logged only); ``final_sent`` is True
    once the server acknowledged the final update.
    """

    job: Job
    workdir: Path
    setup: JobSetup = attrs.field(factory=JobSetup)
    started: float = attrs.field(factory=time.time)
    timings: Mapping[str, float] = attrs.field(factory=dict, converter=_timings)
    stage_in: tuple[TransferResult, ...] = ()
    payload: PayloadSummary | None = None
    stage_out: tuple[TransferResult, ...] = ()
    log_result: TransferResult | None = None
    failure: PilotError | None = attrs.field(default=None, eq=False)
    final_sent: bool = False

    def failed(self, error: PilotError) -> JobRun:
        """This run with ``error`` as its failure, unless it already has one (the first failure wins)."""
        if self.failure is not None:
            log.info("later error ignored code=%d error=%s", error.code, error)
            return self
        return attrs.evolve(self, failure=error)

    def timed(self, key: str, seconds: float) -> JobRun:
        """This run with ``seconds`` added to timing ``key``."""
        timings = dict(self.timings)
        timings[key] = timings.get(key, 0.0) + seconds
        return attrs.evolve(self, timings=timings)


StageFunc = Callable[[JobRun, Stop], JobRun]


@attrs.frozen
class Stage:
    """One stage: a name, the function, whether it runs after a failure, and its ``pilotTiming`` key."""

    name: str
    func: StageFunc
    always: bool = False
    timing: str | None = None


_DONE: Final = object()  # the sentinel that finishes each stage's thread

#: Seconds between the waking ups of the thread that runs :meth:`Pipeline.run` (the main thread, in an app). The
#: kernel may deliver a signal to any thread, e.g. a transfer client's own; Python then runs the handler (which sets
#: the stop) only once the main thread wakes, and a plain ``join()`` would sleep until the stages end.
_JOIN_SLICE: Final = 0.2


class Pipeline:
    """Run jobs from ``retrieve`` through ``stages``, one thread per stage, bounded queues between them.

    Args:
        retrieve: returns the next job's :class:`JobRun`, or None when there is no more work; a
            :class:`PilotError` from it ends retrieval (recorded in :attr:`retrieve_error`).
        stages: the stages, in order; the last one's output is the job's result.
        stop: the stop shared by every stage.
        in_flight: how many jobs may be between retrieval and the end at once (1: strictly one after the other).
        on_done: called with each finished :class:`JobRun` (in the last stage's thread).
    """

    def __init__(
        self,
        retrieve: Callable[[Stop], JobRun | None],
        stages: Sequence[Stage],
        stop: Stop,
        *,
        in_flight: int = 1,
        on_done: Callable[[JobRun], None] | None = None,
    ) -> None:
        self._retrieve = retrieve
        self._stages = tuple(stages)
        self._stop = stop
        self._slots = threading.Semaphore(max(1, in_flight))
        self._on_done = on_done
        self.results: list[JobRun] = []
        self.retrieve_error: PilotError | None = None

    def run(self) -> list[JobRun]:
        """Run until retrieval ends and every job went through every stage; return the finished runs in order."""
        queues: list[queue.Queue[object]] = [queue.Queue(maxsize=1) for _ in range(len(self._stages) + 1)]
        threads = [threading.Thread(target=self._retrieve_loop, args=(queues[0],), name="retrieve", daemon=True)]
        for i, stage in enumerate(self._stages):
            args = (stage, queues[i], queues[i + 1])
            threads.append(threading.Thread(target=self._stage_loop, args=args, name=stage.name, daemon=True))
        threads.append(threading.Thread(target=self._collect, args=(queues[-1],), name="collect", daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # in slices: see _JOIN_SLICE
                thread.join(_JOIN_SLICE)
        return self.results

    def _retrieve_loop(self, out: queue.Queue[object]) -> None:
        try:
            while True:
                self._slots.acquire()
                if self._stop.is_set():
                    break
                try:
                    run = self._retrieve(self._stop)
                except PilotError as exc:
                    log.error("job retrieval failed code=%d error=%s", exc.code, exc)
                    self.retrieve_error = exc
                    break
                except Exception as exc:  # a bug in the source must end retrieval, not hang every stage
                    log.exception("job retrieval crashed")
                    self.retrieve_error = InternalPilotError(f"retrieve: {type(exc).__name__}: {exc}")
                    break
                if run is None:
                    break
                out.put(run)
        finally:
            out.put(_DONE)

    def _stage_loop(self, stage: Stage, inbox: queue.Queue[object], out: queue.Queue[object]) -> None:
        while (item := inbox.get()) is not _DONE:
            assert isinstance(item, JobRun)
            out.put(_apply(stage, item, self._stop))
        out.put(_DONE)

    def _collect(self, inbox: queue.Queue[object]) -> None:
        while (item := inbox.get()) is not _DONE:
            assert isinstance(item, JobRun)
            self.results.append(item)
            try:
                if self._on_done is not None:
                    self._on_done(item)
            except Exception:  # the job is over; a failing callback must not stop the others
                log.exception("on_done crashed panda_id=%d", item.job.panda_id)
            finally:
                self._slots.release()


def _apply(stage: Stage, run: JobRun, stop: Stop) -> JobRun:
    """Run one stage on one job: skip it after a failure unless it is an always stage; errors become the outcome."""
    if run.failure is None and stop.is_set() and stop.reason is not None:
        run = run.failed(stop.reason)
    if run.failure is not None and not stage.always:
        return run
    begin = time.monotonic()
    try:
        with job_context(run.job.panda_id):
            result = stage.func(run, stop)
    except PilotError as exc:
        log.error("stage failed stage=%s panda_id=%d code=%d error=%s", stage.name, run.job.panda_id, exc.code, exc)
        result = run.failed(exc)
    except Exception as exc:
        log.exception("stage crashed stage=%s panda_id=%d", stage.name, run.job.panda_id)
        result = run.failed(InternalPilotError(f"{stage.name}: {type(exc).__name__}: {exc}"))
    return result.timed(stage.timing, time.monotonic() - begin) if stage.timing else result
