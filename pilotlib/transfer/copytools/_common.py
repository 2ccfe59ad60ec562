"""Helpers shared by the built-in copytools: timed results, commands with timeouts, bounded parallel runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib import _tether as tether
from pilotlib._redact import redact_text, redact_url
from pilotlib.errors import Direction, PilotError
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult, failed_result, local_path
from pilotlib.transfer.checksum import normalize_checksum_value
from pilotlib.transfer.errors import TransferError, TransferTimeoutError

__all__ = [
    "BEARER_PARAMETERS",
    "CANCEL_WAIT",
    "CommandResult",
    "CommandUrl",
    "Endpoints",
    "command_environment",
    "command_url",
    "discard_partial",
    "endpoints",
    "local_of",
    "on_stop",
    "parallel_map",
    "run_command",
    "success",
]


@attrs.frozen
class Endpoints:
    """A request's resolved ends: the remote URL and the local path (checked to be inside the work directory)."""

    remote: str
    local: Path


def endpoints(request: TransferRequest, workdir: Path) -> Endpoints:
    """Resolve the local side of ``request`` inside ``workdir``; raise EscapingPathError if it leaves it."""
    if request.direction is Direction.STAGE_IN:
        return Endpoints(request.source, local_path(workdir, request.destination, request.direction))
    return Endpoints(request.destination, local_path(workdir, request.source, request.direction))


def local_of(request: TransferRequest, workdir: Path) -> Path | None:
    """The request's resolved local path, None when it is refused (the refusal is the copy's own error)."""
    try:
        return endpoints(request, workdir).local
    except TransferError:
        return None


def success(
    request: TransferRequest, tool: str, ends: Endpoints, checksum: tuple[str, str] | None, started: float
) -> TransferResult:
    """The :class:`TransferResult` of a finished transfer (size read from the local file).

    The checksum is reported in PanDA's form: the XRootD client reports adler32 without its leading zeros.
    """
    size = ends.local.stat().st_size if ends.local.exists() else request.filesize
    if checksum is not None:
        checksum = (checksum[0], normalize_checksum_value(checksum[0], checksum[1]))
    return TransferResult(
        lfn=request.lfn,
        direction=request.direction,
        tool=tool,
        url=ends.remote,
        local_path=str(ends.local),
        size=size,
        checksum=checksum,
        seconds=time.monotonic() - started,
        ddmendpoint=request.ddmendpoint,
        guid=request.guid,
    )


#: Seconds a copy that was asked to end (the stop, or its timeout) is still waited for before it is given up; a
#: copy given up so has its partial local file removed.
CANCEL_WAIT = 5.0


def failure(
    request: TransferRequest,
    tool: str,
    error: PilotError,
    started: float,
    *,
    stop: StopSignal | None = None,
    local: Path | None = None,
) -> TransferResult:
    """The :class:`TransferResult` of a failed transfer, timed from ``started``.

    Once ``stop`` is set the error is the stop's reason (the copy was cancelled, or is not wanted any more), and a
    stage-in's partial copy at ``local`` (the resolved target) is removed (:func:`discard_partial`).
    """
    if stop is not None and stop.reason is not None:
        error = stop.reason
        if local is not None and request.direction is Direction.STAGE_IN:
            discard_partial(local)
    return failed_result(request, tool, error, time.monotonic() - started)


def discard_partial(target: Path) -> None:
    """Remove what an ended stage-in copy left in the work directory: ``target`` and its ``<name>.part``."""
    for path in (target, target.with_name(target.name + ".part")):
        with contextlib.suppress(OSError):
            if path.is_symlink() or path.is_file():
                path.unlink()


