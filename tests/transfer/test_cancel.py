"""A stop reaches the copies under way: each copytool family ends a running copy within seconds.

Real parts: a big file on the XRootD server throttled to ``SLOW_RATE`` (its ``XrdThrottle`` plugin: 240 MB take
20 s), read by the real ``xrdcp`` command, the XRootD Python client (``CopyProcess``, and the streamed ``File``
reads), gfal2's Python binding (``filecopy`` and its POSIX-like reads) and rucio-clients against the real Rucio
server (an RSE on the slow server); the local ``cp``/``mv`` with a big file on a tmpfs of their own. The stop is the
pilot's :class:`~pilotlib.stop.Stop`, set with SIGTERM's error once the first bytes have arrived. Each test
asserts that the result came back within seconds of the stop, that its error is the stop's reason (SIGTERM 1201),
that nothing of the copy is left in the work directory and that nothing is written there afterwards.

pilot3 does not cancel a copy under way: ``pilot/util/container.py`` (``execute``, line 124) waits in
``communicate(timeout)`` and kills the process group only at the timeout (``kill_all``, line 507), and
``pilot/copytool/rucio.py`` (``copy_in``, line 121) checks ``graceful_stop`` only before each file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures.rucio import RucioServer
from fixtures.xrootd import XRootDServer

from pilotlib.errors import Direction, ErrorCode, error_for_signal
from pilotlib.stop import Stop
from pilotlib.transfer import Copytool, TransferRequest, TransferResult
from pilotlib.transfer.copytools import CpCopytool, GfalCopytool, MvCopytool, XrdcpCopytool
from pilotlib.transfer.copytools.rucio import RucioCopytool

pytestmark = pytest.mark.integration

BIG = 240_000_000
"""Bytes of the slow file: 20 s through the slow server, so a copy is surely under way when the stop comes."""
PROMPT = 4.0
"""Seconds a cancellable copy may take to end after the stop."""
SLOW_RSE = "SLOW_SCRATCHDISK"


@pytest.fixture(scope="module")
def big_data() -> bytes:
    """The slow file's content."""
    return os.urandom(BIG)


@pytest.fixture(scope="module")
def big_file(xrootd_slow_server: XRootDServer, big_data: bytes) -> tuple[str, str]:
    """``cancel/big.dat`` on the slow server: its path and adler32."""
    xrootd_slow_server.put("cancel/big.dat", big_data)
    return "cancel/big.dat", f"{zlib.adler32(big_data):08x}"


def _files(workdir: Path) -> list[Path]:
    return sorted(p for p in workdir.rglob("*") if p.is_file())


def _stop_when_under_way(stop: Stop, workdir: Path, stopped: list[float]) -> threading.Thread:
    """Set ``stop`` (SIGTERM) as soon as a file in ``workdir`` holds data (the copy is under way), else after 15 s."""

    def watch() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in _files(workdir)):
            time.sleep(0.02)
        stopped.append(time.monotonic())
        stop.set(error_for_signal(15))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _run_stopped(tool: Copytool, request: TransferRequest, workdir: Path, watch: Path | None = None
                 ) -> tuple[TransferResult, float, float]:
    """Transfer ``request`` with a stop set once data arrived (in ``watch``, default ``workdir``); the result, the
    seconds from the stop to the result, and the seconds the copy had run when it was stopped."""
    stop, stopped = Stop(), []
    started = time.monotonic()
    watcher = _stop_when_under_way(stop, watch or workdir, stopped)
    (result,) = tool.transfer([request], workdir, stop)
    ended = time.monotonic()
    watcher.join(20)
    assert stopped, "the stop was never set"
    return result, ended - stopped[0], stopped[0] - started


def _assert_cancelled(result: TransferResult, after_stop: float, workdir: Path, bound: float = PROMPT) -> None:
    """The copy failed with SIGTERM's code within ``bound`` seconds of the stop and left nothing behind, now or a
    second later (no copy goes on writing)."""
    assert result.error is not None and result.error_code == ErrorCode.SIGTERM, result.error
    assert after_stop < bound, f"the copy ended {after_stop:.1f} s after the stop"
    assert _files(workdir) == []
    time.sleep(1.0)
    assert _files(workdir) == [], "something went on writing into the work directory"


def _get(lfn: str, url: str, checksum: str | None) -> TransferRequest:
    return TransferRequest(lfn=lfn, direction=Direction.STAGE_IN, source=url, destination=lfn, filesize=BIG,
                           checksum=("adler32", checksum) if checksum else None, timeout=600)


def _xrdcp_processes(target: Path) -> list[int]:
    """PIDs of processes whose command line names ``target`` (the xrdcp copying into it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(target).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


CASES: dict[str, tuple[Callable[[], Copytool], str, bool]] = {
    # name: (copytool, door, with the expected checksum)
    "xrdcp-command": (lambda: XrdcpCopytool("command"), "root", False),
    "xrootd-copyprocess": (lambda: XrdcpCopytool("python"), "root", False),
    "xrootd-stream": (lambda: XrdcpCopytool("python"), "root", True),
    "gfal-filecopy-root": (GfalCopytool, "root", False),
    "gfal-filecopy-http": (GfalCopytool, "http", False),
    "gfal-stream-http": (GfalCopytool, "http", True),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.reliability("faults", "storage",
                         "slow download cut off by the stop: no partial file, no copy process left")
def test_stop_cancels_a_slow_download(case: str, xrootd_slow_server: XRootDServer, big_file: tuple[str, str],
                                      tmp_path: Path) -> None:
    """A 20-second download from the throttled server, stopped once its first bytes arrived, ends within 3 s with
    the stop's reason (SIGTERM 1201); no partial file is left and no copy process lives on."""
    make, door, with_checksum = CASES[case]
    path, adler = big_file
    url = xrootd_slow_server.root_url(path) if door == "root" else xrootd_slow_server.http_url(path)
    tool = make()
    assert tool.unusable_reason() is None
    result, after_stop, ran = _run_stopped(tool, _get("big.dat", url, adler if with_checksum else None), tmp_path)
    assert ran < 15, "the copy never wrote a byte"
    _assert_cancelled(result, after_stop, tmp_path)
    assert _xrdcp_processes(tmp_path / "big.dat") == []


