"""The lifeline with real processes: the supervising process ends the registered sessions of a pilot that is gone,
and only those; a goodbye ends it at once; PayloadRunner's session dies with its pilot."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import session_members

from pilotlib.payload import Lifeline, PayloadKilledError, PayloadRunner
from pilotlib.payload import _lifeline as lifeline_module

from ._helpers import PY, process_gone, wait_for_file, wait_gone
from .conftest import MakeCommand

#: a session leader with a child in its process group and one in another process group of the session
SESSION = f"sleep 60 & {PY} -c 'import os, time; os.setpgid(0, 0); time.sleep(60)' & exec sleep 60"


def _start(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rfind(")") + 2 :].split()[19])


class Sessions:
    """Sessions started by the test (each: a leader, a child, a child in another process group); all killed at the
    end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def new(self) -> int:
        proc = subprocess.Popen(["sh", "-c", SESSION], start_new_session=True)
        self.procs.append(proc)
        end = time.monotonic() + 5
        while len(session_members(proc.pid)) < 3:
            assert time.monotonic() < end, "session did not start its children"
            time.sleep(0.01)
        return proc.pid

    def cleanup(self) -> None:
        for proc in self.procs:
            for pid in session_members(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def sessions() -> Iterator[Sessions]:
    made = Sessions()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def supervisor() -> Iterator[subprocess.Popen[bytes]]:
    """The lifeline program itself, spoken to through its line protocol on stdin."""
    proc = subprocess.Popen([PY, "-I", "-S", lifeline_module.__file__], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stderr):
            if stream is not None:
                stream.close()


def _say(proc: subprocess.Popen[bytes], *lines: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
    proc.stdin.flush()


def test_pilot_gone_kills_every_process_of_a_registered_session(
        supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """The end of the pipe without a goodbye (the pilot died): every process of the registered session, in its
    process group or another one, is SIGKILLed within 5 s, and the lifeline exits 0 saying what it killed."""
    sid = sessions.new()
    members = session_members(sid)
    _say(supervisor, f"+ {sid} {_start(sid)}")
    assert supervisor.stdin is not None
    supervisor.stdin.close()
    assert wait_gone(members, deadline=5.0), f"still running: {session_members(sid)}"
    assert supervisor.wait(5) == 0
    assert supervisor.stderr is not None
    assert f"killed 3 processes of sessions {sid}" in supervisor.stderr.read().decode()


def test_pilot_gone_kills_a_process_that_left_the_session_carrying_its_mark(
        supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """A process that left the registered session (``setsid``) but carries the session's mark in its environment
    (the payload runner's ``PILOTLIB_PAYLOAD_MARK``) is killed with it; one without the mark, in a session of its own
    too, is left alone."""
    sid = sessions.new()
    mark = "PILOTLIB_PAYLOAD_MARK=test-1234"
    escaped = subprocess.Popen(["sleep", "60"], start_new_session=True,
                               env={**os.environ, "PILOTLIB_PAYLOAD_MARK": "test-1234"})
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True,
                                 env={**os.environ, "PILOTLIB_PAYLOAD_MARK": "test-9999"})
    try:
        _say(supervisor, f"+ {sid} {_start(sid)} {mark}")
        assert supervisor.stdin is not None
        supervisor.stdin.close()
        assert wait_gone([escaped.pid, *session_members(sid)], deadline=5.0)
        assert supervisor.wait(5) == 0
        assert bystander.poll() is None
        assert supervisor.stderr is not None
        assert f"killed 4 processes of sessions {sid}" in supervisor.stderr.read().decode()
    finally:
        for proc in (escaped, bystander):
            proc.kill()
            proc.wait()


def test_released_session_is_not_signalled(supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """A session registered and then released (its payload ended normally) is left alone when the pilot dies;
    a still registered one is killed."""
    released, registered = sessions.new(), sessions.new()
    _say(supervisor, f"+ {released} {_start(released)}", f"+ {registered} {_start(registered)}", f"- {released}")
    assert supervisor.stdin is not None
    supervisor.stdin.close()
    assert wait_gone(session_members(registered), deadline=5.0)
    assert supervisor.wait(5) == 0
    assert len(session_members(released)) == 3


def test_recycled_pid_is_not_signalled(supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """A registration whose start time is not the current process's (the pid was recycled by another process)
    signals nothing of that process's session; a correct registration in the same run is killed."""
    recycled, registered = sessions.new(), sessions.new()
    _say(supervisor, f"+ {recycled} {_start(recycled) - 1}", f"+ {registered} {_start(registered)}")
    assert supervisor.stdin is not None
    supervisor.stdin.close()
    assert wait_gone(session_members(registered), deadline=5.0)
    assert supervisor.wait(5) == 0
    assert len(session_members(recycled)) == 3


def test_goodbye_leaves_sessions_running_and_exits_at_once(
        supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """After ``bye`` (the pilot ends normally) the lifeline exits within 1 s, with its pipe still open, and the
    registered session runs on."""
    sid = sessions.new()
    _say(supervisor, f"+ {sid} {_start(sid)}", "bye")
    assert supervisor.wait(1) == 0
    assert len(session_members(sid)) == 3


def test_dead_pilot_is_noticed_while_its_pipe_stays_open(
        supervisor: subprocess.Popen[bytes], sessions: Sessions) -> None:
    """The pilot's exit is seen through its pidfd even when its pipe has another writer (a child forked without
    exec keeps the write end open): the session is killed within 5 s and the lifeline exits."""
    pilot = subprocess.Popen(["sleep", "60"])
    sid = sessions.new()
    members = session_members(sid)
    try:
        _say(supervisor, f"pilot {pilot.pid} {_start(pilot.pid)}", f"+ {sid} {_start(sid)}")
        time.sleep(0.2)
        assert len(session_members(sid)) == 3, "killed before the pilot died"
        pilot.kill()
        assert wait_gone(members, deadline=5.0)
        assert supervisor.wait(5) == 0
    finally:
        pilot.kill()
        pilot.wait()


def test_lifeline_close_ends_its_process_and_watch_refuses_a_non_leader() -> None:
    """``Lifeline.start()`` runs the lifeline in its own session; ``watch`` refuses a process that does not lead a
    session (its session is not the pilot's to end); ``close()`` ends the lifeline process."""
    child = subprocess.Popen(["sleep", "60"])
    lifeline = Lifeline.start()
    try:
        assert os.getsid(lifeline.pid) == lifeline.pid
        with pytest.raises(ValueError, match="not the leader of a session"):
            lifeline.watch(child.pid)
    finally:
        lifeline.close()
        child.kill()
        child.wait()
    assert process_gone(lifeline.pid)


def test_an_exception_leaving_the_lifeline_block_ends_the_watched_sessions(sessions: Sessions) -> None:
    """A pilot that ends on an error (an exception leaves ``with Lifeline.start()``) says no goodbye: the sessions
    still watched are killed (within 5 s) and the lifeline has exited when the block is left; a released one runs
    on."""
    watched, released = sessions.new(), sessions.new()
    members = session_members(watched)
    with pytest.raises(RuntimeError, match="pilot failure"), Lifeline.start() as lifeline:
        lifeline.watch(watched)
        lifeline.watch(released)
        lifeline.release(released)
        raise RuntimeError("pilot failure")
    assert process_gone(lifeline.pid)
    assert wait_gone(members, deadline=0.5)
    assert len(session_members(released)) == 3


def test_runner_payload_session_dies_with_its_pilot(make_command: MakeCommand) -> None:
    """A PayloadRunner given a lifeline registers its payload's session: when the pilot (here a stand-in process
    the lifeline watches) is SIGKILLed, the payload and its child are killed within 5 s (the runner sees SIGKILL)."""
    pilot = subprocess.Popen(["sleep", "60"])
    cmd = make_command("""
        import pathlib, subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        pathlib.Path("ready").write_text(str(child.pid))
        time.sleep(60)
    """)
    lifeline = Lifeline.start(pilot_pid=pilot.pid)
    runner = PayloadRunner(cmd, poll_interval=0.05, sample_interval=0.05, lifeline=lifeline)
    bound = threading.Timer(10.0, runner.request_kill, (PayloadKilledError("the lifeline did not act"),))
    try:
        runner.start()
        child = int(wait_for_file(cmd.workdir / "ready"))
        begin = time.monotonic()
        pilot.kill()
        bound.start()
        result = runner.wait()
        assert time.monotonic() - begin < 5.0
        assert result.signal == signal.SIGKILL
        assert wait_gone([child], deadline=1.0)
    finally:
        bound.cancel()
        pilot.kill()
        pilot.wait()
        if runner.pid is not None and not process_gone(runner.pid):
            runner.kill(PayloadKilledError("test cleanup"), grace=0.1)
        lifeline.close()
