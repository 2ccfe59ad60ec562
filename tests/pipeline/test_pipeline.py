"""The pipeline with fake collaborators: order of stages, failures as values, the stop, heartbeats, multi-job."""

from __future__ import annotations

import threading
from pathlib import Path

import attrs
import pytest

from pilotlib.errors import ErrorCode, InternalPilotError, PandaKillError, PilotError, SigTermError, TransferError
from pilotlib.panda.base import JobUpdate, ServerCommand, UpdateAnswer
from pilotlib.pipeline import JobRun, Pipeline, Stage
from pilotlib.recovery import FinalRetry, FinalStore
from pilotlib.report import PilotIdentity
from pilotlib.stages import Stages, standard_stages
from pilotlib.stop import Stop

from .fakes import FakeInputStager, FakeOutputStager, FakePayload, FakeReporter, make_job


def _stages(tmp_path: Path, reporter: FakeReporter, payload: FakePayload, **kw: object) -> tuple[Stages, dict]:
    stage_in = kw.pop("stage_in", FakeInputStager())
    stage_out = kw.pop("stage_out", FakeOutputStager())
    stages = Stages(
        stage_in=stage_in,  # type: ignore[arg-type]
        payload=payload,
        stage_out=stage_out,  # type: ignore[arg-type]
        log_out=stage_out,  # type: ignore[arg-type]
        reporter=reporter,
        identity=PilotIdentity(site_name="SITE", node="node1", pilot_id="p1"),
        store=FinalStore(tmp_path / "state"),
        final_retry=FinalRetry(deadline=0.0),
        **kw,  # type: ignore[arg-type]
    )
    return stages, {"stage_in": stage_in, "stage_out": stage_out}


def _source(tmp_path: Path, ids: list[int]):
    pending = list(ids)

    def retrieve(stop: Stop) -> JobRun | None:
        if not pending:
            return None
        panda_id = pending.pop(0)
        return JobRun(make_job(panda_id), tmp_path / "work" / str(panda_id))

    return retrieve


def test_good_job_runs_every_stage_and_reports_finished(tmp_path: Path) -> None:
    """A job without failure is staged in, run, staged out, its log staged out, and reported finished and acked."""
    reporter, payload = FakeReporter(), FakePayload()
    stages, parts = _stages(tmp_path, reporter, payload)
    (run,) = Pipeline(_source(tmp_path, [1001]), standard_stages(stages), Stop()).run()
    assert run.failure is None and run.final_sent
    assert parts["stage_in"].calls == [1001] and payload.started == [1001]
    assert parts["stage_out"].calls == [1001] and parts["stage_out"].log_calls == [1001]
    assert reporter.states(1001) == ["starting", "running", "finished"]  # running as the payload starts
    final = reporter.final(1001)
    assert final.fields["pilotErrorCode"] == 0
    assert final.fields["transExitCode"] == 0
    assert len(final.fields["pilotTiming"].split("|")) == 6
    assert '"out.dat"' in final.fields["xml"] and '"log.tgz"' in final.fields["xml"]
    assert FinalStore(tmp_path / "state").is_sent(1001)


def test_stage_in_failure_skips_payload_but_stages_out_log_and_reports(tmp_path: Path) -> None:
    """After a stage-in failure the payload and output stage-out do not run; the log is staged out; failed 1099."""
    reporter, payload = FakeReporter(), FakePayload()
    stages, parts = _stages(tmp_path, reporter, payload, stage_in=FakeInputStager(fail=True))
    (run,) = Pipeline(_source(tmp_path, [1002]), standard_stages(stages), Stop()).run()
    assert isinstance(run.failure, TransferError) and run.failure.code == ErrorCode.STAGEINFAILED
    assert payload.started == [] and parts["stage_out"].calls == []
    assert parts["stage_out"].log_calls == [1002]
    final = reporter.final(1002)
    assert final.state == "failed" and final.fields["pilotErrorCode"] == 1099
    assert final.fields["pilotErrorDiag"] == "no replica"