@pytest.mark.reliability("faults", "storage", "slow upload cut off by the stop: no partial file on the storage")
def test_stop_cancels_a_slow_xrootd_upload(xrootd_slow_server: XRootDServer, tmp_path: Path) -> None:
    """An upload through the XRootD client to the throttled server ends within 3 s of the stop with SIGTERM's code;
    the output stays in the work directory and no partial file is left on the storage (persist-on-close)."""
    (tmp_path / "out.dat").write_bytes(os.urandom(BIG))
    name = f"cancel/up-{time.monotonic_ns()}.dat"
    request = TransferRequest(lfn="out.dat", direction=Direction.STAGE_OUT, source="out.dat",
                              destination=xrootd_slow_server.root_url(name), filesize=BIG, timeout=600)
    stop, stopped = Stop(), []
    timer = threading.Timer(1.5, lambda: (stopped.append(time.monotonic()), stop.set(error_for_signal(15))))
    timer.start()
    (result,) = XrdcpCopytool("python").transfer([request], tmp_path, stop)
    after_stop = time.monotonic() - stopped[0]
    assert result.error is not None and result.error_code == ErrorCode.SIGTERM, result.error
    assert after_stop < PROMPT
    assert (tmp_path / "out.dat").stat().st_size == BIG
    deadline = time.monotonic() + 5
    while xrootd_slow_server.local(name).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not xrootd_slow_server.local(name).exists()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 200 MB tmpfs (a file system of its own, so ``mv`` copies across file systems)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("make", [CpCopytool, MvCopytool], ids=["cp", "mv"])
@pytest.mark.reliability("faults", "storage", "slow local copy cut off by the stop: no partial file")
def test_stop_ends_a_local_copy(make: Callable[[], Copytool], small_fs: Path, tmp_path: Path) -> None:
    """A local copy of 160 MB from another file system (``mv`` across file systems copies too), stopped once its
    first chunk is written, ends within 3 s with SIGTERM's code, before the whole file was copied, leaving no
    ``.part``; ``mv`` keeps its source."""
    source = small_fs / "big.dat"
    with open(source, "wb") as out:
        for _ in range(20):
            out.write(os.urandom(8_000_000))
    work = tmp_path / "work"
    work.mkdir()
    request = TransferRequest(lfn="big.dat", direction=Direction.STAGE_IN, source=f"file://{source}",
                              destination="big.dat", filesize=160_000_000, timeout=600)
    result, after_stop, _ = _run_stopped(make(), request, work)
    _assert_cancelled(result, after_stop, work)
    assert source.stat().st_size == 160_000_000


@pytest.fixture(scope="module")
def slow_rse(rucio_server: RucioServer, xrootd_slow_server: XRootDServer, big_data: bytes) -> str:
    """``SLOW_SCRATCHDISK`` on the slow server (xrootd protocol: rucio-clients runs ``xrdcp``), holding the big
    file as ``tests:big.dat`` at its deterministic path."""
    client = rucio_server.client()
    client.add_rse(SLOW_RSE)
    client.add_protocol(SLOW_RSE, {
        "scheme": "root", "hostname": "127.0.0.1", "port": int(xrootd_slow_server.port), "prefix": "//cancel/",
        "impl": "rucio.rse.protocols.xrootd.Default",
        "domains": {"lan": {"read": 1, "write": 1, "delete": 1}, "wan": {"read": 1, "write": 1, "delete": 1}},
    })
    client.set_local_account_limit("root", SLOW_RSE, 10**12)
    scope = rucio_server.scope
    digest = hashlib.md5(f"{scope}:big.dat".encode(), usedforsecurity=False).hexdigest()
    xrootd_slow_server.put(f"cancel/{scope}/{digest[0:2]}/{digest[2:4]}/big.dat", big_data)
    client.add_replicas(SLOW_RSE, [{"scope": scope, "name": "big.dat", "bytes": BIG,
                                     "adler32": f"{zlib.adler32(big_data):08x}"}])
    return SLOW_RSE


@pytest.mark.reliability("faults", "storage",
                         "slow Rucio download cut off by the stop: xrdcp child killed, nothing left")
def test_stop_ends_a_slow_rucio_download(rucio_server: RucioServer, slow_rse: str, tmp_path: Path) -> None:
    """rucio-clients has no cancel, but its xrootd protocol copies with an ``xrdcp`` child: once stopped, the copytool
    kills that child (the one writing into its scratch folder) and the download ends within seconds with SIGTERM's
    code; its scratch folder (the partial download) is removed and stays removed, and no xrdcp lives on."""
    request = TransferRequest(lfn="big.dat", direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:big.dat",
                              destination="big.dat", scope=rucio_server.scope, filesize=BIG, ddmendpoint=slow_rse,
                              timeout=600)
    tool = RucioCopytool(client_factory=rucio_server.client)
    result, after_stop, ran = _run_stopped(tool, request, tmp_path)
    assert ran < 15, "the download never wrote a byte"
    _assert_cancelled(result, after_stop, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert _xrdcp_processes(tmp_path) == []
