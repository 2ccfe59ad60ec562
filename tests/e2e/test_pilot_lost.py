"""A pilot killed with SIGKILL, end to end: real grid-pilot processes against the local PanDA server.

The next pilot started in the same work area (the same state directory) finds the lost pilot's jobs in its journal and
reports them failed with KILLSIGNAL (1200) once, after staging their log out and before taking new work; a final
update that was being sent when the pilot died is sent again and answered as panda-server answers a repeat
(``alreadydone``); a pilot that cannot deliver an earlier final update exits 79.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.panda.base import JobUpdate
from pilotlib.recovery import FinalStore
from pilotlib.transfer.paths import deterministic_path

from .helpers import final_updates as _finals
from .helpers import job_definition, make_inputs
from .helpers import pilot_argv as _argv
from .helpers import run_grid_pilot as _run
from .helpers import spawn_grid_pilot as _spawn

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs; no storages: the places)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[None]:
    """Ends the processes still running in the test's folders (the payload of a pilot killed with SIGKILL is not
    this test's subject and may outlive it)."""
    yield
    for proc in Path("/proc").iterdir():
        try:
            cwd = (proc / "cwd").resolve()
            if proc.name.isdigit() and cwd.is_relative_to(tmp_path):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _kill_when(proc: subprocess.Popen[bytes], condition: Callable[[], bool], what: str) -> None:
    """SIGKILL the pilot as soon as ``condition()`` holds (polled, 60 s at most)."""
    try:
        deadline = time.monotonic() + 60
        while not condition():
            assert proc.poll() is None, f"the pilot ended before {what}: {proc.communicate()[1].decode()[-2000:]}"
            assert time.monotonic() < deadline, f"never saw {what}"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def _stored(tmp_path: Path, lfn: str) -> Path:
    return tmp_path / "storage" / deterministic_path("e2e", lfn)


def _member(tar_path: Path, suffix: str) -> str:
    with tarfile.open(tar_path) as tar:
        (name,) = [n for n in tar.getnames() if n.endswith(suffix)]
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read().decode(errors="replace")


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL mid-payload: next pilot reports the job failed once")
@pytest.mark.usefixtures("leftovers")
def test_job_of_a_killed_pilot_is_reported_failed_once_before_new_work(panda_server: DevServer,
                                                                       tmp_path: Path) -> None:
    """A pilot SIGKILLed mid-payload: the next pilot in the same work area stages the job's work directory out as its
    log tarball (with the job's own pilot log), reports the job failed with KILLSIGNAL (1200) naming the lost pilot
    and itself, and only then asks for new work; a third pilot reports nothing more for it."""
    panda_server.add_job(job_definition(8101, sleep=120))
    argv = _argv(panda_server, tmp_path)
    first = _spawn(argv)
    _kill_when(first, lambda: "running" in [u["state"] for u in panda_server.updates(8101)], "the payload running")
    assert _finals(panda_server, 8101) == []
    calls_before = len(panda_server.calls())

    status, second_pid, err = _run(argv)

    assert status == 0, err[-2000:]
    (final,) = _finals(panda_server, 8101)
    assert final["state"] == "failed" and int(str(final["pilotErrorCode"])) == ErrorCode.KILLSIGNAL
    diag = str(final["pilotErrorDiag"])
    assert f"grid-pilot-{first.pid} was lost" in diag and f"recovered by pilot grid-pilot-{second_pid}" in diag
    calls = panda_server.calls()[calls_before:]
    assert "getJob" in calls and calls.index("updateJob") < calls.index("getJob"), calls
    tarball = _stored(tmp_path, "log.tgz")
    assert tarball.is_file() and "log.tgz" in str(final["xml"])
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert {"payload.stdout", "out.dat", "jobReport.json"} <= {Path(n).name for n in names}, names  # the work dir
    assert "job=8101" in _member(tarball, "/pilotlog.txt")  # the lost pilot's own story of the job

    updates = len(panda_server.updates(8101))
    status, _pid, err = _run(argv)
    assert status == 0, err[-2000:]
    assert len(panda_server.updates(8101)) == updates and panda_server.ignored_updates(8101) == []
    assert list((tmp_path / "work" / "pilot-state" / "journal").glob("*.jsonl")) == []


