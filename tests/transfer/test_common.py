"""The copytools' shared helpers: commands killed with their process group at the timeout, bounded parallel runs."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer import TransferRequest, TransferResult, TransferTimeoutError, failed_result
from pilotlib.transfer.copytools import _common
from pilotlib.transfer.copytools._common import parallel_map, run_command


@pytest.mark.reliability("faults", "storage",
                         "a copy command that never finishes: killed with its children at the timeout")
def test_command_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    """A command past its timeout raises TransferTimeoutError (1152 on stage-out) and its children die too."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    with pytest.raises(TransferTimeoutError) as err:
        run_command(["bash", "-c", script], 1.0, Direction.STAGE_OUT, what="f")
    assert err.value.code == ErrorCode.STAGEOUTTIMEOUT
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break  # killed, waiting to be reaped by init
        time.sleep(0.05)
    else:
        pytest.fail("child of the timed-out command survived")


@pytest.mark.reliability("faults", "storage",
                         "a copy command that never finishes, a descendant holding its pipes: timeout still prompt")
def test_command_timeout_returns_when_an_escaped_descendant_holds_its_pipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timed-out command whose descendant left the process group (setsid) and keeps stdout open still ends with
    TransferTimeoutError (1151) promptly: the pipes are drained for a bounded time only, not until that process ends."""
    monkeypatch.setattr(_common, "_DRAIN_SECONDS", 0.5)
    pidfile = tmp_path / "escaped.pid"
    script = f"setsid bash -c 'echo $$ > {pidfile}; exec sleep 300' & sleep 300"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_command(["bash", "-c", script], 1.0, Direction.STAGE_IN, what="f")
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        thread.join(timeout=120.0)
        assert not thread.is_alive(), "run_command waited for the escaped process"
        assert len(errors) == 1 and isinstance(errors[0], TransferTimeoutError)
        assert errors[0].code == ErrorCode.STAGEINTIMEOUT
    finally:
        if pidfile.exists():  # the escaped sleep is ours (the test started it): end it
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), 9)
        thread.join(timeout=30.0)


def test_command_output_and_status() -> None:
    """A finished command gives its exit status and output."""
    done = run_command(["bash", "-c", "echo out; echo err >&2; exit 3"], 30, Direction.STAGE_IN)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def _request(i: int) -> TransferRequest:
    return TransferRequest(lfn=f"f{i}", direction=Direction.STAGE_IN, source="s", destination=f"f{i}")


def test_parallel_map_bounds_concurrency_and_keeps_order() -> None:
    """At most `parallel` calls run at once, and results come back in index order."""
    running = 0
    peak = 0
    lock = threading.Lock()

    def func(i: int) -> TransferResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return failed_result(_request(i), "t", TransferTimeoutError("x", Direction.STAGE_IN))

    results = parallel_map(func, [30.0] * 12, 3, lambda i: pytest.fail("no timeout expected"))
    assert [r.lfn for r in results] == [f"f{i}" for i in range(12)]
    assert peak <= 3


@pytest.mark.reliability("faults", "storage", "a hung copy: given up at its timeout, the next copies still run")
def test_parallel_map_gives_up_a_hung_call_and_goes_on() -> None:
    """A call blocked past its timeout is reported by on_timeout; the next calls still run in its slot."""
    release = threading.Event()

    def func(i: int) -> TransferResult:
        if i == 0:
            release.wait(60)
        return failed_result(_request(i), "ok", TransferTimeoutError("x", Direction.STAGE_IN))

    def on_timeout(i: int) -> TransferResult:
        return failed_result(_request(i), "timed-out", TransferTimeoutError("t", Direction.STAGE_IN))

    try:
        results = parallel_map(func, [0.5, 30.0, 30.0], 1, on_timeout)
    finally:
        release.set()
    assert [r.tool for r in results] == ["timed-out", "ok", "ok"]
