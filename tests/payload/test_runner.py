"""PayloadRunner with real processes: exit, crash, monitors' kills, kill requests, stop event, wrapper, stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

from pilotlib.errors import ErrorCode
from pilotlib.payload import (
    FreeDiskMonitor,
    LoopingJobError,
    LoopingMonitor,
    MemoryLimitExceededError,
    MemoryMonitor,
    NoLocalSpaceError,
    PandaKillError,
    PayloadKilledError,
    PayloadRunner,
    PayloadStartError,
    ReachedMaxTimeError,
    StdinMode,
    StdoutSizeMonitor,
    StdoutTooBigError,
    UserDirTooLargeError,
    WalltimeMonitor,
    WorkdirSizeMonitor,
)

from ._helpers import wait_for_file, wait_gone
from .conftest import MakeCommand

FAST = {"poll_interval": 0.05, "sample_interval": 0.05, "grace": 5.0}

SLEEPER = """
    import pathlib, time
    pathlib.Path("ready").write_text("1")
    time.sleep(60)
"""


def test_exit_zero_output_to_files(make_command: MakeCommand) -> None:
    """A payload exiting 0 succeeds; its stdout and stderr land in the command's files; it runs in the work dir."""
    cmd = make_command("""
        import os, sys
        print("hello from", os.getcwd())
        print("oops", file=sys.stderr)
    """)
    result = PayloadRunner(cmd, **FAST).run()
    assert result.exit_code == 0
    assert result.signal is None
    assert result.error is None
    assert result.succeeded
    assert result.stdout.read_text() == f"hello from {cmd.workdir}\n"
    assert result.stderr.read_text() == "oops\n"
    assert result.ended >= result.started


def test_nonzero_exit_code(make_command: MakeCommand) -> None:
    """A non-zero exit status is reported as it is, without an error from the runner."""
    result = PayloadRunner(make_command("raise SystemExit(3)"), **FAST).run()
    assert result.exit_code == 3
    assert result.signal is None
    assert result.error is None
    assert not result.succeeded


@pytest.mark.reliability("faults", "node", "payload crashes by a signal (unit)")
@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_crash_by_signal(make_command: MakeCommand, sig: signal.Signals) -> None:
    """A payload dying of a signal gives that signal and no exit code."""
    cmd = make_command(f"import os, signal\nos.kill(os.getpid(), {int(sig)})\n")
    result = PayloadRunner(cmd, **FAST).run()
    assert result.signal == sig
    assert result.exit_code is None
    assert result.error is None


def test_start_failure(make_command: MakeCommand) -> None:
    """A program that cannot be executed gives PayloadStartError (1305)."""
    cmd = attrs.evolve(make_command("pass"), argv=("/nonexistent/trf",))
    with pytest.raises(PayloadStartError) as info:
        PayloadRunner(cmd).start()
    assert info.value.code == ErrorCode.PAYLOADEXECUTIONFAILURE
    assert "/nonexistent/trf" in str(info.value)


@pytest.mark.reliability("faults", "node", "payload loops (unit)")
def test_looping_payload_killed(make_command: MakeCommand) -> None:
    """A payload touching no file for longer than the looping limit is killed with LOOPINGJOB (1150) by SIGTERM."""
    cmd = make_command(SLEEPER)
    runner = PayloadRunner(cmd, monitors=[LoopingMonitor(limit=0.5, interval=0.1)], **FAST)
    result = runner.run()
    assert isinstance(result.error, LoopingJobError)
    assert result.error.code == 1150
    assert result.signal == signal.SIGTERM


@pytest.mark.reliability("faults", "node", "payload fills memory (unit)")
def test_memory_eater_killed(make_command: MakeCommand) -> None:
    """A payload whose PSS (from /proc) goes above the limit is killed with PAYLOADEXCEEDMAXMEM (1235)."""
    cmd = make_command("""
        import pathlib, time
        data = b"x" * (200 * 1024 * 1024)
        pathlib.Path("ready").write_text("1")
        time.sleep(60)
    """)
    runner = PayloadRunner(cmd, monitors=[MemoryMonitor(limit_kb=100 * 1024, interval=0.05)], **FAST)
    result = runner.run()
    assert isinstance(result.error, MemoryLimitExceededError)
    assert result.error.code == ErrorCode.PAYLOADEXCEEDMAXMEM
    assert result.usage.max_pss_kb > 100 * 1024
    assert result.usage.max_rss_kb > 100 * 1024


