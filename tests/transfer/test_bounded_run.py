"""The bounded run of the copytools' calls (``parallel_map``): a copy that cannot be cancelled is waited for with a
bound, then given up, and its partial file removed, also when its thread writes it after all.

The calls here are plain functions blocked on events (a backend call that ignores every cancel), so that the
bounds can be asserted (the upper ones with a loaded machine's margin, far below the 10 s a call blocks); the real
clients' cancels are tested in ``test_cancel.py``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from pilotlib.errors import Direction, ErrorCode, TransferError, error_for_signal
from pilotlib.stop import Stop
from pilotlib.transfer import TransferRequest, TransferResult
from pilotlib.transfer.base import failed_result
from pilotlib.transfer.copytools import _common
from pilotlib.transfer.copytools._common import parallel_map

WAIT = 0.5


@pytest.fixture(autouse=True)
def _short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """CANCEL_WAIT shortened to WAIT seconds."""
    monkeypatch.setattr(_common, "CANCEL_WAIT", WAIT)


def _request() -> TransferRequest:
    return TransferRequest(lfn="f.dat", direction=Direction.STAGE_IN, source="root://h//f.dat", destination="f.dat")


def _result(error: TransferError | None = None) -> TransferResult:
    request = _request()
    if error is None:
        return TransferResult(lfn="f.dat", direction=request.direction, tool="t", url=request.source, local_path="")
    return failed_result(request, "t", error)


@pytest.mark.reliability("faults", "storage",
                         "a copy that never finishes and ignores its cancel: given up, partial file removed")
def test_a_timed_out_call_is_cancelled_then_given_up_after_the_bound(tmp_path: Path) -> None:
    """At its timeout a call is asked to cancel; one that ignores it is waited for CANCEL_WAIT more, then given up
    with the timeout result and its partial file removed at once (not left for its thread)."""
    partial = tmp_path / "f.dat"
    release, cancelled, discarded = threading.Event(), [], []

    def stuck(i: int) -> TransferResult:
        partial.write_bytes(b"partial")
        release.wait(10)
        return _result()

    begin = time.monotonic()
    try:
        (result,) = parallel_map(stuck, [0.3], 1, lambda i: _result(TransferError("timed out", Direction.STAGE_IN)),
                                 cancel=cancelled.append, discard=lambda i: (discarded.append(i), partial.unlink()))
        took = time.monotonic() - begin
    finally:
        release.set()
    assert result.error is not None and result.error.message == "timed out"
    assert cancelled == [0] and discarded == [0] and not partial.exists()
    assert 0.3 + WAIT - 0.05 < took < 0.3 + WAIT + 2.0  # a loaded machine's margin; the call itself blocks 10 s


@pytest.mark.reliability("faults", "storage", "a copy that never finishes: cancelled at its timeout")
def test_a_call_that_honours_its_cancel_ends_at_once_with_the_timeout_error() -> None:
    """A call that ends when cancelled is not waited for longer; the timeout, not the call's own error, is its
    result; nothing is discarded (the call cleaned up itself)."""
    cancel = threading.Event()

    def honours(i: int) -> TransferResult:
        cancel.wait(10)
        return _result(TransferError("operation canceled", Direction.STAGE_IN))

    discarded: list[int] = []
    begin = time.monotonic()
    (result,) = parallel_map(honours, [0.3], 1, lambda i: _result(TransferError("timed out", Direction.STAGE_IN)),
                             cancel=lambda i: cancel.set(), discard=discarded.append)
    assert time.monotonic() - begin < 0.3 + WAIT / 2
    assert result.error is not None and result.error.message == "timed out" and discarded == []


@pytest.mark.reliability("faults", "storage", "a stuck copy at the stop: given up, its late file removed")
def test_after_a_stop_a_stuck_call_is_given_up_and_its_late_file_removed(tmp_path: Path) -> None:
    """Once the stop is set, a call that goes on is given up CANCEL_WAIT seconds later; a call not started never
    starts; when the stuck call writes its file after all, its thread removes it (nothing is left behind)."""
    stop = Stop()
    late_file = tmp_path / "f.dat"
    release, calls = threading.Event(), []

    def stuck(i: int) -> TransferResult:
        calls.append(i)
        release.wait(10)
        late_file.write_bytes(b"written after the stop")
        return _result()

    discards: list[int] = []

    def discard(i: int) -> None:
        late_file.unlink(missing_ok=True)
        discards.append(i)

    threading.Timer(0.2, lambda: stop.set(error_for_signal(15))).start()
    begin = time.monotonic()
    given_up = _result(TransferError("given up", Direction.STAGE_IN))
    results = parallel_map(stuck, [30.0, 30.0], 1, lambda i: given_up, stop=stop, discard=discard)
    took = time.monotonic() - begin
    assert results == [given_up, given_up] and calls == [0]
    assert 0.2 + WAIT - 0.05 < took < 0.2 + WAIT + 2.0  # a loaded machine's margin; the call blocks 10 s
    assert discards == [0]  # given up: its partial file removed at once
    release.set()
    deadline = time.monotonic() + 5
    while len(discards) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert discards == [0, 0] and not late_file.exists() and calls == [0]
    assert stop.reason is not None and stop.reason.code == ErrorCode.SIGTERM


@pytest.mark.reliability("faults", "storage",
                         "a stuck copy command at the stop: killed although a descendant holds its pipes")
def test_a_stopped_command_ends_at_once_even_when_an_escaped_descendant_holds_its_pipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command (a 300 s sleep) is killed as soon as the stop is set: its process group dies, and run_command
    returns within about a second more even though a descendant that left the group (setsid) keeps its stdout open;
    the command's (failed) status comes back, not a timeout."""
    monkeypatch.setattr(_common, "_DRAIN_SECONDS", 0.5)
    pidfile, grouped = tmp_path / "escaped.pid", tmp_path / "grouped.pid"
    script = f"setsid bash -c 'echo $$ > {pidfile}; exec sleep 300' & echo $$ > {grouped}; sleep 300"
    stop, stopped = Stop(), []

    def set_stop() -> None:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and grouped.exists()) and time.monotonic() < deadline:
            time.sleep(0.01)
        stopped.append(time.monotonic())
        stop.set(error_for_signal(15))

    threading.Thread(target=set_stop, daemon=True).start()
    try:
        done = _common.run_command(["bash", "-c", script], 300.0, Direction.STAGE_IN, what="f", stop=stop)
        took = time.monotonic() - stopped[0]
        assert done.returncode == -9 and took < 0.5 + 1.0 + 0.5
        assert not Path(f"/proc/{int(grouped.read_text())}").exists()
    finally:
        if pidfile.exists():  # the escaped sleep is ours (the test started it): end it
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), 9)
