"""Running the payload: its own session, output to files, monitors, kill (private: import from :mod:`pilotlib.payload`).

Facts (pilot3): the payload is started in a new session (``start_new_session=True`` in ``pilot/util/container.py``)
so that the whole process group can be signalled; a kill is SIGTERM to the group, a pause, then SIGKILL
(``pilot/util/processes.py`` ``kill_processes``/``kill_process``).

Safety: the runner only signals processes it started. The payload leader is never reaped before the runner has
finished signalling (a watcher thread waits with ``waitid(WNOWAIT)``), so its pid, which is the process group and
session id, cannot be recycled while it is used. Session members in other process groups are signalled through a
pidfd after checking, on that pidfd's process, that they still belong to the session. Given a
:class:`~pilotlib.payload.Lifeline`, the runner registers the session as soon as the payload started and releases it
after reaping the leader, so that the session dies with the pilot, however the pilot dies.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

import attrs

from pilotlib.errors import PilotError
from pilotlib.payload._command import PayloadCommand
from pilotlib.payload._lifeline import Lifeline
from pilotlib.payload._monitors import Monitor, MonitorContext
from pilotlib.payload._usage import (
    ResourceSnapshot,
    ResourceUsage,
    UsageTracker,
    marked_processes,
    sample_session,
    session_members,
)
from pilotlib.payload.errors import PayloadError, PayloadKilledError, PayloadStartError
from pilotlib.stop import StopSignal

__all__ = ["PAYLOAD_MARK", "CommandWrapper", "IdentityWrapper", "PayloadResult", "PayloadRunner", "StdinMode"]

#: The variable that marks the payload's environment with a value of its own: every process the payload starts
#: inherits it, also one that leaves the payload's session (``setsid``, a daemon), so that the runner can find and
#: end those at the payload's end, never a process it did not start (the value is checked on each process).
PAYLOAD_MARK = "PILOTLIB_PAYLOAD_MARK"

log = logging.getLogger(__name__)


class CommandWrapper(Protocol):
    """Wraps a payload command, e.g. to run it in a container; the default is :class:`IdentityWrapper`."""

    def wrap(
        self, argv: tuple[str, ...], env: Mapping[str, str], workdir: Path
    ) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """Return the argument list and environment to execute instead of ``argv``/``env``."""
        ...

    def outside_sessions(self) -> tuple[int, ...]:
        """The sessions, other than the command's own, in which the wrapped command's processes run (a Podman
        container is a child of ``conmon``, in a session of its own): the runner samples them with the payload's
        (memory, CPU), never signals them (the wrapper's runtime ends them when the command ends). Called at each
        sample, while the command runs."""
        ...


class IdentityWrapper:
    """Runs the command as it is."""

    def wrap(
        self, argv: tuple[str, ...], env: Mapping[str, str], workdir: Path
    ) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """Return ``argv`` and ``env`` unchanged."""
        return argv, env

    def outside_sessions(self) -> tuple[int, ...]:
        """None: the command runs in its own session only."""
        return ()


class StdinMode(enum.Enum):
    """What the payload's stdin is: nothing (``/dev/null``) or a pipe the pipeline writes to (event ranges)."""

    DEVNULL = "devnull"
    PIPE = "pipe"


@attrs.frozen
class PayloadResult:
    """How a payload ended.

    Attributes:
        exit_code: the exit status when it exited, ``None`` when a signal ended it.
        signal: the signal that ended it, else ``None``.
        started: start time (the runner's clock, seconds since the epoch).
        ended: end time (same clock).
        cpu_seconds: CPU time of the payload and the descendants it reaped (or that the runner saw).
        error: the error the runner killed it for (a monitor's, a kill request's, or the stop event's), else ``None``.
        stdout: the payload's stdout file.
        stderr: the payload's stderr file.
        usage: resource usage summary (prmon-style figures).
    """

    exit_code: int | None
    signal: int | None
    started: float
    ended: float
    cpu_seconds: float
    error: PilotError | None = attrs.field(eq=False)
    stdout: Path
    stderr: Path
    usage: ResourceUsage

    @property
    def wall_seconds(self) -> float:
        """Seconds from start to end."""
        return self.ended - self.started

    @property
    def returncode(self) -> int:
        """As :mod:`subprocess` gives it: the exit status, or ``-N`` when signal N ended the payload."""
        return -self.signal if self.signal is not None else (self.exit_code or 0)

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and not killed by the runner."""
        return self.error is None and self.exit_code == 0


class PayloadRunner:
    """Runs one payload command in its own session and watches it with monitors.

    ``start()`` then ``wait(stop)`` (or ``run(stop)``). From other threads, ``request_kill(error)`` (e.g. the server's
    ``tobekilled``), ``request_soft_kill()`` (``softkill``: SIGTERM only, the payload finishes by itself), ``usage()``
    and ``sample()`` (heartbeat figures) may be called at any time.

    Args:
        command: what to run.
        wrapper: command wrapper (containers); identity by default.
        monitors: checks run each one's ``interval`` from the wait loop.
        poll_interval: the longest the wait loop sleeps between looks at the stop event (seconds).
        sample_interval: seconds between readings of the process tree (feeds ``usage()`` and the memory monitor).
        grace: seconds between SIGTERM and SIGKILL when killing.
        stdin: ``/dev/null`` or a pipe (see :attr:`stdin`).
        clock: the time source for monitors and the result (seconds since the epoch).
        lifeline: ties the payload's session to the pilot's life: if the pilot dies, even by SIGKILL, everything in
            the session is killed (see :class:`~pilotlib.payload.Lifeline`); None: the session outlives the pilot.
    """

    def __init__(
        self,
        command: PayloadCommand,
        *,
        wrapper: CommandWrapper | None = None,
        monitors: Sequence[Monitor] = (),
        poll_interval: float = 1.0,
        sample_interval: float = 60.0,
        grace: float = 30.0,
        stdin: StdinMode = StdinMode.DEVNULL,
        clock: Callable[[], float] = time.time,
        lifeline: Lifeline | None = None,
    ) -> None:
        self.command = command
        self._wrapper = wrapper or IdentityWrapper()
        self._monitors = tuple(monitors)
        self._poll = poll_interval
        self._sample_interval = sample_interval
        self._grace = grace
        self._stdin_mode = stdin
        self._clock = clock
        self._lifeline = lifeline
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._mark = ""  # the value of PAYLOAD_MARK in the payload's environment, once started
        self._reaped = False
        self._exited = threading.Event()
        self._wake = threading.Event()
        self._error: PilotError | None = None
        self._kill_requested = False
        self._soft_requested = False
        self._tracker = UsageTracker()
        self._snapshot: ResourceSnapshot | None = None
        self._started = 0.0
        self._result: PayloadResult | None = None

    @property
    def pid(self) -> int | None:
        """The payload's pid (also its process group and session id), once started."""
        return self._proc.pid if self._proc else None

    @property
    def stdin(self) -> IO[bytes] | None:
        """The payload's stdin when started with :attr:`StdinMode.PIPE` (the event-service seam), else ``None``."""
        return self._proc.stdin if self._proc else None

    def start(self) -> int:
        """Start the payload in a new session, stdout/stderr to the command's files, in its work directory.

        Returns:
            The pid.

        Raises:
            PayloadStartError: the program could not be executed or the files not opened (1305).
            RuntimeError: already started.
        """
        if self._proc is not None:
            raise RuntimeError("payload already started")
        cmd = self.command
        self._mark = f"{os.getpid()}-{secrets.token_hex(8)}"
        argv, env = self._wrapper.wrap(cmd.argv, {**cmd.env, PAYLOAD_MARK: self._mark}, cmd.workdir)
        stdin = subprocess.PIPE if self._stdin_mode is StdinMode.PIPE else subprocess.DEVNULL
        try:
            with cmd.stdout.open("wb") as out, cmd.stderr.open("wb") as err:
                self._proc = subprocess.Popen(
                    list(argv),
                    cwd=cmd.workdir,
                    env=dict(env),
                    stdin=stdin,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            raise PayloadStartError(f"cannot start payload {argv[0]}: {exc.strerror or exc}") from exc
        if self._lifeline is not None:
            self._lifeline.watch(self._proc.pid, f"{PAYLOAD_MARK}={self._mark}")
        self._started = self._clock()
        threading.Thread(target=self._watch, name=f"payload-watch-{self._proc.pid}", daemon=True).start()
        log.info("payload started pid=%d program=%s workdir=%s", self._proc.pid, argv[0], cmd.workdir)
        return self._proc.pid

    def _watch(self) -> None:
        """Wait for the leader's exit without reaping it (it stays a zombie, keeping its pid reserved)."""
        assert self._proc is not None
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOWAIT)
        self._exited.set()
        self._wake.set()

    def usage(self) -> ResourceUsage:
        """The resource usage summary so far (thread-safe)."""
        with self._lock:
            return self._tracker.usage

    def sample(self) -> ResourceSnapshot:
        """Read the process tree now, fold it into the summary and return it (thread-safe).

        After the payload was reaped its id may belong to someone else: then an empty snapshot is returned.
        """
        if self._proc is None:
            raise RuntimeError("payload not started")
        with self._lock:
            if self._reaped:
                return ResourceSnapshot(time=self._clock())
            snap = sample_session(self._proc.pid, self._clock(), others=self._wrapper.outside_sessions())
            self._snapshot = snap
            self._tracker.add(snap)
        return snap

    def request_kill(self, reason: PilotError) -> None:
        """Ask the wait loop to kill the payload (TERM, grace, KILL) for ``reason``; returns at once."""
        with self._lock:
            if self._error is None:
                self._error = reason
            self._kill_requested = True
        self._wake.set()

    def request_soft_kill(self) -> None:
        """Ask the wait loop to send SIGTERM once; the payload then ends by itself and no error is recorded."""
        with self._lock:
            self._soft_requested = True
        self._wake.set()

    def kill(self, reason: PilotError, grace: float | None = None) -> None:
        """Kill the payload now: SIGTERM to its tree, then SIGKILL after ``grace`` seconds (blocking).

        Args:
            reason: the error recorded in the result (the first reason given wins).
            grace: seconds to wait for the payload to exit after SIGTERM (default: the runner's).
        """
        if self._proc is None:
            raise RuntimeError("payload not started")
        with self._lock:
            if self._reaped:
                return
            if self._error is None:
                self._error = reason
        log.warning("killing payload pid=%s code=%d reason=%s", self.pid, reason.code, reason.message)
        self._signal_tree(signal.SIGTERM)
        if not self._exited.wait(self._grace if grace is None else grace):
            log.warning("payload still running after SIGTERM, sending SIGKILL pid=%s", self.pid)
        self._signal_tree(signal.SIGKILL)

    def _signal_tree(self, sig: signal.Signals) -> int:
        """Signal the payload's process group and any other member of its session; return how many targets."""
        with self._lock:
            if self._proc is None or self._reaped or not _still_our_child(self._proc.pid):
                return 0
            pid = self._proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            others = [p for p, pgrp in session_members(pid) if pgrp != pid]
            for other in others:
                _signal_if_in_session(other, pid, sig)
        return 1 + len(others)

    def run(self, stop: StopSignal | None = None) -> PayloadResult:
        """``start()`` then ``wait(stop)``."""
        self.start()
        return self.wait(stop)

    def wait(self, stop: StopSignal | None = None) -> PayloadResult:
        """Wait for the payload, running the monitors; kill it on a breach, a kill request or ``stop``.

        Args:
            stop: the pilot's stop (anything with ``is_set()``); when set, the payload is killed with
                :class:`~pilotlib.payload.errors.PayloadKilledError` (1200) unless a kill request gave a reason.
                To kill with the stop's own reason at once, register ``runner.request_kill`` as the stop's
                callback instead (the pipeline's ``Stop.when_set``).

        Returns:
            The result; leftover processes of the payload's session are killed before it returns.
        """
        if self._proc is None:
            raise RuntimeError("payload not started")
        if self._result is not None:
            return self._result
        try:
            self._loop(stop)
        except BaseException as exc:
            # a failing monitor or an interrupt must not leave the payload running unwatched
            self.kill(PayloadError(f"pilot failure while watching the payload: {type(exc).__name__}"), grace=1.0)
            self._finish()
            raise
        return self._finish()

    def _loop(self, stop: StopSignal | None) -> None:
        due = [self._started + m.interval for m in self._monitors]
        next_sample = self._started
        while not self._exited.is_set():
            now = self._clock()
            if now >= next_sample:
                self.sample()
                next_sample = now + self._sample_interval
            reason = self._pending_reason(stop) or self._run_monitors(due, now)
            if reason is not None:
                self.kill(reason)
                break
            self._maybe_soft_kill()
            wake_at = min([next_sample, *due])
            self._wake.wait(max(0.0, min(self._poll, wake_at - self._clock())))
            self._wake.clear()

    def _pending_reason(self, stop: StopSignal | None) -> PilotError | None:
        with self._lock:
            if self._kill_requested:
                return self._error
        if stop is not None and stop.is_set():
            return PayloadKilledError("payload stopped: the pilot is stopping")
        return None

    def _maybe_soft_kill(self) -> None:
        with self._lock:
            soft, self._soft_requested = self._soft_requested, False
        if soft:
            log.info("soft kill: SIGTERM to payload pid=%s", self.pid)
            self._signal_tree(signal.SIGTERM)

    def _run_monitors(self, due: list[float], now: float) -> PilotError | None:
        ctx = None
        for i, monitor in enumerate(self._monitors):
            if now < due[i]:
                continue
            due[i] = now + monitor.interval
            if ctx is None:
                with self._lock:
                    snap = self._snapshot
                cmd = self.command
                ctx = MonitorContext(now, self._started, cmd.workdir, cmd.stdout, cmd.stderr, snap)
            error = monitor.check(ctx)
            if error is not None:
                log.warning("monitor breach monitor=%s code=%d", type(monitor).__name__, error.code)
                return error
        return None

    def _reap(self) -> tuple[int, float, int]:
        assert self._proc is not None
        code, cpu, maxrss = self._reap_status()
        self._reaped = True
        self._proc.returncode = code
        return code, cpu, maxrss

    def _finish(self) -> PayloadResult:
        """Kill what is left of the session, reap the leader and build the result."""
        assert self._proc is not None
        self._exited.wait()
        with self._lock:
            leftovers = session_members(self._proc.pid)
            if leftovers:
                log.warning("killing leftover payload processes count=%d", len(leftovers))
                self._signal_tree(signal.SIGKILL)
            self._end_escaped()
            code, cpu, maxrss = self._reap()
            if self._lifeline is not None:
                self._lifeline.release(self._proc.pid)
            if self._proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()
            usage = self._tracker.finish(cpu, maxrss)
            error = self._error
        ended = self._clock()
        log.info("payload ended pid=%d exit=%d cpu=%.1f", self._proc.pid, code, usage.cpu_seconds)
        self._result = PayloadResult(
            exit_code=code if code >= 0 else None,
            signal=-code if code < 0 else None,
            started=self._started,
            ended=ended,
            cpu_seconds=usage.cpu_seconds,
            error=error,
            stdout=self.command.stdout,
            stderr=self.command.stderr,
            usage=usage,
        )
        return self._result

    def _end_escaped(self) -> None:
        """Kill the payload's processes that left its session (they carry its mark), checking the mark on each
        through a pidfd."""
        escaped = marked_processes(PAYLOAD_MARK, self._mark)
        if escaped:
            log.warning("killing payload processes that left its session count=%d pids=%s", len(escaped),
                        ",".join(map(str, sorted(escaped))))
        for pid in escaped:
            _signal_if_marked(pid, self._mark, signal.SIGKILL)

    def _reap_status(self) -> tuple[int, float, int]:
        """Reap the leader: (returncode as subprocess gives it, CPU seconds, max RSS kB) from ``wait4``."""
        assert self._proc is not None
        try:
            _, status, rusage = os.wait4(self._proc.pid, 0)
        except ChildProcessError:
            # someone else in this process reaped our child (a waitpid(-1) elsewhere): the status is lost
            log.error("payload status lost: reaped elsewhere pid=%d", self._proc.pid)
            return (self._proc.returncode if self._proc.returncode is not None else 255), 0.0, 0
        return os.waitstatus_to_exitcode(status), rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss


def _still_our_child(pid: int) -> bool:
    """Whether ``pid`` is still our unreaped child (so its id cannot have been reused); never reaps it."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        log.error("payload no longer our child (reaped elsewhere): not signalling pid=%d", pid)
        return False
    return True


def _signal_if_marked(pid: int, mark: str, sig: signal.Signals) -> None:
    """Signal ``pid`` through a pidfd, after checking (on the pidfd's process) that it carries the payload's mark."""
    needle = f"{PAYLOAD_MARK}={mark}".encode()
    _signal_checked(pid, lambda: needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"), sig)


def _signal_if_in_session(pid: int, sid: int, sig: signal.Signals) -> None:
    """Signal ``pid`` through a pidfd, after checking (on the pidfd's process) that it is in session ``sid``."""
    _signal_checked(pid, lambda: os.getsid(pid) == sid, sig)


def _signal_checked(pid: int, ours: Callable[[], bool], sig: signal.Signals) -> None:
    """Signal ``pid`` through a pidfd opened first, if ``ours()`` (asked once the pidfd holds the process: a pid
    recycled before is then seen as the new process, and not signalled)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if ours():
            signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass
    finally:
        os.close(fd)
