"""The log's stage-out once the pilot stops: it still runs, but within its deadline, also when the stop comes while
the log is under way.

``Stop.later(seconds)`` gives the log a stop set that long after the pilot's (pilotlib/stages.py ``do_log``, with
``LOG_STOP_DEADLINE``); given to :func:`~pilotlib.transfer.logtar.stage_out_log`, it ends ``tar`` and cancels the
copy. Real parts: ``tar``, the XRootD server throttled to 12 MB/s (``xrootd_slow_server``) and the XRootD Python
client's upload. Before, a SIGTERM during the log's copy waited for the whole copy (its timeout grows with the
size: 400 s plus 1 s per MB, two attempts).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from fixtures.xrootd import XRootDServer

from pilotlib.errors import ErrorCode, error_for_signal
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.stop import Stop
from pilotlib.transfer import CopytoolRegistry
from pilotlib.transfer.copytools import XrdcpCopytool
from pilotlib.transfer.logtar import LogCreationTimeoutError, create_log_tarball, stage_out_log
from pilotlib.transfer.paths import StorageProtocol, deterministic_path
from pilotlib.transfer.stageout import StageOut

LOG = FileSpec(lfn="log.9301.job.log.tgz", kind=FileKind.LOG, scope="e2e", ddmendpoint="SLOW_DISK")
BIG = 120_000_000
"""Bytes of random data in the work directory: the tarball's upload takes 10 s at the throttled rate."""
GRACE = 1.0
"""Seconds the log is given after the pilot's stop in these tests (the pilot gives 40 s)."""


def test_later_is_set_that_long_after_its_parent_and_released_never() -> None:
    """A later stop is set ``seconds`` after its parent (counted from now when the parent is set already), with the
    parent's reason; once released, it is never set."""
    parent = Stop()
    later = parent.later(0.3)
    assert not later.wait(0.4)  # the parent is not set: nothing counts yet
    begin = time.monotonic()
    parent.set(error_for_signal(15))
    assert later.wait(5.0) and 0.25 <= time.monotonic() - begin < 2.0
    assert later.reason is parent.reason
    already = parent.later(0.2)
    assert already.wait(5.0)  # counted from now: the parent was set before
    released = parent.later(0.2)
    parent.release(released)
    assert not released.wait(0.5)


@pytest.mark.reliability("faults", "storage", "log upload to a slow storage cut off by the stop: no partial log left")
def test_a_stop_during_the_log_upload_ends_it_within_the_logs_deadline(xrootd_slow_server: XRootDServer,
                                                                        tmp_path: Path) -> None:
    """SIGTERM while the log tarball is being uploaded to the throttled server: the upload is cancelled GRACE
    seconds after the stop (not when its 10 s copy ends), the result carries SIGTERM's code, and no partial log
    is left on the storage."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "blob").write_bytes(os.urandom(BIG))
    job = Job(panda_id=9301, log=LOG)
    place = f"logstop-{time.monotonic_ns()}"
    storage = StorageProtocol(xrootd_slow_server.endpoint, f"/{place}")
    tool = XrdcpCopytool("python")
    registry = CopytoolRegistry(entry_points=[], factories={"xrdcp": lambda: tool})
    stage = StageOut(registry, ["xrdcp"], work, storages={"SLOW_DISK": (storage,)}, attempts=1)
    remote = xrootd_slow_server.local(place) / deterministic_path("e2e", LOG.lfn)
    pilot_stop, stopped = Stop(), []

    def stop_when_under_way() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (remote.exists() and remote.stat().st_size > 0):
            time.sleep(0.05)
        stopped.append(time.monotonic())
        pilot_stop.set(error_for_signal(15))

    watcher = threading.Thread(target=stop_when_under_way, daemon=True)
    watcher.start()
    log_stop = pilot_stop.later(GRACE)
    result = stage_out_log(stage, job, timeout=600, stop=log_stop)
    ended = time.monotonic()
    watcher.join()
    assert stopped, "the upload never started"
    assert result.error is not None and result.error_code == ErrorCode.SIGTERM, result.error
    assert GRACE <= ended - stopped[0] < GRACE + 5.0, f"the log ended {ended - stopped[0]:.1f} s after the stop"
    deadline = time.monotonic() + 5
    while remote.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not remote.exists(), "the cancelled upload left its partial log"


def test_a_stop_ends_the_tarball(tmp_path: Path) -> None:
    """``tar`` packing a work directory is ended at once by the log's stop (LOGCREATIONTIMEOUT 1376), its partial
    tarball removed; before, it ran to its timeout (600 s)."""
    work = tmp_path / "work"
    work.mkdir()
    with open(work / "blob", "wb") as out:
        for _ in range(8):
            out.write(os.urandom(50_000_000))  # 400 MB of random data: several seconds of gzip
    stop = Stop()
    timer = threading.Timer(0.5, stop.set, args=(error_for_signal(15),))
    timer.start()
    begin = time.monotonic()
    try:
        create_log_tarball(work, Job(panda_id=9302, log=LOG), timeout=600, stop=stop)
    except LogCreationTimeoutError as exc:
        assert exc.code is ErrorCode.LOGCREATIONTIMEOUT
    else:
        raise AssertionError("the tarball was made although the stop was set")
    assert time.monotonic() - begin < 5.0
    assert not (work / LOG.lfn).exists()