@attrs.frozen
class TimeoutHandlers:
    """What :func:`parallel_map` does with a copy of ``requests`` that exceeded its timeout: its failed result
    (:meth:`timed_out`) and the removal of a stage-in's partial target (:meth:`discard`)."""

    tool: str
    requests: Sequence[TransferRequest]
    workdir: Path
    stop: StopSignal | None

    def timed_out(self, i: int) -> TransferResult:
        """The failed result of request ``i``: a timeout (or the stop's reason once the stop is set)."""
        request = self.requests[i]
        error = TransferTimeoutError(f"{self.tool} of {request.lfn} exceeded {request.timeout:.0f} s",
                                     request.direction)
        return failure(request, self.tool, error, time.monotonic() - request.timeout, stop=self.stop,
                       local=local_of(request, self.workdir))

    def discard(self, i: int) -> None:
        """Remove what the given-up stage-in copy of request ``i`` left in the work directory."""
        target = local_of(self.requests[i], self.workdir)
        if target is not None and self.requests[i].direction is Direction.STAGE_IN:
            discard_partial(target)


@contextlib.contextmanager
def on_stop(stop: StopSignal | None, action: Callable[[], object]) -> Iterator[None]:
    """Run ``action`` (end a copy process, cancel a client's transfer) if ``stop`` is set while the block runs.

    It runs at once when the stop is already set, and in the thread that sets the stop (a signal handler on the main
    thread): it must be quick and take no lock the copy holds.
    """
    if stop is None:
        yield
        return
    callback = stop.when_set(lambda _reason: action())
    try:
        yield
    finally:
        stop.forget(callback)


@attrs.frozen
class CommandResult:
    """What a finished command gave back."""

    returncode: int
    stdout: str
    stderr: str


#: Query parameters that carry a bearer token: XRootD's ``authz`` CGI (XrdAccSciTokens; XrdHttp also reads it as the
#: ``Authorization`` header, ``authz=Bearer%20<token>``), RFC 6750's ``access_token``, and ``bearer_token``.
BEARER_PARAMETERS = ("authz", "access_token", "bearer_token")


@attrs.frozen
class CommandUrl:
    """A URL made fit for a command line: ``url`` carries no secret, ``env`` the token taken out of it."""

    url: str
    env: Mapping[str, str] = attrs.field(factory=dict)


def command_url(url: str, direction: Direction) -> CommandUrl:
    """Take a bearer token out of ``url`` for a child process: the URL without it, and ``BEARER_TOKEN`` to set.

    A command line is world-readable (``/proc/<pid>/cmdline``); the environment is not (``/proc/<pid>/environ`` is
    the owner's only). ``BEARER_TOKEN`` is where WLCG bearer token discovery looks first, and how rucio-clients
    hands a token to ``xrdcp`` (rucio ``rse/protocols/xrootd.py``, ``_auth_env``: ``BEARER_TOKEN`` with the ztn
    security protocol).

    Raises:
        TransferError: the URL carries another secret (a password, a presigned URL's signature), which no
            command can be given but on its command line; or two different tokens.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # "[" in the host ("Invalid IPv6 URL"), which no copytool can reach either
        raise TransferError(f"{redact_url(url)} is not a URL: {exc}", direction) from exc
    kept: list[str] = []
    tokens: set[str] = set()
    for piece in parts.query.split("&") if parts.query else []:
        key, _, value = piece.partition("=")
        if key.lower() in BEARER_PARAMETERS:
            token = urllib.parse.unquote_plus(value).strip()
            tokens.add(token[7:].strip() if token.lower().startswith("bearer ") else token)
        else:
            kept.append(piece)
    bare = urllib.parse.urlunsplit(parts._replace(query="&".join(kept)))
    if len(tokens) > 1:
        raise TransferError(f"{redact_url(url)} carries two different tokens", direction)
    if redact_text(bare) != bare:
        raise TransferError(f"{redact_url(bare)} carries a secret that only a command line could take "
                            "(a password or a signature): not given to a command", direction)
    return CommandUrl(bare, {"BEARER_TOKEN": tokens.pop()} if tokens else {})


def command_environment(overlay: Mapping[str, str], base_env: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environment a copytool's command gets: ``base_env`` with ``overlay`` over it.

    The library reads no environment: an app gives its copytools the environment it read once
    (:class:`~pilotlib.transfer.registry.CopytoolRegistry`'s ``base_env``). Without one (``base_env`` None) a
    command with no overlay gets None (it inherits the process environment, which is not read), and one with an
    overlay gets the process environment with the overlay over it: this function is the one place in pilotlib that
    reads ``os.environ``, and only for a caller that gave no base environment.
    """
    if base_env is not None:
        return {**base_env, **overlay}
    return {**os.environ, **overlay} if overlay else None


