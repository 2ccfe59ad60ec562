"""End to end: SIGTERM while a slow real copy is under way ends the grid pilot within seconds, not when the copy ends.

Real parts: the grid pilot process (``python -m apps.grid_pilot``), the local PanDA server (devserver, v1 API),
the XRootD server throttled to ``SLOW_RATE`` bytes per second (its ``XrdThrottle`` plugin) and the ``xrdcp``
copytool through the XRootD Python client (a streamed, checksummed read on stage-in; a ``CopyProcess`` on
stage-out). The big file is all zeros, so that its copy is slow (50 s at the throttled rate) while the log tarball
of a work directory holding it stays small. The pilot's documented shutdown budget after a signal is two minutes;
with the copy cancelled it needs only seconds, and the tests assert less than ``BUDGET`` seconds (before the
cancel, the pilot waited for the copy: 50 s and more).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.xrootd import XRootDServer

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.transfer.paths import deterministic_path

from .helpers import PAYLOAD, final_update, job_definition

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SIZE = 600_000_000
"""Bytes of the slow file (zeros): 50 s through the throttled server."""
BUDGET = 30.0
"""Seconds from SIGTERM to the pilot's exit that the tests allow (the documented budget is 120 s)."""


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs; no storages: the places)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _zeros(path: Path, size: int = SIZE) -> str:
    """Make ``path`` a sparse file of ``size`` zero bytes; its adler32."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.truncate(size)
    value, chunk = 1, bytes(8 * 1024 * 1024)
    for _ in range(size // len(chunk)):
        value = zlib.adler32(chunk, value)
    return f"{zlib.adler32(bytes(size % len(chunk)), value):08x}"


def _big_job(panda_id: int, adler: str) -> dict[str, str]:
    """The helpers' job whose ``in.dat`` is the big file (the payload copies it to ``out.dat``)."""
    job = job_definition(panda_id, sleep=0.1)
    payload = PAYLOAD.encode()
    job["fsize"] = f"{SIZE},{len(payload)}"
    job["checksum"] = f"ad:{adler},ad:{zlib.adler32(payload):08x}"
    return job


def _pilot(server: DevServer, tmp_path: Path, inputs: str, outputs: str, tool_in: str, tool_out: str
           ) -> subprocess.Popen[bytes]:
    argv = ["-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"), "--input-dir",
            inputs, "--output-dir", outputs, "--copytool-in", tool_in, "--copytool-out", tool_out,
            "--heartbeat", "1", "--log-level", "INFO"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _terminate_when(proc: subprocess.Popen[bytes], under_way: Callable[[], bool]) -> tuple[float, bytes, bytes]:
    """SIGTERM ``proc`` once ``under_way()``; the seconds until it exited, its stdout and stderr."""
    try:
        _until(lambda: under_way() or proc.poll() is not None, "the slow copy to be under way")
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=150)
        return time.monotonic() - signalled, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _assert_sigterm_failure(server: DevServer, panda_id: int, proc: subprocess.Popen[bytes], shutdown: float,
                            err: bytes) -> None:
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert shutdown < BUDGET, f"the pilot took {shutdown:.1f} s to stop"
    final = final_update(server.updates(panda_id))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.SIGTERM
    assert server.final_state(panda_id) == "failed"


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM during a slow stage-in")
def test_sigterm_during_a_slow_stage_in_cancels_the_copy(panda_server: DevServer, xrootd_slow_server: XRootDServer,
                                                         tmp_path: Path) -> None:
    """SIGTERM while a 50-second stage-in from the throttled XRootD server is under way: the copy is cancelled,
    the pilot exits with 143 in less than BUDGET seconds, the server records the job failed with SIGTERM 1201, and
    the log (staged out) holds no partial input."""
    xrootd_slow_server.put("e2e-in/payload.sh", PAYLOAD.encode())  # makes the folder, owned by the server's user
    adler = _zeros(xrootd_slow_server.local("e2e-in/in.dat"))
    os.chown(xrootd_slow_server.local("e2e-in/in.dat"), *_owner(xrootd_slow_server))
    panda_server.add_job(_big_job(8201, adler))
    proc = _pilot(panda_server, tmp_path, xrootd_slow_server.root_url("e2e-in"), str(tmp_path / "storage"),
                  "xrdcp", "cp")
    partial = tmp_path / "work" / "8201" / "in.dat.part"
    shutdown, out, err = _terminate_when(proc, lambda: _size(partial) > 0)
    _assert_sigterm_failure(panda_server, 8201, proc, shutdown, err)
    log_tgz = tmp_path / "storage" / deterministic_path("e2e", "log.tgz")
    with tarfile.open(log_tgz) as tar:
        names = tar.getnames()
    assert any(n.endswith("/pilotlog.txt") for n in names)
    assert not [n for n in names if "in.dat" in n], names  # the partial copy was removed before the tarball
    assert b"job 8201: failed pilotErrorCode=1201" in out


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM during a slow stage-out")
def test_sigterm_during_a_slow_stage_out_cancels_the_copy(panda_server: DevServer, xrootd_slow_server: XRootDServer,
                                                          tmp_path: Path) -> None:
    """SIGTERM while a 50-second stage-out to the throttled XRootD server is under way: the upload is cancelled and
    its partial file removed from the storage, the log is still staged out there, the pilot exits with 143 in less
    than BUDGET seconds and the server records the job failed with SIGTERM 1201."""
    inputs = tmp_path / "in"
    adler = _zeros(inputs / "in.dat")
    (inputs / "payload.sh").write_text(PAYLOAD)
    panda_server.add_job(_big_job(8202, adler))
    place = f"e2e-out-{time.monotonic_ns()}"
    proc = _pilot(panda_server, tmp_path, str(inputs), xrootd_slow_server.root_url(place), "cp", "xrdcp")
    remote = xrootd_slow_server.local(place) / deterministic_path("e2e", "out.dat")
    shutdown, out, err = _terminate_when(proc, lambda: _size(remote) > 0)
    _assert_sigterm_failure(panda_server, 8202, proc, shutdown, err)
    assert not remote.exists(), "the cancelled upload left its partial file"
    assert (xrootd_slow_server.local(place) / deterministic_path("e2e", "log.tgz")).is_file()
    assert b"job 8202: failed pilotErrorCode=1201" in out


def _owner(server: XRootDServer) -> tuple[int, int]:
    """The uid and gid owning the server's data folder (the server's user)."""
    stat = server.data.stat()
    return stat.st_uid, stat.st_gid
