"""Fakes of the pipeline's collaborators for unit tests (the e2e tests use the real ones)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from pilotlib.errors import CommunicationError, Direction, PayloadExecutionError, PilotError, TransferError
from pilotlib.job import Job, parse_job
from pilotlib.panda.base import JobUpdate, ServerCommand, UpdateAnswer
from pilotlib.pipeline import JobRun, PayloadSummary
from pilotlib.stop import Stop, StopSignal
from pilotlib.transfer.base import TransferResult


def make_job(panda_id: int = 1001) -> Job:
    """A small job with one input, one output and a log."""
    return parse_job(
        {
            "PandaID": str(panda_id),
            "attemptNr": "1",
            "prodSourceLabel": "managed",
            "transformation": "run.sh",
            "jobPars": "",
            "inFiles": "in.dat",
            "scopeIn": "test",
            "fsize": "3",
            "checksum": "ad:00000000",
            "GUID": "g-in",
            "outFiles": "out.dat,log.tgz",
            "scopeOut": "test",
            "scopeLog": "test",
            "logFile": "log.tgz",
            "logGUID": "g-log",
            "realDatasets": "ds.out,ds.log",
            "ddmEndPointOut": "LOCAL,LOCAL",
            "destinationDblock": "db.out,db.log",
        }
    )


class FakeReporter:
    """Records every update; answers with ``command`` on heartbeats; fails the first ``fail_final`` final updates."""

    def __init__(self, command: ServerCommand | None = None, fail_final: int = 0) -> None:
        self.updates: list[JobUpdate] = []
        self.command = command
        self.fail_final = fail_final
        self.heartbeat_seen = threading.Event()
        self._lock = threading.Lock()

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        with self._lock:
            if update.final and self.fail_final > 0:
                self.fail_final -= 1
                raise CommunicationError("server down")
            self.updates.append(update)
        if update.state == "running":
            self.heartbeat_seen.set()
            return UpdateAnswer(True, command=self.command)
        return UpdateAnswer(True)

    def states(self, panda_id: int) -> list[str]:
        return [u.state for u in self.updates if u.panda_id == panda_id]

    def final(self, panda_id: int) -> JobUpdate:
        (update,) = [u for u in self.updates if u.panda_id == panda_id and u.final]
        return update


def _result(lfn: str, direction: Direction, error: PilotError | None = None) -> TransferResult:
    return TransferResult(
        lfn=lfn,
        direction=direction,
        tool="fake",
        url=f"file:///storage/{lfn}",
        local_path=lfn,
        size=3,
        checksum=("adler32", "024d0127"),
        error=error,
        ddmendpoint="LOCAL",
        guid=f"guid-{lfn}",
    )


class FakeInputStager:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[int] = []

    def stage_in(self, run: JobRun, *args: object) -> Sequence[TransferResult]:
        job = run.job
        self.calls.append(job.panda_id)
        error = TransferError("no replica", Direction.STAGE_IN) if self.fail else None
        return [_result(f.lfn, Direction.STAGE_IN, error) for f in job.inputs]


class FakeOutputStager:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[int] = []
        self.log_calls: list[int] = []
        self.log_caps: list[float | None] = []
        self.log_stops: list[StopSignal | None] = []

    def stage_out(self, run: JobRun, *args: object) -> Sequence[TransferResult]:
        job = run.job
        self.calls.append(job.panda_id)
        error = TransferError("storage refused", Direction.STAGE_OUT) if self.fail else None
        return [_result(f.lfn, Direction.STAGE_OUT, error) for f in job.outputs]

    def stage_out_log(self, run: JobRun, timeout_cap: float | None = None,
                      stop: StopSignal | None = None) -> TransferResult:
        job = run.job
        self.log_calls.append(job.panda_id)
        self.log_caps.append(timeout_cap)
        self.log_stops.append(stop)
        assert job.log is not None
        return _result(job.log.lfn, Direction.STAGE_OUT)


class FakeRunning:
    def __init__(self, owner: FakePayload) -> None:
        self.owner = owner
        self.started = time.time()

    def usage(self) -> Mapping[str, object]:
        return {"cpuConsumptionTime": 7, "maxRSS": 1234, "jobMetrics": "coreCount=1"}

    def soft_stop(self) -> None:
        self.owner.soft_stopped = True

    def wait(self, stop: Stop) -> PayloadSummary:
        self.owner.running.set()
        if self.owner.block:
            stop.wait()  # the fake payload runs until stopped
            self.owner.stopped_by = stop.reason
            return PayloadSummary(-15, self.started, time.time(), self.usage())
        error = PayloadExecutionError("payload exit code 3") if self.owner.exit_code else None
        report = {"exitCode": self.owner.exit_code}
        return PayloadSummary(self.owner.exit_code, self.started, time.time(), self.usage(), report, error)


class FakePayload:
    def __init__(self, exit_code: int = 0, block: bool = False) -> None:
        self.exit_code = exit_code
        self.block = block
        self.running = threading.Event()
        self.started: list[int] = []
        self.stopped_by: PilotError | None = None
        self.soft_stopped = False

    def start(self, run: JobRun, stop: StopSignal | None = None) -> FakeRunning:
        self.started.append(run.job.panda_id)
        return FakeRunning(self)