def test_stage_out_failure_is_reported_with_its_code(tmp_path: Path) -> None:
    """A failed output transfer fails the job with STAGEOUTFAILED (1137); the log is still staged out."""
    reporter = FakeReporter()
    stages, parts = _stages(tmp_path, reporter, FakePayload(), stage_out=FakeOutputStager(fail=True))
    (run,) = Pipeline(_source(tmp_path, [1003]), standard_stages(stages), Stop()).run()
    assert run.failure is not None and run.failure.code == ErrorCode.STAGEOUTFAILED
    assert parts["stage_out"].log_calls == [1003]
    assert reporter.final(1003).fields["pilotErrorCode"] == 1137


def test_payload_failure_carries_exit_code_and_metadata(tmp_path: Path) -> None:
    """A failing payload's diagnosis becomes the failure; transExitCode and metaData come from its summary."""
    reporter = FakeReporter()
    stages, parts = _stages(tmp_path, reporter, FakePayload(exit_code=3))
    Pipeline(_source(tmp_path, [1004]), standard_stages(stages), Stop()).run()
    final = reporter.final(1004)
    assert final.fields["pilotErrorCode"] == ErrorCode.PAYLOADEXECUTIONFAILURE
    assert final.fields["transExitCode"] == 3
    assert final.fields["metaData"] == '{"exitCode":3}'
    assert parts["stage_out"].calls == [] and parts["stage_out"].log_calls == [1004]


def test_stop_during_payload_fails_job_with_the_stop_reason(tmp_path: Path) -> None:
    """A stop set while the payload runs stops it; the job fails with the stop's code; log and report still run."""
    reporter, payload = FakeReporter(), FakePayload(block=True)
    stages, parts = _stages(tmp_path, reporter, payload)
    stop = Stop()
    pipeline = Pipeline(_source(tmp_path, [1005, 1006]), standard_stages(stages), stop)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    assert payload.running.wait(30)
    stop.set(SigTermError("SIGTERM received"))
    assert not stop.set(SigTermError("second signal"))
    thread.join(30)
    assert not thread.is_alive()
    (run,) = pipeline.results  # the second job is never fetched after the stop
    assert isinstance(payload.stopped_by, SigTermError) and payload.stopped_by.message == "SIGTERM received"
    assert run.failure is not None and run.failure.code == ErrorCode.SIGTERM
    assert parts["stage_out"].log_calls == [1005] and parts["stage_out"].calls == []
    assert reporter.final(1005).fields["pilotErrorCode"] == 1201


def test_tobekilled_answer_to_a_heartbeat_kills_the_payload_with_pandakill(tmp_path: Path) -> None:
    """The server's tobekilled command in a heartbeat answer stops the payload; the job fails with PANDAKILL."""
    reporter, payload = FakeReporter(command=ServerCommand.TOBEKILLED), FakePayload(block=True)
    stages, parts = _stages(tmp_path, reporter, payload, heartbeat_interval=0.05)
    stop = Stop()
    (run,) = Pipeline(_source(tmp_path, [1007]), standard_stages(stages), stop).run()
    assert isinstance(run.failure, PandaKillError) and run.failure.code == ErrorCode.PANDAKILL
    assert not stop.is_set()  # only the job's own stop was set
    assert "running" in reporter.states(1007)
    heartbeat = next(u for u in reporter.updates if u.state == "running")
    assert heartbeat.fields["cpuConsumptionTime"] == 7 and heartbeat.fields["jobMetrics"] == "coreCount=1"
    assert reporter.final(1007).fields["pilotErrorCode"] == 1144
    assert parts["stage_out"].log_calls == [1007]


