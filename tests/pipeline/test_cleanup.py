"""Work-directory clean-up: a finished job's directory is removed once its final update is acknowledged and its log
staged out; kept when the final is not acknowledged, when the log was not staged out, when the server says
nocleanup, or when clean-up is off."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pilotlib.errors import Direction
from pilotlib.panda.base import ServerCommand
from pilotlib.pipeline import JobRun, Pipeline
from pilotlib.recovery import FinalRetry, FinalStore
from pilotlib.report import PilotIdentity
from pilotlib.stages import Stages, clean_workdir, standard_stages
from pilotlib.stop import Stop, StopSignal
from pilotlib.transfer import TransferResult
from pilotlib.transfer.errors import StorageUnavailableError

from .fakes import FakeInputStager, FakeOutputStager, FakePayload, FakeReporter, make_job

#: What the job's directory holds before the pipeline runs (relative path -> bytes).
CONTENT = {"payload.stdout": b"out\n", "sub/big.root": b"x" * 1000}


class LogWatchingStageOut(FakeOutputStager):
    """Records what the work directory held when the log was staged out; fails the log when ``fail_log``."""

    def __init__(self, fail_log: bool = False) -> None:
        super().__init__()
        self.fail_log = fail_log
        self.seen_at_log: dict[str, bytes] = {}

    def stage_out_log(self, run: JobRun, timeout_cap: float | None = None,
                      stop: StopSignal | None = None) -> TransferResult:
        self.seen_at_log = _content(run.workdir)
        result = super().stage_out_log(run, timeout_cap, stop)
        if self.fail_log:
            return TransferResult(lfn=result.lfn, direction=Direction.STAGE_OUT, tool="fake", url="", local_path="",
                                  error=StorageUnavailableError("log storage down", Direction.STAGE_OUT))
        return result


def _content(workdir: Path) -> dict[str, bytes]:
    """Every file under ``workdir``, by relative path."""
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


def _run(tmp_path: Path, reporter: FakeReporter, cleanup: bool = True,
         stage_out: LogWatchingStageOut | None = None) -> tuple[JobRun, Path, FinalStore, LogWatchingStageOut]:
    workdir = tmp_path / "work" / "1001"
    for name, data in CONTENT.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    stage_out = stage_out or LogWatchingStageOut()
    store = FinalStore(tmp_path / "state")  # the pilot's state root, apart from the work root
    stages = Stages(
        stage_in=FakeInputStager(),  # type: ignore[arg-type]
        payload=FakePayload(),
        stage_out=stage_out,  # type: ignore[arg-type]
        log_out=stage_out,  # type: ignore[arg-type]
        reporter=reporter,
        identity=PilotIdentity(site_name="SITE", node="node1", pilot_id="p1"),
        store=store,
        final_retry=FinalRetry(deadline=0.0),
        heartbeat_interval=0.05,
        cleanup=cleanup,
    )
    jobs = [JobRun(make_job(1001), workdir)]
    (run,) = Pipeline(lambda stop: jobs.pop() if jobs else None, standard_stages(stages), Stop()).run()
    return run, workdir, store, stage_out


def test_acknowledged_job_directory_is_removed_but_its_final_record_kept(tmp_path: Path) -> None:
    """After an acknowledged final and a staged-out log the work directory is emptied, and the record that the final
    state was delivered stays in the state directory: the log was staged out while the whole directory was still
    there (the log holds it), and the final was acknowledged first."""
    reporter = FakeReporter()
    run, workdir, store, stage_out = _run(tmp_path, reporter)
    assert run.final_sent and store.is_sent(1001) and store.pending() == []
    assert reporter.final(1001).state == "finished"
    assert stage_out.log_calls == [1001] and stage_out.seen_at_log == CONTENT
    assert list(workdir.iterdir()) == []
    assert store.path(1001).with_name("final_update.json.sent").is_file()


def test_unacknowledged_final_keeps_everything_for_the_next_pilot(tmp_path: Path) -> None:
    """A final update the server never acknowledged keeps the directory (and the pending final) as it was."""
    reporter = FakeReporter(fail_final=100)
    run, workdir, store, _ = _run(tmp_path, reporter)
    assert not run.final_sent and not [u for u in reporter.updates if u.final]
    assert _content(workdir) == CONTENT
    assert store.pending() == [1001] and not store.is_sent(1001)
    assert store.path(1001).is_file()


def test_log_not_staged_out_keeps_the_directory(tmp_path: Path) -> None:
    """An acknowledged final whose log could not be staged out keeps the directory: it is all that is left of the
    job's files (the job is reported failed with the log's error)."""
    reporter = FakeReporter()
    run, workdir, store, _ = _run(tmp_path, reporter, stage_out=LogWatchingStageOut(fail_log=True))
    assert run.final_sent and store.is_sent(1001)
    assert reporter.final(1001).state == "failed"
    assert _content(workdir) == CONTENT


def test_server_nocleanup_keeps_the_directory(tmp_path: Path) -> None:
    """The server's ``nocleanup`` back-channel command (on a heartbeat) keeps that job's directory whole, although
    the final was acknowledged and the log staged out."""
    reporter = FakeReporter(command=ServerCommand.NOCLEANUP)
    run, workdir, store, stage_out = _run(tmp_path, reporter)
    assert "running" in reporter.states(1001)  # a heartbeat was answered with the command
    assert run.final_sent and store.is_sent(1001) and stage_out.log_calls == [1001]
    assert _content(workdir) == CONTENT


def test_cleanup_off_keeps_the_directory(tmp_path: Path) -> None:
    """With clean-up off (``--no-cleanup``) the directory is kept whole, although the final was acknowledged and the
    log staged out."""
    run, workdir, store, stage_out = _run(tmp_path, FakeReporter(), cleanup=False)
    assert run.final_sent and store.is_sent(1001) and stage_out.log_calls == [1001]
    assert _content(workdir) == CONTENT


def test_clean_workdir_tolerates_a_missing_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Cleaning a directory that is already gone logs a warning naming it and returns (never raises)."""
    with caplog.at_level(logging.WARNING, logger="pilotlib.stages"):
        clean_workdir(tmp_path / "gone")
    (record,) = [r for r in caplog.records if r.name == "pilotlib.stages"]
    assert record.levelno == logging.WARNING and "work directory not cleaned" in record.getMessage()
    assert str(tmp_path / "gone") in record.getMessage()
    assert not (tmp_path / "gone").exists()
