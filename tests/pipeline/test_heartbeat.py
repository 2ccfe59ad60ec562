"""The job's heartbeat covers stage-in, payload and stage-out, and obeys ``tobekilled`` during the transfers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pilotlib.errors import Direction, ErrorCode, PandaKillError, PilotError
from pilotlib.panda.base import JobUpdate, ServerCommand, UpdateAnswer
from pilotlib.pipeline import JobRun, Pipeline
from pilotlib.stages import Heartbeat, standard_stages
from pilotlib.stop import Stop
from pilotlib.transfer.base import TransferResult

from .fakes import FakeInputStager, FakeOutputStager, FakePayload, FakeReporter
from .test_pipeline import _source, _stages


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until true, failing after 30 s."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class CommandReporter(FakeReporter):
    """Answers every non-final update with ``command`` once ``armed`` is set; ``second_starting`` is set once a
    heartbeat in state ``starting`` followed the starting update."""

    def __init__(self, command: ServerCommand | None = None) -> None:
        super().__init__()
        self.armed = threading.Event()
        self.command_on_any = command
        self.second_starting = threading.Event()

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        super().update_job(update)
        if update.state == "starting" and self.states(update.panda_id).count("starting") >= 2:
            self.second_starting.set()
        if not update.final and self.armed.is_set():
            return UpdateAnswer(True, command=self.command_on_any)
        return UpdateAnswer(True)


class BlockingStageIn(FakeInputStager):
    """Stage-in that lasts until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def stage_in(self, run: JobRun, *args: object) -> Sequence[TransferResult]:
        assert self.release.wait(30), "stage-in never released"
        return super().stage_in(run)


class StopHonouringStageIn(FakeInputStager):
    """Stage-in whose copy lasts until the stop it is given is set (as the real copytools' cancels do), at most
    30 s; ``ended_by`` is the stop's reason when it ended the copy."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.ended_by: PilotError | None = None

    def stage_in(self, run: JobRun, stop: Stop, *args: object) -> Sequence[TransferResult]:
        self.started.set()
        assert stop.wait(30), "the copy was never stopped"
        self.ended_by = stop.reason
        return [_failed_in(f.lfn, stop.reason) for f in run.job.inputs]


def _failed_in(lfn: str, error: PilotError | None) -> TransferResult:
    return TransferResult(lfn=lfn, direction=Direction.STAGE_IN, tool="fake", url="", local_path="", error=error)


class BlockingStageOut(FakeOutputStager):
    """Output stage-out that lasts until ``release`` is set (the log is immediate)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def stage_out(self, run: JobRun, *args: object) -> Sequence[TransferResult]:
        assert self.release.wait(30), "stage-out never released"
        return super().stage_out(run)


def test_heartbeats_during_stage_in_report_starting_without_usage(tmp_path: Path) -> None:
    """A long stage-in sends heartbeats in state ``starting`` with no usage figures; the job then finishes."""
    reporter, stage_in = CommandReporter(), BlockingStageIn()
    stages, _ = _stages(tmp_path, reporter, FakePayload(), stage_in=stage_in, heartbeat_interval=0.02)
    thread = threading.Thread(target=Pipeline(_source(tmp_path, [1201]), standard_stages(stages), Stop()).run)
    thread.start()
    assert reporter.second_starting.wait(30)  # the starting update, then a heartbeat during stage-in
    stage_in.release.set()
    thread.join(30)
    assert not thread.is_alive()
    starting = [u for u in reporter.updates if u.state == "starting"]
    assert len(starting) >= 2 and all("cpuConsumptionTime" not in u.fields for u in starting)
    assert reporter.final(1201).state == "finished"
    states = reporter.states(1201)
    last_starting = max(i for i, state in enumerate(states) if state == "starting")
    assert states[-1] == "finished" and states.index("running") > last_starting


def test_heartbeats_during_stage_out_report_running_with_the_payload_usage(tmp_path: Path) -> None:
    """A long output stage-out sends ``running`` heartbeats carrying the payload's final usage figures."""
    reporter, stage_out = CommandReporter(), BlockingStageOut()
    stages, _ = _stages(tmp_path, reporter, FakePayload(), stage_out=stage_out, heartbeat_interval=0.02)
    thread = threading.Thread(target=Pipeline(_source(tmp_path, [1202]), standard_stages(stages), Stop()).run)
    thread.start()
    # the first running update comes as the payload starts; later ones come during the blocked stage-out
    _until(lambda: reporter.states(1202).count("running") >= 3, "heartbeats during stage-out")
    stage_out.release.set()
    thread.join(30)
    assert not thread.is_alive()
    running = [u for u in reporter.updates if u.state == "running"]
    assert all(u.fields["cpuConsumptionTime"] == 7 and u.fields["maxRSS"] == 1234 for u in running)
    assert reporter.final(1202).state == "finished"