def test_softkill_leaves_a_plain_job_running(tmp_path: Path) -> None:
    """softkill (an event-service instruction) does not kill a plain job's payload."""
    reporter, payload = FakeReporter(command=ServerCommand.SOFTKILL), FakePayload(block=True)
    stages, _ = _stages(tmp_path, reporter, payload, heartbeat_interval=0.02)
    stop = Stop()
    pipeline = Pipeline(_source(tmp_path, [1008]), standard_stages(stages), stop)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    assert reporter.heartbeat_seen.wait(30)
    assert payload.stopped_by is None and not thread.join(0.0) and thread.is_alive()
    stop.set(SigTermError())
    thread.join(30)
    assert pipeline.results[0].failure is not None and pipeline.results[0].failure.code == ErrorCode.SIGTERM


def test_crash_inside_a_stage_becomes_internal_error(tmp_path: Path) -> None:
    """An unexpected exception in a stage fails the job with INTERNALPILOTPROBLEM; always stages still run."""
    seen: list[str] = []

    def boom(run: JobRun, stop: Stop) -> JobRun:
        raise RuntimeError("bug")

    def always(run: JobRun, stop: Stop) -> JobRun:
        seen.append("always")
        return run

    stages = [Stage("boom", boom), Stage("skipped", boom), Stage("final", always, always=True)]
    (run,) = Pipeline(_source(tmp_path, [1009]), stages, Stop()).run()
    assert isinstance(run.failure, InternalPilotError) and run.failure.code == ErrorCode.INTERNALPILOTPROBLEM
    assert "boom: RuntimeError: bug" in run.failure.message
    assert seen == ["always"]


def test_next_job_is_fetched_and_staged_in_while_a_payload_runs(tmp_path: Path) -> None:
    """With two jobs in flight, job 2 is staged in while job 1's payload is still running."""
    reporter = FakeReporter()
    second_staged = threading.Event()

    class Payload(FakePayload):
        def start(self, run, stop=None):  # type: ignore[no-untyped-def]
            if run.job.panda_id == 2001:
                assert second_staged.wait(30), "job 2 was not staged in while job 1 ran"
            return super().start(run)

    class SignallingStager(FakeInputStager):
        def stage_in(self, run, *args):  # type: ignore[no-untyped-def]
            if run.job.panda_id == 2002:
                second_staged.set()
            return super().stage_in(run)

    stages, _ = _stages(tmp_path, reporter, Payload(), stage_in=SignallingStager())
    runs = Pipeline(_source(tmp_path, [2001, 2002]), standard_stages(stages), Stop(), in_flight=2).run()
    assert [r.job.panda_id for r in runs] == [2001, 2002]
    assert all(r.failure is None for r in runs)


def test_one_job_in_flight_fetches_the_next_only_after_the_report(tmp_path: Path) -> None:
    """With one job in flight the second job is fetched only after the first is reported."""
    reporter = FakeReporter()
    order: list[str] = []
    inner = _source(tmp_path, [3001, 3002])

    def retrieve(stop: Stop) -> JobRun | None:
        order.append(f"fetch finals={len([u for u in reporter.updates if u.final])}")
        return inner(stop)

    stages, _ = _stages(tmp_path, reporter, FakePayload())
    Pipeline(retrieve, standard_stages(stages), Stop(), in_flight=1).run()
    assert order == ["fetch finals=0", "fetch finals=1", "fetch finals=2"]


def test_retrieval_error_ends_the_pilot_cleanly(tmp_path: Path) -> None:
    """A PilotError from retrieval stops fetching; it is kept as retrieve_error and no job runs."""

    def retrieve(stop: Stop) -> JobRun | None:
        raise PilotError("dispatcher unreachable")

    pipeline = Pipeline(retrieve, [Stage("x", lambda r, s: r)], Stop())
    assert pipeline.run() == []
    assert pipeline.retrieve_error is not None and pipeline.retrieve_error.code == ErrorCode.GENERALERROR


def _run_bounded(pipeline: Pipeline) -> list[JobRun]:
    """Run the pipeline on a thread; fail (instead of hanging the suite) when it does not end."""
    results: list[list[JobRun]] = []
    thread = threading.Thread(target=lambda: results.append(pipeline.run()), daemon=True)
    thread.start()
    thread.join(timeout=30.0)
    assert not thread.is_alive(), "the pipeline hung"
    return results[0]


