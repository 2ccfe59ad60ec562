"""The event-service workflow inside the pipeline's payload stage: chosen from the job definition, no flag.

:class:`EventServiceExecutor` stands in front of the pilot's payload executor:

- a job with ``eventService``: the payload channel is opened in the work directory, the payload started with its
  address in ``PILOT_EVENTRANGECHANNEL`` (pilot3 exports it, ``pilot/eventservice/esprocess/esprocess.py``), ranges
  are asked for ahead (:class:`~pilotlib.eventservice.feed.RangeFeed`) and handed out one by one, and each range's
  outcome goes to the mode's :class:`~pilotlib.eventservice.outputs.RangeOutputs`, stored and reported while the
  payload runs (every second a look at what is due) and at its end;
- a job with ``eventServiceMerge``: its ``writeToFile`` lists are written and its archive inputs unpacked
  (:func:`pilotlib.eventservice.merge.prepare_merge`), then it runs as any payload with the rewritten parameters;
- any other job: the pilot's executor as it is.

At the end of an event-service payload, the ranges it still held are reported failed (with the payload's error
code, or ESRECOVERABLE when it ended without one), the finished ones are stored and reported (the final flush),
and the job's error is, first that applies: the payload broke the protocol (MESSAGEHANDLINGFAILURE 1240); the
payload's own failure; no range at all (ESNOEVENTS 1238); the range source failed before any range (its code);
finished ranges could not be stored or reported (ESRECOVERABLE 1224); every range failed (ESFATAL 1228).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from pilotlib.errors import ErrorCode, PilotError
from pilotlib.eventservice.channel import EventChannel
from pilotlib.eventservice.errors import (
    EventServiceFatalError,
    EventServiceRecoverableError,
    NoEventsError,
    RangeTimeoutError,
)
from pilotlib.eventservice.feed import RangeFeed
from pilotlib.eventservice.merge import prepare_merge
from pilotlib.eventservice.outputs import (
    HarvesterRangeOutputs,
    RangeOutputs,
    StoredRangeOutputs,
    ZippedRangeReporter,
)
from pilotlib.eventservice.protocol import CHANNEL_VARIABLE
from pilotlib.eventservice.session import EventSession
from pilotlib.panda.base import EventRangeSource, ZipRecord
from pilotlib.pipeline import JobRun, PayloadSummary
from pilotlib.stages import RunningPayload
from pilotlib.stop import Stop, StopSignal

__all__ = [
    "CHANNEL_NAME",
    "EventFileStore",
    "EventServiceExecutor",
    "EventServicePayload",
    "EventSettings",
    "KillablePayload",
    "event_outputs",
]

log = logging.getLogger(__name__)

#: The channel's socket in the job's work directory.
CHANNEL_NAME = "pilot-events.sock"


class KillablePayload(RunningPayload, Protocol):
    """A running payload the event service can stop (:class:`~pilotlib.workflow.executor.RunnerPayload`)."""

    def request_kill(self, reason: PilotError) -> None:
        """Kill it for ``reason``; returns at once."""
        ...


class KillableExecutor(Protocol):
    """Starts payloads that can be stopped."""

    def start(self, run: JobRun, stop: StopSignal | None = None) -> KillablePayload:
        """Start ``run.job``'s payload."""
        ...


@attrs.frozen
class EventSettings:
    """How event-service jobs run.

    Attributes:
        ahead: ranges kept in hand; batch: how many are asked for at once (once that many are missing).
        range_timeout: seconds the payload may hold ranges without a word before it is stopped (ESRECOVERABLE).
        stageout_gap: seconds between stores of the outputs when the queue gives none (pilot3: 600 for
            opportunistic resources, 7200 otherwise; ``queuedata.py``).
        merge_max_bytes: the most a merge job's archives may unpack to.
    """

    ahead: int = 16
    batch: int = 8
    range_timeout: float = 3600.0
    stageout_gap: float = 600.0
    merge_max_bytes: int = 50 * 1024**3


#: Makes a job's outputs handler: the run and the seconds between stores.
OutputsFactory = Callable[[JobRun, float], RangeOutputs]


@runtime_checkable
class EventFileStore(Protocol):
    """Stores a file of ranges' outputs (:meth:`~pilotlib.workflow.transfers.TransferStages.store_event_file`)."""

    def store_event_file(self, run: JobRun, path: Path, num_events: int,
                         stop: StopSignal | None = None) -> ZipRecord:
        """Store ``path`` and return its zip record."""
        ...


def event_outputs(events: EventRangeSource | None, place: Callable[[int], Path] | None,
                  store: object) -> OutputsFactory | None:
    """How a pilot's event-service jobs store their outputs: put in ``place`` for Harvester, else stored with
    ``store`` (an :class:`EventFileStore`) and reported zipped to ``events`` (a
    :class:`~pilotlib.eventservice.outputs.ZippedRangeReporter`); None when neither is possible."""
    if events is None:
        return None
    if place is not None:
        return lambda run, gap: HarvesterRangeOutputs(events, run.job.panda_id, place(run.job.panda_id))
    if not isinstance(store, EventFileStore) or not isinstance(events, ZippedRangeReporter):
        return None
    reporter = events

    def stored(run: JobRun, gap: float) -> RangeOutputs:
        return StoredRangeOutputs(reporter, lambda path, n: store.store_event_file(run, path, n), run.job.panda_id,
                                  run.workdir, gap=gap)

    return stored


