"""End to end against the local PanDA server: the grid pilot runs real payloads, stages files, reports.

Real parts: the dispatcher client over HTTP to the devserver, the pipeline, the payload runner and diagnosis,
StageIn/StageOut with checksums and the log tarball, the installed ``cp`` copytool (one input directory serves
every job: ``mv`` would move it away).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main
from apps.grid_pilot.cli import parse_settings
from apps.grid_pilot.compose import run_grid_pilot
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.stop import Stop
from pilotlib.transfer.paths import deterministic_path
from pilotlib.workflow import Outcome

from .helpers import final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs; no storages: the places)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _argv(server: DevServer, tmp_path: Path, *extra: str) -> list[str]:
    make_inputs(tmp_path / "in")
    return ["-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"), "--input-dir",
            str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
            "--heartbeat", "0.2", "--log-level", "INFO", *extra]


def _stored(tmp_path: Path, lfn: str) -> Path:
    return tmp_path / "storage" / deterministic_path("e2e", lfn)


def _log_names(tmp_path: Path) -> list[str]:
    with tarfile.open(_stored(tmp_path, "log.tgz")) as tar:
        return tar.getnames()


def test_good_job_reports_starting_running_finished(panda_server: DevServer, tmp_path: Path) -> None:
    """A job runs end to end: the server saw starting, running and finished with the right final fields."""
    panda_server.add_job(job_definition(8001, sleep=1.0))
    assert main(_argv(panda_server, tmp_path)) == 0
    states = [u["state"] for u in panda_server.updates(8001)]
    assert states[0] == "starting" and "running" in states and states[-1] == "finished"
    final = final_update(panda_server.updates(8001))
    assert int(final["pilotErrorCode"]) == 0 and int(final["transExitCode"]) == 0
    xml = json.loads(str(final["xml"]))
    assert set(xml) == {"out.dat", "log.tgz"}
    assert xml["out.dat"]["surl"] == "file://" + str(_stored(tmp_path, "out.dat"))
    assert _stored(tmp_path, "out.dat").read_bytes() == b"input data\n"
    assert json.loads(str(final["metaData"])) == {"exitCode": 0, "exitMsg": "OK"}
    assert len(str(final["pilotTiming"]).split("|")) == 6
    assert panda_server.final_state(8001) == "finished"
    names = _log_names(tmp_path)
    assert any(n.endswith("payload.stdout") for n in names) and not any(n.endswith("in.dat") for n in names)
    with tarfile.open(_stored(tmp_path, "log.tgz")) as tar:
        (member,) = [m for m in names if m.endswith("/pilotlog.txt")]
        handle = tar.extractfile(member)
        assert handle is not None
        job_log = handle.read().decode()
    # the job's own story is in its log tarball: its records, marked with its PandaID, from stage-in to stage-out
    assert "job=8001" in job_log and "stage-in" in job_log.lower() and "job=-" not in job_log
    # the job's work directory is cleaned once its final update is acknowledged; the record that the final state was
    # delivered is in the pilot's state directory, apart from the work directory
    assert list((tmp_path / "work" / "8001").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "work" / "pilot-state" / "8001").iterdir()) == ["final_update.json.sent"]


@pytest.mark.parametrize(
    ("definition", "codes"),
    [
        (job_definition(8002, exit_code=3, env="MSG=boom"), (ErrorCode.PAYLOADEXECUTIONFAILURE,)),
        (job_definition(8003, env="SELF_KILL=1"), (ErrorCode.KILLSIGNAL, ErrorCode.PAYLOADEXECUTIONFAILURE)),
        # pilot3 pilot/api/data.py reports a missing local output as MISSINGOUTPUTFILE (1165)
        (job_definition(8004, env="NO_OUTPUT=1"), (ErrorCode.MISSINGOUTPUTFILE,)),
    ],
    ids=["exit-code", "killed-by-signal", "missing-output"],
)
def test_payload_failures_are_reported_with_their_code(
    panda_server: DevServer, tmp_path: Path, definition: dict[str, str], codes: tuple[ErrorCode, ...]
) -> None:
    """A failing payload is reported failed with its code; the log is staged out all the same."""
    panda_id = int(definition["PandaID"])
    panda_server.add_job(definition)
    assert main(_argv(panda_server, tmp_path)) == 0
    final = final_update(panda_server.updates(panda_id))
    assert final["state"] == "failed"
    assert int(final["pilotErrorCode"]) in codes, final["pilotErrorDiag"]
    if panda_id == 8002:
        assert int(final["transExitCode"]) == 3
    assert _stored(tmp_path, "log.tgz").is_file()


def test_stage_in_failure_is_reported_and_the_log_staged_out(panda_server: DevServer, tmp_path: Path) -> None:
    """A missing input fails the job with MISSINGINPUTFILE (1331: pilot3 ``pilot/copytool/common.py`` maps "No such
    file or directory" on stage-in to it); the payload never runs; the log is staged out."""
    panda_server.add_job(job_definition(8005))
    argv = _argv(panda_server, tmp_path)
    (tmp_path / "in" / "in.dat").unlink()
    assert main(argv) == 0
    final = final_update(panda_server.updates(8005))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.MISSINGINPUTFILE
    assert not (tmp_path / "work" / "8005" / "payload.stdout").exists()
    assert _stored(tmp_path, "log.tgz").is_file()


def test_stage_out_failure_is_reported(panda_server: DevServer, tmp_path: Path) -> None:
    """An output place that cannot be written fails the job with STAGEOUTFAILED (1137); the log could not be staged
    out either, so the exit status is 1."""
    panda_server.add_job(job_definition(8006))
    argv = _argv(panda_server, tmp_path)
    (tmp_path / "storage").write_text("not a directory")
    assert main(argv) == 1
    final = final_update(panda_server.updates(8006))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.STAGEOUTFAILED


def test_tobekilled_kills_the_payload_with_pandakill(panda_server: DevServer, tmp_path: Path) -> None:
    """The server's tobekilled answer to a heartbeat stops the running payload; the job fails with PANDAKILL."""
    panda_server.add_job(job_definition(8007, sleep=120))
    settings = parse_settings(_argv(panda_server, tmp_path))
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(run_grid_pilot(settings, Stop())))
    thread.start()
    deadline = time.monotonic() + 60
    while "running" not in [u["state"] for u in panda_server.updates(8007)]:
        assert time.monotonic() < deadline, "payload never reported running"
        time.sleep(0.05)
    panda_server.set_command(8007, "tobekilled")
    thread.join(90)
    assert not thread.is_alive(), "the payload was not killed"
    final = final_update(panda_server.updates(8007))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.PANDAKILL
    assert outcome[0].runs[0].payload is not None and outcome[0].runs[0].payload.exit_code != 0
    assert _stored(tmp_path, "log.tgz").is_file()