def test_retrieval_crash_ends_the_pilot_after_the_jobs_taken(tmp_path: Path) -> None:
    """A bug in the job source (a bare KeyError) ends retrieval as INTERNALPILOTPROBLEM; taken jobs still finish."""
    reporter = FakeReporter()
    inner = _source(tmp_path, [1201])
    calls: list[int] = []

    def retrieve(stop: Stop) -> JobRun | None:
        calls.append(1)
        if len(calls) > 1:
            raise KeyError("PandaID")
        return inner(stop)

    stages, _ = _stages(tmp_path, reporter, FakePayload())
    pipeline = Pipeline(retrieve, standard_stages(stages), Stop())
    (run,) = _run_bounded(pipeline)
    assert run.job.panda_id == 1201 and run.final_sent and reporter.states(1201) == ["starting", "running", "finished"]
    assert isinstance(pipeline.retrieve_error, InternalPilotError)
    assert pipeline.retrieve_error.code == ErrorCode.INTERNALPILOTPROBLEM


def test_failing_on_done_callback_does_not_stop_the_next_jobs(tmp_path: Path) -> None:
    """A callback that raises for a finished job is logged; the next jobs still run and are reported."""
    reporter = FakeReporter()
    stages, _ = _stages(tmp_path, reporter, FakePayload())
    seen: list[int] = []

    def on_done(run: JobRun) -> None:
        seen.append(run.job.panda_id)
        raise RuntimeError("callback bug")

    pipeline = Pipeline(_source(tmp_path, [1301, 1302]), standard_stages(stages), Stop(), on_done=on_done)
    runs = _run_bounded(pipeline)
    assert [r.job.panda_id for r in runs] == [1301, 1302] == seen
    assert all(r.final_sent for r in runs)


def test_signal_while_the_final_update_is_retried_ends_the_report_promptly(tmp_path: Path) -> None:
    """A signal that comes while the final update is retried (server down, 10 min retry) cuts the retries to the
    stopping deadline: the report ends, the update is kept on disk for the next pilot."""
    stop = Stop()

    class DownThenSignal(FakeReporter):
        def update_job(self, update: JobUpdate) -> UpdateAnswer:
            if update.final:
                stop.set(SigTermError("SIGTERM"))
            return super().update_job(update)

    reporter = DownThenSignal(fail_final=1000)
    policy = FinalRetry(deadline=600.0, first_delay=1.0, max_delay=1.0, stopping_deadline=0.0)
    stages, _ = _stages(tmp_path, reporter, FakePayload())
    stages = attrs.evolve(stages, final_retry=policy)
    (run,) = _run_bounded(Pipeline(_source(tmp_path, [1401]), standard_stages(stages), stop))
    assert not run.final_sent and reporter.fail_final == 999
    assert FinalStore(tmp_path / "state").pending() == [1401]


def test_stop_keeps_first_reason_and_reaches_children() -> None:
    """The first reason wins; a child stop is set by its parent, also when made after the parent was set."""
    parent = Stop()
    child = parent.child()
    assert parent.set(SigTermError("first"))
    assert not parent.set(PandaKillError("second"))
    assert child.is_set() and child.reason is not None and child.reason.message == "first"
    late = parent.child()
    assert late.is_set() and late.reason is parent.reason
    own = Stop().child()
    own.set(PandaKillError())
    assert own.reason is not None and own.reason.code == ErrorCode.PANDAKILL


@pytest.mark.parametrize("count", [5])
def test_many_jobs_are_all_reported_in_order(tmp_path: Path, count: int) -> None:
    """Several jobs in a multi-job pilot are all reported finished, in order."""
    reporter = FakeReporter()
    stages, _ = _stages(tmp_path, reporter, FakePayload())
    ids = list(range(4001, 4001 + count))
    runs = Pipeline(_source(tmp_path, ids), standard_stages(stages), Stop(), in_flight=2).run()
    assert [r.job.panda_id for r in runs] == ids
    assert [reporter.final(i).state for i in ids] == ["finished"] * count
