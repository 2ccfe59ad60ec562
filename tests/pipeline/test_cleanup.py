"""Work-directory clean-up: a finished job's directory is removed once its final update is acknowledged and its log
staged out; kept when the final is not acknowledged, when the server says nocleanup, or when clean-up is off."""

from __future__ import annotations

from pathlib import Path

from pilotlib.panda.base import ServerCommand
from pilotlib.pipeline import JobRun, Pipeline, Stop
from pilotlib.recovery import FinalStore, RetryPolicy
from pilotlib.report import PilotIdentity
from pilotlib.stages import Stages, clean_workdir, standard_stages

from .fakes import FakePayload, FakeReporter, FakeStageIn, FakeStageOut, make_job


def _run(tmp_path: Path, reporter: FakeReporter, cleanup: bool = True) -> tuple[JobRun, Path]:
    workdir = tmp_path / "work" / "1001"
    (workdir / "sub").mkdir(parents=True)
    (workdir / "payload.stdout").write_text("out\n")
    (workdir / "sub" / "big.root").write_bytes(b"x" * 1000)
    stage_out = FakeStageOut()
    stages = Stages(
        stage_in=FakeStageIn(),  # type: ignore[arg-type]
        payload=FakePayload(),
        stage_out=stage_out,  # type: ignore[arg-type]
        log_out=stage_out,  # type: ignore[arg-type]
        reporter=reporter,
        identity=PilotIdentity(site_name="SITE", node="node1", pilot_id="p1"),
        store=FinalStore(tmp_path / "work"),
        final_retry=RetryPolicy(deadline=0.0),
        heartbeat_interval=0.05,
        cleanup=cleanup,
    )
    jobs = [JobRun(make_job(1001), workdir)]
    (run,) = Pipeline(lambda stop: jobs.pop() if jobs else None, standard_stages(stages), Stop()).run()
    return run, workdir


def test_acknowledged_job_directory_is_removed_but_its_final_record_kept(tmp_path: Path) -> None:
    """After an acknowledged final and a staged-out log only ``final_update.json.sent`` is left."""
    run, workdir = _run(tmp_path, FakeReporter())
    assert run.final_sent
    assert sorted(p.name for p in workdir.iterdir()) == ["final_update.json.sent"]


def test_unacknowledged_final_keeps_everything_for_the_next_pilot(tmp_path: Path) -> None:
    """A final update the server never acknowledged keeps the directory (and the pending final) as it was."""
    run, workdir = _run(tmp_path, FakeReporter(fail_final=100))
    assert not run.final_sent
    names = {p.name for p in workdir.iterdir()}
    assert {"payload.stdout", "sub", "final_update.json"} <= names


def test_server_nocleanup_keeps_the_directory(tmp_path: Path) -> None:
    """The server's ``nocleanup`` back-channel command keeps that job's directory."""
    run, workdir = _run(tmp_path, FakeReporter(command=ServerCommand.NOCLEANUP))
    assert run.final_sent and (workdir / "sub" / "big.root").is_file()


def test_cleanup_off_keeps_the_directory(tmp_path: Path) -> None:
    """With clean-up off (``--no-cleanup``) the directory is kept."""
    run, workdir = _run(tmp_path, FakeReporter(), cleanup=False)
    assert run.final_sent and (workdir / "payload.stdout").is_file()


def test_clean_workdir_tolerates_a_missing_directory(tmp_path: Path) -> None:
    """Cleaning a directory that is already gone logs and returns (never raises)."""
    clean_workdir(tmp_path / "gone")