@attrs.frozen
class EventServiceExecutor:
    """The pilot's payload executor, with the event-service and merge workflows (see the module).

    Attributes:
        inner: the pilot's payload executor.
        source: where the ranges come from (None: this pilot has none, e.g. ARC: event-service jobs fail with
            ESFATAL).
        outputs: makes a job's outputs handler (None: likewise).
        settings: how event-service jobs run.
    """

    inner: KillableExecutor
    source: EventRangeSource | None = None
    outputs: OutputsFactory | None = None
    settings: EventSettings = attrs.field(factory=EventSettings)

    def start(self, run: JobRun, stop: StopSignal | None = None) -> RunningPayload:
        """Start the job's payload in its workflow.

        Raises:
            PilotError: it cannot start (ESFATAL: no event ranges in this mode; a merge job's inputs cannot be
                prepared: their code; the channel cannot open: ESFATAL).
        """
        job = run.job
        if job.event_service_merge:
            archives = {f.lfn for f in job.inputs if f.is_archive}
            prepared = prepare_merge(job, run.workdir, max_bytes=self.settings.merge_max_bytes,
                                     archives=archives or None)
            log.info("merge job prepared lists=%d unpacked=%d", len(prepared.written), len(prepared.extracted))
            return self.inner.start(attrs.evolve(run, setup=attrs.evolve(run.setup, job_pars=prepared.job_pars)),
                                    stop)
        if not job.event_service:
            return self.inner.start(run, stop)
        if self.source is None or self.outputs is None:
            raise EventServiceFatalError(f"job {job.panda_id} is an event-service job and this pilot has no event "
                                         "ranges (its mode serves none)")
        return self._start_events(run, self.source, self.outputs, stop)

    def _start_events(self, run: JobRun, source: EventRangeSource, outputs: OutputsFactory,
                      stop: StopSignal | None) -> EventServicePayload:
        queue = run.setup.queue
        given = queue.es_stageout_gap if queue is not None else 0
        gap = float(given) if given else self.settings.stageout_gap
        killer = _Killer()
        deadline = None if run.setup.deadline is None else time.monotonic() + run.setup.deadline - time.time()
        session = EventSession(run.workdir, outputs(run, gap), on_broken=killer.kill, deadline=deadline)
        session.feed = RangeFeed(source, run.job, ahead=self.settings.ahead, batch=self.settings.batch,
                                 budget=session.budget).start()
        channel = EventChannel(run.workdir / CHANNEL_NAME, session)
        try:
            channel.open()
            setup = attrs.evolve(run.setup, payload_env={**run.setup.payload_env, CHANNEL_VARIABLE: channel.address})
            payload = self.inner.start(attrs.evolve(run, setup=setup), stop)
        except BaseException:
            channel.close()
            session.feed.close()
            raise
        killer.payload = payload
        log.info("event-service payload started channel=%s gap=%gs", channel.address, gap)
        return EventServicePayload(payload, session, channel, self.settings.range_timeout)


class _Killer:
    """Stops the payload once it is there (the session may break before)."""

    payload: KillablePayload | None = None

    def kill(self, error: PilotError) -> None:
        if self.payload is not None:
            self.payload.request_kill(error)


class EventServicePayload:
    """An event-service payload while it runs: its usage, the softkill, and the wait that settles its ranges."""

    def __init__(self, payload: KillablePayload, session: EventSession, channel: EventChannel,
                 range_timeout: float) -> None:
        self._payload = payload
        self._session = session
        self._channel = channel
        self._range_timeout = range_timeout
        self._ended = threading.Event()

    def usage(self) -> Mapping[str, object]:
        """The payload's figures."""
        return self._payload.usage()

    def soft_stop(self) -> None:
        """No more ranges: the payload ends after the ones it holds."""
        self._session.no_more()

    def wait(self, stop: Stop) -> PayloadSummary:
        """Wait for the payload while storing what is due; then settle every range and return the summary."""
        callback = stop.when_set(lambda _reason: self._session.no_more())
        watcher = threading.Thread(target=self._watch, name="es-watch", daemon=True)
        watcher.start()
        try:
            summary = self._payload.wait(stop)
        finally:
            stop.forget(callback)
            self._ended.set()
            watcher.join()
        return self._settle(summary, stop)

    def _watch(self) -> None:
        """Every second: store what is due; stop a payload that holds ranges and has said nothing for too long."""
        session = self._session
        while not self._ended.wait(1.0):
            session.outputs.flush(final=False)
            silent = time.monotonic() - session.last_message
            if session.book.holding() and silent > self._range_timeout:
                self._payload.request_kill(RangeTimeoutError(
                    f"the payload held {session.book.holding()} range(s) and said nothing for {silent:.0f} s"))
                return

    def _settle(self, summary: PayloadSummary, stop: Stop) -> PayloadSummary:
        session, feed = self._session, self._session.feed
        assert feed is not None
        self._channel.close()
        left = feed.close()
        code = summary.error.code if summary.error is not None else ErrorCode.ESRECOVERABLE
        held = session.book.release_held(code, f"the payload ended holding the range (exit {summary.exit_code})")
        session.outputs.failed(held)
        stored = session.outputs.flush(final=True, stop=stop)
        book = session.book
        log.info("event ranges settled given=%d finished=%d failed=%d never_given=%d requests=%d", book.given,
                 book.finished, book.failed, len(left), feed.requests)
        error = session.error or summary.error or self._job_error(feed, stored)
        return attrs.evolve(summary, error=error)

    def _job_error(self, feed: RangeFeed, stored: PilotError | None) -> PilotError | None:
        book = self._session.book
        if book.given == 0 and feed.error is not None:
            return feed.error
        if book.given == 0:
            return NoEventsError("no event ranges for the job")
        if stored is not None:
            return EventServiceRecoverableError(f"finished ranges not stored or reported: {stored}")
        if book.finished == 0:
            return EventServiceFatalError(f"all {book.failed} event ranges failed")
        return None