@pytest.mark.reliability("faults", "node", "payload floods its stdout (unit)")
def test_stdout_too_big(make_command: MakeCommand) -> None:
    """A payload whose stdout grows above the limit is killed with STDOUTTOOBIG (1106)."""
    cmd = make_command("""
        import sys, time
        sys.stdout.write("y" * 2_000_000)
        sys.stdout.flush()
        time.sleep(60)
    """)
    result = PayloadRunner(cmd, monitors=[StdoutSizeMonitor(limit_bytes=1_000_000, interval=0.05)], **FAST).run()
    assert isinstance(result.error, StdoutTooBigError)
    assert result.error.code == 1106


@pytest.mark.reliability("faults", "node", "payload fills its work directory (unit)")
def test_workdir_too_big(make_command: MakeCommand) -> None:
    """A payload filling its work directory above the limit is killed with USERDIRTOOLARGE (1104)."""
    cmd = make_command("""
        import pathlib, time
        pathlib.Path("sub").mkdir()
        pathlib.Path("sub/big.dat").write_bytes(b"z" * 2_000_000)
        time.sleep(60)
    """)
    result = PayloadRunner(cmd, monitors=[WorkdirSizeMonitor(limit_bytes=1_000_000, interval=0.05)], **FAST).run()
    assert isinstance(result.error, UserDirTooLargeError)
    assert result.error.code == 1104


def test_walltime_reached(make_command: MakeCommand) -> None:
    """A payload running longer than the wall-time limit is killed with REACHEDMAXTIME (1213)."""
    cmd = make_command(SLEEPER)
    result = PayloadRunner(cmd, monitors=[WalltimeMonitor(max_seconds=0.3, interval=0.05)], **FAST).run()
    assert isinstance(result.error, ReachedMaxTimeError)
    assert result.error.code == 1213
    assert result.wall_seconds >= 0.3


@pytest.mark.reliability("faults", "node", "disk full under the payload (unit)")
def test_free_disk_too_low(make_command: MakeCommand) -> None:
    """Free space below the minimum kills the payload with NOLOCALSPACE (1098)."""
    cmd = make_command(SLEEPER)
    result = PayloadRunner(cmd, monitors=[FreeDiskMonitor(min_free_bytes=10**18, interval=0.05)], **FAST).run()
    assert isinstance(result.error, NoLocalSpaceError)
    assert result.error.code == 1098


@pytest.mark.reliability("faults", "node", "payload ignores SIGTERM (unit)")
def test_sigterm_ignored_then_killed(make_command: MakeCommand) -> None:
    """A payload ignoring SIGTERM gets SIGKILL after the grace period; the monitor's error is kept."""
    cmd = make_command("""
        import pathlib, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path("ready").write_text("1")
        time.sleep(60)
    """)
    runner = PayloadRunner(
        cmd, monitors=[WalltimeMonitor(max_seconds=0.0, interval=0.0)], poll_interval=0.05, grace=0.3
    )
    runner.start()
    wait_for_file(cmd.workdir / "ready")
    result = runner.wait()
    assert result.signal == signal.SIGKILL
    assert isinstance(result.error, ReachedMaxTimeError)


def _fork_tree_source() -> str:
    return """
        import os, pathlib, subprocess, sys, time
        kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
        # a grandchild in a process group of its own, still in the payload's session
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
        pathlib.Path("pids").write_text(" ".join(str(k.pid) for k in [*kids, other]))
        time.sleep(60)
    """


@pytest.mark.reliability("faults", "node", "payload forks a tree (unit)")
def test_kill_reaches_whole_tree(make_command: MakeCommand) -> None:
    """Killing a payload that forked children kills them all, including one in another process group."""
    cmd = make_command(_fork_tree_source())
    runner = PayloadRunner(cmd, **FAST)
    runner.start()
    pids = [int(p) for p in wait_for_file(cmd.workdir / "pids").split()]
    done = threading.Event()
    threading.Thread(target=lambda: (runner.request_kill(PandaKillError("tobekilled")), done.set())).start()
    result = runner.wait()
    assert done.is_set()
    assert isinstance(result.error, PandaKillError)
    assert result.error.code == ErrorCode.PANDAKILL
    assert wait_gone(pids)