@pytest.mark.reliability("faults", "server", "final update applied, answer lost: sent again, applied once")
@pytest.mark.usefixtures("leftovers")
def test_final_update_being_sent_when_the_pilot_died_is_sent_again(panda_server: DevServer, tmp_path: Path) -> None:
    """A pilot SIGKILLed after the server applied its final update but before the answer came: the next pilot sends
    it again; panda-server answers a repeat final update with the command ``alreadydone`` and does not apply it
    (``api/v1/pilot_api.py:649-662``, ``taskbuffer/db_proxy_mods/job_complex_module.py:182-190`` in 1.0.4), so the
    server's record holds one final state; the job is not reported again as lost."""
    panda_server.add_job(job_definition(8201, sleep=1.0))
    argv = _argv(panda_server, tmp_path, "--heartbeat", "600")  # no heartbeat between "running" and the final
    first = _spawn(argv)
    try:
        deadline = time.monotonic() + 60
        while "running" not in [u["state"] for u in panda_server.updates(8201)]:
            assert time.monotonic() < deadline and first.poll() is None, "payload never reported running"
            time.sleep(0.02)
        panda_server.inject_fault("updateJob", "apply_delay", times=1, seconds=15)  # the final update's answer
    except BaseException:
        first.kill()
        raise
    _kill_when(first, lambda: panda_server.final_state(8201) is not None, "the final update applied")
    state_dir = tmp_path / "work" / "pilot-state" / "8201"
    assert [p.name for p in state_dir.iterdir()] == [f"final_update.json.sending-{first.pid}"]

    status, _pid, err = _run(argv)

    assert status == 0, err[-2000:]
    (final,) = _finals(panda_server, 8201)
    assert final["state"] == "finished" and panda_server.final_state(8201) == "finished"
    (repeat,) = panda_server.ignored_updates(8201)
    assert repeat["answer"] == "alreadydone" and repeat["fields"]["state"] == "finished"
    assert repeat["fields"]["pilotID"] == final["pilotID"] == f"grid-pilot-{first.pid}"  # the same update, again
    assert sorted(p.name for p in state_dir.iterdir()) == ["final_update.json.sent"]


@pytest.mark.reliability("faults", "server", "503 on a recovered final update: kept on disk, exit 79")
def test_recovery_that_fails_ends_the_pilot_with_status_79(panda_server: DevServer, tmp_path: Path) -> None:
    """A pilot that cannot deliver an earlier pilot's final update (the server answers updateJob 503) still asks for
    new work, keeps the update on disk and exits 79 (COMMUNICATIONFAILURE's status, pilot3
    ``pilot/util/auxiliary.py`` ``get_error_code_translation_dictionary``)."""
    panda_server.add_job(job_definition(8301))
    assert panda_server.store.take_jobs(1, "grid-pilot-earlier")  # the earlier pilot had it
    store = FinalStore(tmp_path / "work" / "pilot-state")  # what a pilot that could not send its final update left
    pending = store.save(JobUpdate(8301, "finished", {"jobId": 8301, "state": "finished"}, final=True))
    panda_server.inject_fault("updateJob", "http503", times=1000)
    cfg = tmp_path / "pilot.toml"
    cfg.write_text("final_retry = 1\n")
    argv = [*_argv(panda_server, tmp_path), "--config", str(cfg)]
    calls_before = len(panda_server.calls())

    status, _pid, err = _run(argv)

    assert status == 79, err[-2000:]
    assert pending.is_file() and panda_server.final_state(8301) is None
    assert "getJob" in panda_server.calls()[calls_before:]


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL in harvester mode: lost job reported through files")
@pytest.mark.usefixtures("leftovers")
def test_harvester_mode_reports_the_lost_job_through_harvesters_files(tmp_path: Path) -> None:
    """Harvester mode: the job of a pilot SIGKILLed mid-payload is reported by the next pilot through the mode's
    reporter: ``worker_attributes.json`` says ``failed`` with KILLSIGNAL (1200), and the log tarball it made of the
    work directory is copied into the access point and declared as the job's ``log`` in ``event_status.dump.json``
    (as for any job, see test_harvester_access_point.py)."""
    prestaged = make_inputs(tmp_path / "prestaged")
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    (access_point / "HPCJobs.json").write_text(json.dumps({"9401": job_definition(9401, sleep=120)}))
    for lfn in ("in.dat", "payload.sh"):
        os.symlink(prestaged / lfn, access_point / lfn)
    (access_point / "worker_pandaids.json").write_text("[9401]")
    # --timefloor is in minutes: the next pilot waits about 1 s for a job of its own
    argv = ["--mode", "harvester", "--harvester-workdir", str(access_point), "-q", "Q", "-a", str(tmp_path / "work"),
            "--harvester-stageout", "harvester", "--max-jobs", "1", "--timefloor", "0.02", "--heartbeat", "0.2"]
    attributes = access_point / "worker_attributes.json"

    def running() -> bool:
        try:
            return json.loads(attributes.read_text()).get("jobStatus") == "running"
        except (OSError, ValueError):
            return False

    _kill_when(_spawn(argv), running, "the payload running")
    status, second_pid, err = _run(argv)
    assert status == 0, err[-2000:]
    reported = json.loads(attributes.read_text())
    assert reported["jobId"] == 9401 and reported["jobStatus"] == "failed"
    assert int(reported["pilotErrorCode"]) == ErrorCode.KILLSIGNAL
    assert f"recovered by pilot grid-pilot-{second_pid}" in reported["pilotErrorDiag"]
    declared = json.loads((access_point / "event_status.dump.json").read_text())["9401"]
    assert [(Path(e["path"]).name, e["type"]) for e in declared] == [("log.tgz", "log")]
    with tarfile.open(declared[0]["path"]) as tar:
        assert "payload.stdout" in {Path(n).name for n in tar.getnames()}
