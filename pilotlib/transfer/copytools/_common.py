"""Helpers shared by the built-in copytools: timed results, commands with timeouts, bounded parallel runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib._redact import redact_text, redact_url
from pilotlib.errors import Direction, PilotError
from pilotlib.transfer.base import TransferRequest, TransferResult, failed_result, local_path
from pilotlib.transfer.checksum import normalize_checksum_value
from pilotlib.transfer.errors import TransferError, TransferTimeoutError

__all__ = [
    "BEARER_PARAMETERS",
    "CommandResult",
    "CommandUrl",
    "Endpoints",
    "command_url",
    "endpoints",
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


def failure(request: TransferRequest, tool: str, error: PilotError, started: float) -> TransferResult:
    """The :class:`TransferResult` of a failed transfer, timed from ``started``."""
    return failed_result(request, tool, error, time.monotonic() - started)


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
    parts = urllib.parse.urlsplit(url)
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


def run_command(
    args: Sequence[str],
    timeout: float,
    direction: Direction,
    env: Mapping[str, str] | None = None,
    what: str = "",
) -> CommandResult:
    """Run ``args`` (no shell) in its own process group; on timeout kill the whole group.

    Args:
        args: the command and its arguments.
        timeout: seconds before the group is killed.
        direction: picks the error code.
        env: variables set for the command on top of the environment it inherits (a token, client settings).
        what: named in the timeout error (the file).

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
            env={**os.environ, **env} if env else None, start_new_session=True,
        )
    except OSError as exc:
        raise TransferError(f"cannot run {args[0]}: {exc.strerror or exc}", direction) from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise TransferTimeoutError(f"{args[0]} {what} timed out after {timeout:.0f} s", direction) from exc
    return CommandResult(proc.returncode, out, err)


#: Seconds to drain a killed command's pipes: a descendant that left its process group (``setsid``) may hold them.
_DRAIN_SECONDS = 5.0


def _kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.returncode is None:  # not reaped yet, so the group id is still the one we created
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session
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
) -> list[TransferResult]:
    """Run ``func(i)`` for every index of ``timeouts``, at most ``parallel`` at once, each bounded by its timeout.

    A call's timeout counts from when it starts. A call still running then is given up: its result is
    ``on_timeout(i)``, its slot goes to the next call, and its daemon thread is left to end on its own (a blocked
    backend call can not be interrupted from Python). ``func`` must not raise.
    """
    run = _BoundedRun(func, timeouts, parallel)
    for i in range(len(timeouts)):
        threading.Thread(target=run.work, args=(i,), daemon=True, name=f"copytool-{i}").start()
    overall = time.monotonic() + sum(timeouts)
    return [run.wait(i, overall) or on_timeout(i) for i in range(len(timeouts))]


class _BoundedRun:
    def __init__(self, func: Callable[[int], TransferResult], timeouts: Sequence[float], parallel: int) -> None:
        self.func = func
        self.timeouts = timeouts
        self.slots = threading.Semaphore(max(parallel, 1))
        self.lock = threading.Lock()
        count = len(timeouts)
        self.results: list[TransferResult | None] = [None] * count
        self.started_at = [0.0] * count
        self.started = [threading.Event() for _ in range(count)]
        self.done = [threading.Event() for _ in range(count)]
        self.abandoned = [False] * count

    def work(self, i: int) -> None:
        self.slots.acquire()
        with self.lock:
            if self.abandoned[i]:
                self.slots.release()
                return
            self.started_at[i] = time.monotonic()
            self.started[i].set()
        result = self.func(i)
        with self.lock:
            if not self.abandoned[i]:
                self.results[i] = result
                self.slots.release()
            self.done[i].set()

    def wait(self, i: int, overall: float) -> TransferResult | None:
        if self.started[i].wait(max(overall - time.monotonic(), 0.0)):
            self.done[i].wait(max(self.started_at[i] + self.timeouts[i] - time.monotonic(), 0.0))
        with self.lock:
            if not self.done[i].is_set():
                if self.started[i].is_set():
                    self.slots.release()
                self.abandoned[i] = True
            return self.results[i]