def test_tobekilled_at_start_fails_the_job_before_its_payload(panda_server: DevServer, tmp_path: Path) -> None:
    """tobekilled in the answer to the starting update fails the job with PANDAKILL; the payload never runs."""
    panda_server.add_job(job_definition(8010))
    panda_server.set_command(8010, "tobekilled")
    assert main(_argv(panda_server, tmp_path)) == 0
    final = final_update(panda_server.updates(8010))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.PANDAKILL
    assert not (tmp_path / "work" / "8010" / "payload.stdout").exists()


def test_server_down_at_final_update_is_recovered_by_the_next_pilot(panda_server: DevServer, tmp_path: Path) -> None:
    """When the final update cannot be sent, it stays on disk; the next pilot in the same place sends it."""
    panda_server.add_job(job_definition(8008))
    panda_server.inject_fault("updateJob", "http503", times=1000)
    cfg = tmp_path / "pilot.toml"
    cfg.write_text("final_retry = 1\n")
    assert main([*_argv(panda_server, tmp_path), "--config", str(cfg)]) == 1
    assert panda_server.final_state(8008) is None
    assert (tmp_path / "work" / "pilot-state" / "8008" / "final_update.json").is_file()
    panda_server.faults.clear()  # the server is back (the job and its updates stay)
    assert main(_argv(panda_server, tmp_path)) == 0
    final = final_update(panda_server.updates(8008))
    assert final["state"] == "finished" and panda_server.final_state(8008) == "finished"
    assert (tmp_path / "work" / "pilot-state" / "8008" / "final_update.json.sent").is_file()


def test_sigterm_mid_payload_fails_job_with_sigterm_and_exits_143(panda_server: DevServer, tmp_path: Path) -> None:
    """SIGTERM to the pilot process mid-payload: exit status 143, job failed 1201, log staged out, payload gone."""
    panda_server.add_job(job_definition(8009, sleep=120))
    argv = _argv(panda_server, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while "running" not in [u["state"] for u in panda_server.updates(8009)]:
            assert time.monotonic() < deadline and proc.poll() is None, "payload never reported running"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # a second signal changes nothing
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()[-2000:]
    final = final_update(panda_server.updates(8009))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.SIGTERM
    assert _stored(tmp_path, "log.tgz").is_file()
    assert b"job 8009: failed pilotErrorCode=1201" in out