def run_command(
    args: Sequence[str],
    timeout: float,
    direction: Direction,
    *,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    what: str = "",
    stop: StopSignal | None = None,
) -> CommandResult:
    """Run ``args`` (no shell) in its own process group; on timeout, or as soon as ``stop`` is set, kill the group.

    Args:
        args: the command and its arguments.
        timeout: seconds before the group is killed.
        direction: picks the error code.
        env: variables set for the command on top of its base environment (a token, client settings).
        base_env: the command's base environment, as the app read it (the library reads no environment); None:
            the process environment the command inherits (see :func:`command_environment`).
        what: named in the timeout error (the file).
        stop: the pilot's stop; a command ended by it returns its (failed) result, which the caller turns into the
            stop's reason (:func:`failure`).

    Raises:
        TransferTimeoutError: the command ran longer than ``timeout`` (STAGEINTIMEOUT/STAGEOUTTIMEOUT).
        TransferError: the command can not be started, or an argument carries a secret (a command line is
            world-readable: :func:`command_url` takes a token out of a URL first).
    """
    if any(redact_text(arg) != arg for arg in args):
        raise TransferError(f"{args[0]} not run: its command line would show a secret "
                            f"({' '.join(redact_text(a) for a in args[1:])})", direction)
    try:
        proc = subprocess.Popen(
            list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            env=command_environment(env or {}, base_env), start_new_session=True,
        )
    except OSError as exc:
        raise TransferError(f"cannot run {args[0]}: {exc.strerror or exc}", direction) from exc
    tether.started(proc.pid)  # a pilot killed meanwhile leaves no copy running
    try:
        return _wait(proc, args, timeout, direction, what=what, stop=stop)
    finally:
        tether.ended(proc.pid)


def _wait(proc: subprocess.Popen[str], args: Sequence[str], timeout: float, direction: Direction, *, what: str,
          stop: StopSignal | None) -> CommandResult:
    deadline = time.monotonic() + timeout
    with on_stop(stop, lambda: _signal_group(proc)):
        while True:
            # with a stop, wake every second: the group is killed at once, but a descendant that left it may hold
            # the pipes, and then the command is ended as at its timeout
            left = deadline - time.monotonic()
            try:
                out, err = proc.communicate(timeout=max(min(left, 1.0) if stop is not None else left, 0.0))
                break
            except subprocess.TimeoutExpired as exc:
                if stop is not None and stop.is_set():
                    _kill_group(proc)
                    return CommandResult(proc.returncode, "", "")
                if time.monotonic() >= deadline:
                    _kill_group(proc)
                    raise TransferTimeoutError(f"{args[0]} {what} timed out after {timeout:.0f} s", direction) from exc
    return CommandResult(proc.returncode, out, err)


#: Seconds to drain a killed command's pipes: a descendant that left its process group (``setsid``) may hold them.
_DRAIN_SECONDS = 5.0


def _signal_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the command's process group (no lock, no wait: safe from a signal handler)."""
    if proc.returncode is None:  # not reaped yet, so the group id is still the one we created
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session