@pytest.mark.reliability("faults", "node", "payload leaves children (unit)")
def test_leftover_children_killed_after_exit(make_command: MakeCommand) -> None:
    """Processes a payload leaves behind when it exits are killed; the payload's exit code stands."""
    cmd = make_command("""
        import pathlib, subprocess, sys
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path("pids").write_text(str(kid.pid))
    """)
    result = PayloadRunner(cmd, **FAST).run()
    pid = int((cmd.workdir / "pids").read_text())
    assert result.exit_code == 0
    assert result.error is None
    assert wait_gone([pid])


@pytest.mark.reliability("faults", "node", "payload starts its own session (setsid): ended, nothing else touched")
def test_a_process_that_left_the_session_is_killed_and_no_other(make_command: MakeCommand) -> None:
    """A payload child that calls ``setsid`` (a daemon: it leaves the payload's session, as pilot3's orphan cleanup
    in ``pilot/util/processes.py`` ``kill_orphans`` has to catch) is killed when the payload ends: it carries the
    payload's mark. A process the pilot did not start, with the same command line, is never signalled."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        cmd = make_command("""
            import os, pathlib, subprocess, sys
            kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
            pathlib.Path("pids").write_text(str(kid.pid))
        """)
        result = PayloadRunner(cmd, **FAST).run()
        pid = int((cmd.workdir / "pids").read_text())
        assert result.exit_code == 0 and result.error is None
        assert wait_gone([pid])
        assert bystander.poll() is None  # untouched
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_event_kills(make_command: MakeCommand) -> None:
    """Setting the pilot's stop event kills the payload with PayloadKilledError (KILLSIGNAL 1200)."""
    cmd = make_command(SLEEPER)
    runner = PayloadRunner(cmd, **FAST)
    runner.start()
    wait_for_file(cmd.workdir / "ready")
    stop = threading.Event()
    stop.set()
    result = runner.wait(stop)
    assert isinstance(result.error, PayloadKilledError)
    assert result.error.code == ErrorCode.KILLSIGNAL
    assert result.signal == signal.SIGTERM


def test_soft_kill_lets_payload_finish(make_command: MakeCommand) -> None:
    """A soft kill sends SIGTERM; a payload handling it finishes cleanly and no error is recorded."""
    cmd = make_command("""
        import pathlib, signal, sys, threading
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: done.set())
        pathlib.Path("ready").write_text("1")
        done.wait(60)
        print("finished gently")
    """)
    runner = PayloadRunner(cmd, **FAST)
    runner.start()
    wait_for_file(cmd.workdir / "ready")
    runner.request_soft_kill()
    result = runner.wait()
    assert result.exit_code == 0
    assert result.error is None
    assert result.stdout.read_text() == "finished gently\n"


@attrs.frozen
class _EnvWrapper:
    """Prefixes the command with ``env WRAPPED=yes`` and records what it was given."""

    seen: list[tuple[tuple[str, ...], Path]] = attrs.field(factory=list)

    def wrap(
        self, argv: tuple[str, ...], env: Mapping[str, str], workdir: Path
    ) -> tuple[tuple[str, ...], Mapping[str, str]]:
        self.seen.append((argv, workdir))
        return ("/usr/bin/env", "WRAPPED=yes", *argv), {**env, "OUTER": "1"}

    def outside_sessions(self) -> tuple[int, ...]:
        return ()


def test_command_wrapper_applied(make_command: MakeCommand) -> None:
    """The command wrapper's argv and env are what runs."""
    cmd = make_command("import os\nprint(os.environ['WRAPPED'], os.environ['OUTER'])\n")
    wrapper = _EnvWrapper()
    result = PayloadRunner(cmd, wrapper=wrapper, **FAST).run()
    assert result.stdout.read_text() == "yes 1\n"
    assert wrapper.seen == [(cmd.argv, cmd.workdir)]


def test_stdin_pipe(make_command: MakeCommand) -> None:
    """With StdinMode.PIPE the pipeline can feed the running payload through ``runner.stdin``."""
    cmd = make_command("import sys\nfor line in sys.stdin:\n    print('got', line.strip())\n")
    runner = PayloadRunner(cmd, stdin=StdinMode.PIPE, **FAST)
    runner.start()
    assert runner.stdin is not None
    runner.stdin.write(b"range-1\nrange-2\n")
    runner.stdin.close()
    result = runner.wait()
    assert result.stdout.read_text() == "got range-1\ngot range-2\n"