def test_tobekilled_during_stage_in_fails_the_job_with_pandakill(tmp_path: Path) -> None:
    """tobekilled answering a heartbeat during stage-in reaches the copy under way (the stage-in gets the job's
    stop, and its copy, which honours it, ends; nothing else releases it): the payload never runs, the job fails
    with PANDAKILL 1144, the log is still staged out and the final state reported; only the job's own stop was
    set."""
    reporter, stage_in, payload = CommandReporter(ServerCommand.TOBEKILLED), StopHonouringStageIn(), FakePayload()
    stages, parts = _stages(tmp_path, reporter, payload, stage_in=stage_in, heartbeat_interval=0.02)
    stop = Stop()
    pipeline = Pipeline(_source(tmp_path, [1203]), standard_stages(stages), stop)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    assert stage_in.started.wait(30) and reporter.second_starting.wait(30)
    reporter.armed.set()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(stage_in.ended_by, PandaKillError)  # the copy ended because of the kill
    (run,) = pipeline.results
    assert isinstance(run.failure, PandaKillError) and run.failure.code == ErrorCode.PANDAKILL
    assert payload.started == [] and not stop.is_set()
    assert parts["stage_out"].log_calls == [1203] and parts["stage_out"].calls == []
    assert reporter.final(1203).fields["pilotErrorCode"] == 1144 and "running" not in reporter.states(1203)


def test_tobekilled_during_stage_out_fails_the_job_with_pandakill(tmp_path: Path) -> None:
    """tobekilled answering a heartbeat during output stage-out fails the job with PANDAKILL; the log is staged
    out and the final update says 1144."""
    reporter, stage_out = CommandReporter(ServerCommand.TOBEKILLED), BlockingStageOut()
    stages, _ = _stages(tmp_path, reporter, FakePayload(), stage_out=stage_out, heartbeat_interval=0.02)
    pipeline = Pipeline(_source(tmp_path, [1204]), standard_stages(stages), Stop())
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    _until(lambda: "running" in reporter.states(1204), "the payload's running update")
    reporter.armed.set()
    count = len(reporter.updates)
    _until(lambda: len(reporter.updates) >= count + 2, "a heartbeat answered after arming")
    stage_out.release.set()
    thread.join(30)
    assert not thread.is_alive()
    (run,) = pipeline.results
    assert isinstance(run.failure, PandaKillError) and run.failure.code == ErrorCode.PANDAKILL
    assert stage_out.log_calls == [1204] and stage_out.calls == [1204]
    assert reporter.final(1204).fields["pilotErrorCode"] == 1144


class StuckReporter(FakeReporter):
    """Every non-final update blocks until ``release`` is set (a server call that never returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        if not update.final:
            self.entered.set()
            self.release.wait(60)
        return super().update_job(update)


def test_close_returns_within_its_bound_while_a_heartbeat_is_stuck_in_a_call() -> None:
    """Heartbeat.close returns within its timeout (here 0.5 s) while the heartbeat thread is inside a server call
    that does not return; the job's stop is released from the pilot's (before, close joined the thread for good)."""
    reporter = StuckReporter()
    stop = Stop()
    beat = Heartbeat(reporter, lambda: JobUpdate(1, "starting"), lambda _usage: JobUpdate(1, "running"), stop, 0.01)
    beat.start()
    try:
        _until(reporter.entered.is_set, "the heartbeat's call")
        closer = threading.Thread(target=beat.close, kwargs={"timeout": 0.5}, daemon=True)
        began = time.monotonic()
        closer.start()
        closer.join(5)
        assert not closer.is_alive(), "close() did not return"
        assert 0.4 < time.monotonic() - began < 1.5
        stop.set(PandaKillError("x"))
        assert not beat.stop.is_set()  # released: the pilot's stop no longer reaches the closed heartbeat's
    finally:
        reporter.release.set()