def _kill_group(proc: subprocess.Popen[str]) -> None:
    _signal_group(proc)
    try:
        proc.communicate(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:  # the pipes are held by a process outside the group: stop reading them
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def parallel_map(
    func: Callable[[int], TransferResult],
    timeouts: Sequence[float],
    parallel: int,
    on_timeout: Callable[[int], TransferResult],
    *,
    stop: StopSignal | None = None,
    cancel: Callable[[int], object] | None = None,
    discard: Callable[[int], object] | None = None,
) -> list[TransferResult]:
    """Run ``func(i)`` for every index of ``timeouts``, at most ``parallel`` at once, each bounded by its timeout.

    A call's timeout counts from when it starts. A call still running at its timeout is asked to end
    (``cancel(i)``: e.g. cancel the client's transfer) and waited for :data:`CANCEL_WAIT` seconds more; once
    ``stop`` is set, every running call (which ``func`` cancels through the stop itself) is waited for
    :data:`CANCEL_WAIT` seconds and a call not started yet never starts. A call that has not ended then is given up:
    its result is ``on_timeout(i)``, ``discard(i)`` removes its partial local file, its slot goes to the next call,
    and its thread (a backend call that could not be interrupted) calls ``discard(i)`` again if it ends after a stop.
    ``func`` must not raise.
    """
    run = _BoundedRun(func, timeouts, parallel, discard)
    callback = stop.when_set(run.stopped) if stop is not None else None
    try:
        for i in range(len(timeouts)):
            threading.Thread(target=run.work, args=(i,), daemon=True, name=f"copytool-{i}").start()
        overall = time.monotonic() + sum(timeouts)
        return [run.wait(i, overall, cancel) or on_timeout(i) for i in range(len(timeouts))]
    finally:
        if stop is not None and callback is not None:
            stop.forget(callback)


class _BoundedRun:
    def __init__(self, func: Callable[[int], TransferResult], timeouts: Sequence[float], parallel: int,
                 discard: Callable[[int], object] | None) -> None:
        self.func = func
        self.timeouts = timeouts
        self.discard = discard
        self.slots = threading.Semaphore(max(parallel, 1))
        # reentrant: the stop's callback may run in a signal handler on a thread that waits here
        self.cond = threading.Condition(threading.RLock())
        count = len(timeouts)
        self.results: list[TransferResult | None] = [None] * count
        self.started_at: list[float | None] = [None] * count
        self.done = [False] * count
        self.abandoned = [False] * count
        self.stopped_at: float | None = None

    def stopped(self, _reason: object) -> None:
        with self.cond:
            if self.stopped_at is None:
                self.stopped_at = time.monotonic()
            self.cond.notify_all()

    def work(self, i: int) -> None:
        self.slots.acquire()
        with self.cond:
            if self.abandoned[i] or self.stopped_at is not None:
                self.abandoned[i] = True
                self.slots.release()
                self.cond.notify_all()
                return
            self.started_at[i] = time.monotonic()
            self.cond.notify_all()
        result = self.func(i)
        with self.cond:
            late = self.abandoned[i]
            if not late:
                self.results[i] = result
                self.slots.release()
            self.done[i] = True
            self.cond.notify_all()
        if late and self.stopped_at is not None and self.discard is not None:
            self.discard(i)  # an abandoned copy that ended after all: its file is not wanted

    def _deadline(self, i: int, overall: float, extra: float) -> float:
        started = self.started_at[i]
        limits = [overall if started is None else started + self.timeouts[i] + extra]
        if self.stopped_at is not None:
            limits.append(self.stopped_at + CANCEL_WAIT)
        return min(limits)

    def _wait_until(self, i: int, overall: float, extra: float) -> None:
        while not self.done[i] and not (self.abandoned[i] and self.started_at[i] is None):
            if self.stopped_at is not None and self.started_at[i] is None:
                return  # stopped before it started: it never will
            left = self._deadline(i, overall, extra) - time.monotonic()
            if left <= 0:
                return
            self.cond.wait(left)

    def wait(self, i: int, overall: float, cancel: Callable[[int], object] | None) -> TransferResult | None:
        with self.cond:
            self._wait_until(i, overall, 0.0)
            timed_out = not self.done[i] and self.started_at[i] is not None and self.stopped_at is None
        if timed_out and cancel is not None:
            cancel(i)
            with self.cond:
                self._wait_until(i, overall, CANCEL_WAIT)
        with self.cond:
            if not self.done[i]:
                if self.started_at[i] is not None and not self.abandoned[i]:
                    self.slots.release()
                    if self.discard is not None:
                        self.discard(i)
                self.abandoned[i] = True
            result = self.results[i]
        if timed_out and result is not None and not result.ok:
            return None  # ended by its cancel: the timeout is the failure to report
        return result