def test_cpu_time_and_usage_measured(make_command: MakeCommand) -> None:
    """The result carries the CPU time used (from the reaped process) and memory figures from /proc."""
    cmd = make_command("""
        import time
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    """)
    runner = PayloadRunner(cmd, **FAST)
    result = runner.run()
    assert result.cpu_seconds >= 0.25
    assert result.usage.cpu_seconds == result.cpu_seconds
    assert result.usage.max_rss_kb > 0
    assert runner.usage() == result.usage


@attrs.frozen
class _BrokenMonitor:
    interval: float = 0.0

    def check(self, ctx: object) -> None:
        raise RuntimeError("monitor bug")


def test_failing_monitor_does_not_orphan_payload(make_command: MakeCommand) -> None:
    """When a monitor raises, the payload is killed and reaped before the exception leaves wait()."""
    cmd = make_command(SLEEPER)
    runner = PayloadRunner(cmd, monitors=[_BrokenMonitor()], **FAST)
    pid = runner.start()
    wait_for_file(cmd.workdir / "ready")
    with pytest.raises(RuntimeError, match="monitor bug"):
        runner.wait()
    assert wait_gone([pid], deadline=0.1)


def test_returncode_and_update_fields(make_command: MakeCommand) -> None:
    """returncode follows subprocess (-N for signal N); usage gives updateJob fields with prmon's names."""
    result = PayloadRunner(make_command("import os\nos.kill(os.getpid(), 9)\n"), **FAST).run()
    assert result.returncode == -9
    fields = result.usage.update_fields()
    assert set(fields) == {
        "cpuConsumptionTime",
        "maxPSS",
        "maxRSS",
        "maxVMEM",
        "maxSWAP",
        "avgPSS",
        "avgRSS",
        "avgVMEM",
        "avgSWAP",
    }
    assert fields["cpuConsumptionTime"] == round(result.cpu_seconds)
    exited = PayloadRunner(make_command("raise SystemExit(5)"), **FAST).run()
    assert exited.returncode == 5


def test_wait_twice_and_misuse(make_command: MakeCommand) -> None:
    """wait() after the end returns the same result; kill/wait before start() are errors, not hangs."""
    runner = PayloadRunner(make_command("pass"), **FAST)
    with pytest.raises(RuntimeError, match="not started"):
        runner.kill(PandaKillError())
    with pytest.raises(RuntimeError, match="not started"):
        runner.wait()
    first = runner.run()
    assert runner.wait() is first
    runner.kill(PandaKillError())  # after the end: nothing to signal
    assert runner.wait().error is None
    with pytest.raises(RuntimeError, match="already started"):
        runner.start()


def test_kill_requested_before_wait(make_command: MakeCommand) -> None:
    """A kill requested between start() and wait() (e.g. a stop already set) is carried out by wait()."""
    cmd = make_command(SLEEPER)
    runner = PayloadRunner(cmd, **FAST)
    runner.start()
    runner.request_kill(PandaKillError("tobekilled"))
    result = runner.wait()
    assert isinstance(result.error, PandaKillError)
    assert result.signal == signal.SIGTERM


def test_status_reaped_elsewhere(make_command: MakeCommand) -> None:
    """If other code reaps the payload first, wait() still returns (status lost: exit code 255) and the runner no
    longer signals that pid, which may belong to someone else now."""
    runner = PayloadRunner(make_command("raise SystemExit(7)"), **FAST)
    pid = runner.start()
    os.waitpid(pid, 0)  # the thief
    result = runner.wait()
    assert result.exit_code == 255
    assert result.error is None
    runner2 = PayloadRunner(make_command(SLEEPER), **FAST)
    pid2 = runner2.start()
    assert runner2._signal_tree(signal.SIGTERM) == 1  # still ours: signalled
    os.waitpid(pid2, 0)
    assert runner2._signal_tree(signal.SIGTERM) == 0  # reaped elsewhere: left alone


def test_sample_after_end_is_empty(make_command: MakeCommand) -> None:
    """After the payload was reaped, sample() reads nothing (the id may be reused) and the summary stays as it was."""
    runner = PayloadRunner(make_command("pass"), **FAST)
    result = runner.run()
    assert runner.sample().nprocs == 0
    assert runner.usage() == result.usage
