"""The lifeline: a small supervising process that ends the payload sessions of a pilot that died (private: import
from :mod:`pilotlib.payload`).

The pilot starts it once (:meth:`Lifeline.start`), in a session of its own so that a kill of the pilot's process
group does not reach it, with the read end of a pipe as its stdin. Over the pipe the pilot says, one line each::

    pilot <pid> <start>    the process whose death ends the sessions (sent first)
    + <sid> <start>        a session the pilot started: its leader's pid and start time
    - <sid>                that session is over (the pilot reaped its leader)
    bye                    the pilot ends normally: exit at once, signal nothing

``<start>`` is the process's start time from ``/proc/<pid>/stat`` (field 22, clock ticks since boot): a pid and its
start time name one process for the life of the node, so a recycled pid is never taken for the process it was.

The pilot is gone when the pipe reaches its end without ``bye`` (however it died, its end of the pipe is closed by
the kernel) or when the pilot's pidfd says it exited (that also covers a write end that a child forked without exec
would keep open). Then the lifeline SIGKILLs every live process of the registered sessions, again and again until
none is left or :data:`KILL_SECONDS` have passed, and exits.

A process belongs to a registered session ``sid`` started at ``start`` when its session id is ``sid`` and it started
at or after ``start``; when the pid ``sid`` now belongs to another process (another start time), only processes that
started before that one count (a new session of the recycled pid is not ours). Each process is signalled through a
pidfd after its session and start time were read again on that pidfd's process.

This file runs as a program (``python -I -S _lifeline.py``): it imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["KILL_SECONDS", "Lifeline", "start_time"]

log = logging.getLogger(__name__)

#: The longest the lifeline keeps killing the sessions of a pilot that died (seconds).
KILL_SECONDS = 5.0
_PAUSE = 0.05
_PROC = Path("/proc")


def _stat(pid: int, proc: Path = _PROC) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (index 0 is field 3, the state); None if gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields if len(fields) > 19 else None


def start_time(pid: int, proc: Path = _PROC) -> int | None:
    """The start time of process ``pid`` (``/proc/<pid>/stat`` field 22, clock ticks since boot); None if gone."""
    fields = _stat(pid, proc)
    return None if fields is None else int(fields[19])


class Lifeline:
    """The pilot's end of the lifeline: registers the payload sessions it starts and ends them if the pilot dies.

    ``Lifeline.start()`` once, ``watch(pid)`` after starting a process in a new session, ``release(pid)`` after
    reaping it, ``close()`` at the end (or use it as a context manager: an exception leaving the block closes
    without goodbye). Thread-safe. If the pilot dies in any way (SIGKILL included), the lifeline process SIGKILLs
    everything still in the watched sessions within :data:`KILL_SECONDS` and exits; after ``close()`` it exits at
    once and signals nothing.

    Args:
        process: the lifeline process.
        fd: the write end of its pipe (close-on-exec, so no payload inherits it).
    """

    def __init__(self, process: subprocess.Popen[bytes], fd: int) -> None:
        self._process = process
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._lost = False

    @classmethod
    def start(cls, *, python: str = sys.executable, pilot_pid: int | None = None) -> Lifeline:
        """Start the lifeline process (in its own session, working directory ``/``).

        Args:
            python: the interpreter that runs it.
            pilot_pid: the process whose death ends the sessions (default: this one).

        Raises:
            OSError: the process could not be started.
            ValueError: ``pilot_pid`` does not exist.
        """
        pilot = os.getpid() if pilot_pid is None else pilot_pid
        began = start_time(pilot)
        if began is None:
            raise ValueError(f"no process {pilot} to watch")
        from pilotlib._script import script_argv  # noqa: PLC0415 - as a program, this file imports only the stdlib
        from pilotlib.payload._environment import PRIVATE_PREFIXES  # noqa: PLC0415 - the same

        # the lifeline needs no environment: it gets the pilot's own PILOTLIB_ settings only, never the site's
        # variables or the pilot's credentials (PANDA_AUTH_TOKEN, BEARER_TOKEN, ...), which /proc/<pid>/environ shows
        env = {name: value for name, value in os.environ.items() if name.startswith(PRIVATE_PREFIXES)}

        read_fd, write_fd = os.pipe()  # both ends close-on-exec: only the lifeline gets the read end, as its stdin
        try:
            process = subprocess.Popen(script_argv(python, sys.modules[__name__]), stdin=read_fd,
                                       stdout=subprocess.DEVNULL, cwd="/", start_new_session=True, close_fds=True,
                                       env=env)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        lifeline = cls(process, write_fd)
        lifeline._send(f"pilot {pilot} {began}")
        log.info("lifeline started pid=%d pilot=%d", process.pid, pilot)
        return lifeline

    @property
    def pid(self) -> int:
        """The lifeline process's pid."""
        return self._process.pid

    def watch(self, pid: int, mark: str = "") -> None:
        """Tie the session led by ``pid`` to the pilot's life.

        Args:
            pid: a child of the pilot started in a new session (``start_new_session``) and not yet reaped, so its
                pid and start time name it.
            mark: the ``NAME=value`` its environment was marked with (the payload runner's ``PILOTLIB_PAYLOAD_MARK``,
                one word): a process started since, carrying it, is ended too, also outside the session.

        Raises:
            ValueError: ``pid`` is not a session leader.
        """
        began = start_time(pid)
        if began is None or os.getsid(pid) != pid:
            raise ValueError(f"process {pid} is not the leader of a session")
        self._send(f"+ {pid} {began} {mark}".rstrip())

    def release(self, pid: int) -> None:
        """The session led by ``pid`` is over (its leader was reaped): never signal it."""
        self._send(f"- {pid}")

    def close(self, *, goodbye: bool = True, timeout: float = KILL_SECONDS + 2.0) -> None:
        """End the lifeline and wait for it (``timeout`` seconds, then it is killed). Idempotent.

        Args:
            goodbye: True: the lifeline exits at once and signals nothing. False (the pilot ends on an error, with
                payloads perhaps still running): it ends the sessions still watched, as if the pilot had died.
            timeout: seconds to wait for the lifeline process.
        """
        if goodbye:
            self._send("bye")
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("lifeline did not exit, killing it pid=%d", self._process.pid)
            self._process.kill()
            self._process.wait()

    def _send(self, line: str) -> None:
        with self._lock:
            if self._fd is None or self._lost:
                return
            try:
                os.write(self._fd, f"{line}\n".encode())  # one short write: atomic on a pipe
            except OSError as exc:
                self._lost = True
                log.error("lifeline lost: payloads would outlive a killed pilot pid=%d error=%s",
                          self._process.pid, exc)

    def __enter__(self) -> Lifeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close: with a goodbye, unless an exception ends the block (then the watched sessions are ended)."""
        self.close(goodbye=exc_type is None)


# --- the lifeline process ---------------------------------------------------------------------------------------


class _Supervisor:
    """What the pilot said: the sessions to end if it dies, the pidfd of the pilot, whether it said goodbye."""

    def __init__(self) -> None:
        self.sessions: dict[int, int] = {}
        self.marks: dict[int, bytes] = {}  # sid -> the NAME=value its processes' environments carry
        self.pilot_fd: int | None = None
        self.pilot_gone = False
        self.bye = False
        self._partial = b""

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            with contextlib.suppress(ValueError):
                self._apply(line.split())

    def _apply(self, words: list[bytes]) -> None:
        match words:
            case [b"pilot", pid, began]:
                self._watch_pilot(int(pid), int(began))
            case [b"+", pid, began, *mark] if len(mark) <= 1:
                self.sessions[int(pid)] = int(began)
                if mark:
                    self.marks[int(pid)] = mark[0]
            case [b"-", pid]:
                self.sessions.pop(int(pid), None)
                self.marks.pop(int(pid), None)
            case [b"bye"]:
                self.bye = True

    def _watch_pilot(self, pid: int, began: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self.pilot_gone = True
            return
        if start_time(pid) != began:  # it died before we looked, and its pid was taken
            os.close(fd)
            self.pilot_gone = True
            return
        self.pilot_fd = fd


def _serve(fd: int) -> _Supervisor:
    """Read the pilot's lines until goodbye, the end of the pipe, or the pilot's exit."""
    sup = _Supervisor()
    while not sup.bye and not sup.pilot_gone:
        watched = [fd] if sup.pilot_fd is None else [fd, sup.pilot_fd]
        ready = select.select(watched, [], [])[0]
        if fd not in ready:  # the pilot exited, yet its pipe is open elsewhere: read what it wrote, then act
            os.set_blocking(fd, False)
            with contextlib.suppress(BlockingIOError):
                while data := os.read(fd, 65536):
                    sup.feed(data)
            sup.pilot_gone = True
            continue
        data = os.read(fd, 65536)
        if not data:
            sup.pilot_gone = True
        sup.feed(data)
    return sup


def _targets(sessions: dict[int, int], marks: dict[int, bytes] | None = None,
             proc: Path = _PROC) -> list[tuple[int, int, int]]:
    """(pid, sid, start time) of every live process of the registered sessions, and of every process started since
    a session's leader that carries the session's mark in its environment (it left the session: ``setsid``)."""
    marks = marks or {}
    newer: dict[int, int] = {}
    for sid, began in sessions.items():
        now = start_time(sid, proc)
        if now is not None and now != began:
            newer[sid] = now  # the pid was recycled: only processes older than its new owner are ours
    found = []
    own = os.getpid()
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        fields = _stat(int(entry.name), proc)
        if fields is None or fields[0] == "Z":
            continue
        sid, began = int(fields[3]), int(fields[19])
        if sid in sessions and sessions[sid] <= began < newer.get(sid, sys.maxsize):
            found.append((int(entry.name), sid, began))
        elif (owner := _marked_by(int(entry.name), marks, proc)) is not None and sessions[owner] <= began:
            found.append((int(entry.name), owner, began))
    return found


def _marked_by(pid: int, marks: dict[int, bytes], proc: Path = _PROC) -> int | None:
    """The session whose mark process ``pid``'s environment carries, or None."""
    if not marks:
        return None
    try:
        environ = (proc / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((sid for sid, mark in marks.items() if mark in environ), None)


def _kill(pid: int, sid: int, began: int, marks: dict[int, bytes] | None = None) -> None:
    """SIGKILL ``pid`` through a pidfd, if that pidfd's process started at ``began`` and is still in session ``sid``
    or carries its mark."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        fields = _stat(pid)
        mark = (marks or {}).get(sid)
        ours = fields is not None and int(fields[19]) == began and (
            int(fields[3]) == sid or (mark is not None and _marked_by(pid, {sid: mark}) == sid))
        if ours:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _end_sessions(sessions: dict[int, int], seconds: float = KILL_SECONDS,
                  marks: dict[int, bytes] | None = None) -> int:
    """SIGKILL the processes of ``sessions`` (sid -> leader's start time), and those carrying a session's mark,
    until none is left or ``seconds`` passed; return how many processes were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + seconds
    while targets := _targets(sessions, marks):
        for pid, sid, began in targets:
            _kill(pid, sid, began, marks)
            killed.add(pid)
        if time.monotonic() >= deadline:
            break
        time.sleep(_PAUSE)
    return len(killed)


def _main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # its life is bounded by the pilot's; only the pilot's end ends it
    sup = _serve(sys.stdin.fileno())
    if sup.bye or not sup.sessions:
        return 0
    killed = _end_sessions(sup.sessions, marks=sup.marks)
    sids = ",".join(map(str, sorted(sup.sessions)))
    print(f"lifeline: the pilot is gone; killed {killed} processes of sessions {sids}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
