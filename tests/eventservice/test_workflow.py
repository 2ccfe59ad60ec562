"""The event-service workflow's own decisions, with real processes: the real payload runner and channel, the
reference payload; only the range source (a list) and the outputs (a recorder) stand in for the server."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

from pilotlib.errors import ErrorCode, PilotError
from pilotlib.eventservice import EventServiceFatalError, FailedRange, FinishedRange, RangeTimeoutError
from pilotlib.job import Job
from pilotlib.jobsetup import JobSetup
from pilotlib.panda.base import EventRange, EventRangeUpdate, UpdateAnswer
from pilotlib.payload import PayloadSettings
from pilotlib.pipeline import JobRun
from pilotlib.stop import Stop
from pilotlib.workflow.events import EventServiceExecutor, EventSettings
from pilotlib.workflow.executor import RunnerExecutor


class ListSource:
    """Ranges from a list, ``n`` at a time; counts the requests."""

    def __init__(self, count: int) -> None:
        self.ranges = [EventRange(f"1-1-1-{n}-1", n, n, "in.dat", "g", "s") for n in range(count)]
        self.requests = 0

    def get_event_ranges(self, job: Job, n_ranges: int) -> Sequence[EventRange]:
        self.requests += 1
        taken, self.ranges = self.ranges[:n_ranges], self.ranges[n_ranges:]
        return taken

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        return UpdateAnswer(accepted=True)


@attrs.define
class Recorder:
    """RangeOutputs that keeps what it is given."""

    done: list[str] = attrs.field(factory=list)
    failures: list[FailedRange] = attrs.field(factory=list)
    flushes: int = 0

    def finished(self, item: FinishedRange) -> None:
        self.done.append(item.range.event_range_id)

    def failed(self, items: Sequence[FailedRange]) -> None:
        self.failures.extend(items)

    def flush(self, final: bool, stop: object = None) -> PilotError | None:
        self.flushes += final
        return None


def _run(tmp_path: Path, source: ListSource, *knobs: str, settings: EventSettings | None = None,
         deadline: float | None = None, during: object = None) -> tuple[Recorder, PilotError | None]:
    recorder = Recorder()
    executor = EventServiceExecutor(RunnerExecutor(PayloadSettings(base_env={"PATH": "/usr/bin:/bin"}), grace=1.0),
                                    source, lambda run, gap: recorder, settings or EventSettings())
    job = Job(panda_id=1, event_service=True, transformation=sys.executable,
              job_pars=" ".join(["-m", "pilotlib.eventservice.reference_payload", *knobs]))
    workdir = tmp_path / "w"
    workdir.mkdir()
    running = executor.start(JobRun(job, workdir, JobSetup(deadline=deadline)), Stop())
    if callable(during):
        during(running)
    summary = running.wait(Stop())
    return recorder, summary.error


@pytest.mark.reliability("faults", "event service",
                         "payload hangs mid-range: stopped at the range timeout, ESRECOVERABLE, held range failed")
def test_a_payload_silent_on_a_range_is_stopped_with_esrecoverable(tmp_path: Path) -> None:
    """``--hang-after 2``: the payload holds its third range and says nothing; after ``range_timeout`` it is
    stopped, the job's error is RangeTimeoutError (ESRECOVERABLE 1224) and the held range is reported failed."""
    started = time.monotonic()
    recorder, error = _run(tmp_path, ListSource(10), "--hang-after", "2",
                           settings=EventSettings(range_timeout=1.0))
    assert isinstance(error, RangeTimeoutError) and error.code == ErrorCode.ESRECOVERABLE
    assert recorder.done == ["1-1-1-0-1", "1-1-1-1-1"]
    assert [f.range.event_range_id for f in recorder.failures] == ["1-1-1-2-1"]
    assert time.monotonic() - started < 10


def test_softkill_gives_no_more_ranges_and_the_payload_finishes(tmp_path: Path) -> None:
    """After ``soft_stop`` (the server's softkill) the payload is answered ``No more events``: it finishes the
    range it is on and exits; no range is failed, fewer than all were given."""
    def soft_stop_soon(running: object) -> None:
        threading.Timer(0.5, running.soft_stop).start()  # type: ignore[attr-defined]

    recorder, error = _run(tmp_path, ListSource(100), "--sleep", "0.1", during=soft_stop_soon)
    assert error is None and recorder.failures == []
    assert 1 <= len(recorder.done) < 100


def test_the_lifetime_bounds_the_ranges_handed_out(tmp_path: Path) -> None:
    """With 2 s left in the pilot's life and 0.2 s a range, the payload is given about what it can finish (the
    budget from the ranges done so far), not the 100 available, and every range it got finished."""
    recorder, error = _run(tmp_path, ListSource(100), "--sleep", "0.2", deadline=time.time() + 2.5)
    assert error is None and recorder.failures == []
    assert 3 <= len(recorder.done) <= 14


@pytest.mark.reliability("faults", "event service",
                         "payload fails every range it gets: ESFATAL, the range reported failed")
def test_every_range_failed_is_esfatal(tmp_path: Path) -> None:
    """The payload fails the only range it gets: the job's error is ESFATAL (1228), the range reported failed with
    UNKNOWNPAYLOADFAILURE (1220, as pilot3's generic executor reports payload-failed ranges)."""
    recorder, error = _run(tmp_path, ListSource(1), "--fail", "1-1-1-0-1")
    assert isinstance(error, EventServiceFatalError) and error.code == ErrorCode.ESFATAL
    assert [(f.range.event_range_id, f.code) for f in recorder.failures] == [("1-1-1-0-1",
                                                                            ErrorCode.UNKNOWNPAYLOADFAILURE)]
