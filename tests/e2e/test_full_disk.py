"""A full disk, end to end: real grid-pilot processes whose work area is a real small file system (a tmpfs mounted
for the test), against the local PanDA server.

What pilot3 does, and these tests hold the pilot to (PanDAWMS/pilot3, read for behaviour):

- ``pilot/control/job.py`` ``proceed_to_getjob`` (around line 1671): ``check_local_space`` (``pilot/util/monitoring.py``
  line ~838) runs before each ``getJob``; too little space asks for no job and ends the pilot with NOLOCALSPACE
  (1098), which ``pilot.py`` ``get_proper_exit_code`` makes the exit status 69 (``pilot/util/auxiliary.py``);
- ``pilot/user/atlas/diagnose.py``: an out-of-space payload is NOLOCALSPACE with priority over the other codes, and
  the local space is checked again (``pilot/util/workernode.py`` ``get_local_disk_space``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fixtures.smallfs import fill

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.reserve import RESERVE_NAME
from pilotlib.space import free_bytes
from pilotlib.transfer.paths import deterministic_path

from .helpers import adler32, final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
#: fills the work directory until the disk is full, then fails; its stderr is on the same full disk
FILL = b"""head -c 100000000 /dev/zero > fill
echo "ERROR: the payload could not write its output" >&2
exit 3
"""


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, maxwdir 100 MB)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online",
                                           "maxwdir": 100})


def _pilot(server: DevServer, tmp_path: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A real grid-pilot process (bounded: 120 s) on ``workdir``, inputs from ``tmp_path/in``, storage beside."""
    argv = [sys.executable, "-m", "apps.grid_pilot", "-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1",
            "-a", str(workdir), "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"),
            "--copytool", "cp", "--heartbeat", "0.5", "--free-space-limit", "1",
            "--free-space-limit-running", "1", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path)


def _filling_job(tmp_path: Path, panda_id: int) -> dict[str, str]:
    """A job whose one input is :data:`FILL`, run by ``sh``."""
    make_inputs(tmp_path / "in")
    (tmp_path / "in" / "fill.sh").write_bytes(FILL)
    definition = job_definition(panda_id)
    definition.update({"jobPars": "sh fill.sh", "inFiles": "fill.sh", "scopeIn": "e2e", "GUID": "g1",
                       "fsize": str(len(FILL)), "checksum": f"ad:{adler32(FILL)}", "ddmEndPointIn": "LOCAL"})
    return definition


def _stored_log(tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / "storage" / deterministic_path("e2e", "log.tgz")
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m) or open(os.devnull, "rb")).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.reliability("faults", "node", "work area full before the job: no job asked, 1098")
def test_a_full_work_area_asks_for_no_job_and_exits_with_nolocalspace(panda_server: DevServer, tmp_path: Path,
                                                                      small_fs: Path) -> None:
    """The work area has 0 bytes free: the pilot asks for no job (the server counted no getJob and still holds the
    job), ends with NOLOCALSPACE's exit status 69 and says 1098 in its summary."""
    make_inputs(tmp_path / "in")
    panda_server.add_job(job_definition(9101))
    fill(small_fs)
    assert free_bytes(small_fs) == 0
    done = _pilot(panda_server, tmp_path, small_fs)
    assert done.returncode == 69, done.stderr[-3000:]
    assert panda_server.request_count("getJob") == 0
    assert panda_server.updates(9101) == []
    assert "NoLocalSpaceError code=1098" in done.stdout
    assert "before asking for a job" in done.stdout


@pytest.mark.reliability("faults", "node", "job needs more disk than is free: 1098 before the payload")
def test_a_job_that_needs_more_than_is_free_fails_1098_before_its_payload(panda_server: DevServer,
                                                                          tmp_path: Path, small_fs: Path) -> None:
    """Space enough to ask (16 MiB > 1 MB) but the job's maxDiskCount (50 MB) is more than is free: the job fails
    with 1098 before its payload runs (no ``running`` update, no payload output in its log), its log is staged out
    and its final state reported; the exit status is 69."""
    make_inputs(tmp_path / "in")
    definition = job_definition(9102)
    definition["maxDiskCount"] = "50"
    panda_server.add_job(definition)
    done = _pilot(panda_server, tmp_path, small_fs)
    assert done.returncode == 69, done.stderr[-3000:]
    final = final_update(panda_server.updates(9102))
    assert panda_server.final_state(9102) == "failed"
    assert int(final["pilotErrorCode"]) == ErrorCode.NOLOCALSPACE
    assert "before the payload" in str(final["pilotErrorDiag"])
    assert "running" not in [u["state"] for u in panda_server.updates(9102)]
    names = _stored_log(tmp_path)
    assert not any(n.endswith("payload.stdout") for n in names)
    assert any(n.endswith("/pilotlog.txt") for n in names)


@pytest.mark.reliability("faults", "node", "payload fills the work area (small fs): 1098, log stored")
def test_a_payload_that_fills_the_disk_is_1098_and_its_pilot_log_is_staged_out(panda_server: DevServer,
                                                                                tmp_path: Path,
                                                                                small_fs: Path) -> None:
    """The payload fills the work area until ENOSPC and fails; its stderr could not be written (empty). The job is
    diagnosed 1098 from the file system's state; the log tarball cannot be made in the full work directory, so the
    job's own pilot log alone is staged out under the log's name; the final update reached the server; exit 69."""
    panda_server.add_job(_filling_job(tmp_path, 9103))
    done = _pilot(panda_server, tmp_path, small_fs, "--state-dir", str(tmp_path / "state"), "--no-cleanup")
    assert done.returncode == 69, done.stderr[-3000:]
    assert (small_fs / "9103" / "payload.stderr").read_bytes() == b""  # nothing of it could be written
    assert free_bytes(small_fs) < 1024 * 1024
    final = final_update(panda_server.updates(9103))
    assert panda_server.final_state(9103) == "failed"
    assert int(final["pilotErrorCode"]) == ErrorCode.NOLOCALSPACE, final["pilotErrorDiag"]
    assert "disk is full" in str(final["pilotErrorDiag"])
    names = _stored_log(tmp_path)
    assert list(names) == ["log/pilotlog.txt"]
    job_log = names["log/pilotlog.txt"].decode()
    assert "job=9103" in job_log and "code=1098" in job_log
    assert "log.tgz" in str(final["xml"])


@pytest.mark.reliability("faults", "node", "state directory on the full disk: final update still recorded")
def test_the_state_on_the_same_full_disk_still_records_the_final_update(panda_server: DevServer, tmp_path: Path,
                                                                        small_fs: Path) -> None:
    """The state directory is on the work area's file system (the default), which the payload fills: the reserve is
    released, so the final update is still written (and marked acknowledged) in the state directory, the job's own
    log keeps its records after the payload and is staged out, and the final state reached the server."""
    panda_server.add_job(_filling_job(tmp_path, 9104))
    done = _pilot(panda_server, tmp_path, small_fs)
    assert done.returncode == 69, done.stderr[-3000:]
    state = small_fs / "pilot-state"
    assert (state / "9104" / "final_update.json.sent").is_file()
    assert not (state / RESERVE_NAME).exists()  # released for it
    assert "state reserve released" in done.stderr
    final = final_update(panda_server.updates(9104))
    assert int(final["pilotErrorCode"]) == ErrorCode.NOLOCALSPACE, final["pilotErrorDiag"]
    job_log = (state / "pilotlog-9104.txt").read_text()
    assert "final update acknowledged panda_id=9104" in job_log
    stored = _stored_log(tmp_path)["log/pilotlog.txt"].decode()
    assert "job=9104" in stored and "code=1098" in stored


@pytest.mark.reliability("faults", "node", "ARC: placed job on a full work area: 1098")
def test_arc_a_placed_job_on_a_full_work_area_is_reported_failed_with_1098(tmp_path: Path, small_fs: Path) -> None:
    """ARC mode (pilot3's push mode: the check waits for the job, ``delayed_space_check``): the work area is full,
    so the placed job is read and fails with 1098 without running; its final state is in ``heartbeat.json``, its own
    pilot log is staged out as its log (``output.list`` names it), and the exit status is 69."""
    make_inputs(tmp_path / "in")
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job_definition(9105)))
    fill(small_fs)
    argv = [sys.executable, "-m", "apps.grid_pilot", "--mode", "arc", "--launch-dir", str(launch), "-a", str(small_fs),
            "--state-dir", str(tmp_path / "state"), "--input-dir", str(tmp_path / "in"), "--output-dir",
            str(tmp_path / "storage"), "--copytool", "mv", "--free-space-limit", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
    assert done.returncode == 69, done.stderr[-3000:]
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["jobId"] == 9105 and heartbeat["state"] == "failed"
    assert heartbeat["pilotErrorCode"] == ErrorCode.NOLOCALSPACE
    assert "before running the job" in heartbeat["pilotErrorDiag"]
    assert (tmp_path / "in" / "in.dat").exists()  # never staged in
    assert (launch / "output.list").read_text().startswith("log.tgz file://")
    job_log = _stored_log(tmp_path)["log/pilotlog.txt"].decode()
    assert "job failed before it started code=1098" in job_log


@pytest.mark.reliability("faults", "node", "state directory full, no reserve: final update says why no log")
def test_without_a_reserve_the_final_update_says_why_no_log_was_staged_out(panda_server: DevServer, tmp_path: Path,
                                                                           small_fs: Path) -> None:
    """No reserve (``--state-reserve 0``) and the state directory on the disk the payload fills: neither the log
    tarball nor the pilot log alone can be packed, so the final update (sent without a copy on disk) says why the
    log was not staged out; it still reached the server with 1098, and the exit status is 69."""
    panda_server.add_job(_filling_job(tmp_path, 9106))
    done = _pilot(panda_server, tmp_path, small_fs, "--state-reserve", "0")
    assert done.returncode == 69, done.stderr[-3000:]
    final = final_update(panda_server.updates(9106))
    assert panda_server.final_state(9106) == "failed"
    assert int(final["pilotErrorCode"]) == ErrorCode.NOLOCALSPACE
    diag = str(final["pilotErrorDiag"])
    assert "disk is full" in diag and "log not staged out" in diag and "could not be packed either" in diag
    assert not (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).exists()
    assert "final update not saved, sent without a copy on disk" in done.stderr
