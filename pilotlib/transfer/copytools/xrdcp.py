"""``xrdcp``: XRootD transfers through the XRootD Python client (``CopyProcess``), or the ``xrdcp`` command.

The Python client copies many files in parallel in one ``CopyProcess`` (``parallel``) with end-to-end adler32
verification: on stage-in the expected checksum is preset, so a corrupted replica fails even though the server's
checksum matches its own bad copy; on stage-out the local checksum is computed first and preset. When only the
``xrdcp`` command exists (Debian's xrootd-client), each file is one command run (``--cksum adler32:<value>``), a
bounded number at once, each with its timeout; the process group is killed on timeout. A bearer token in the URL
(``?authz=``, ``?access_token=``) is taken out of the command line and given to ``xrdcp`` in ``BEARER_TOKEN``, where
the XRootD client's ztn security protocol reads it (as rucio-clients does, ``rse/protocols/xrootd.py``); a URL with a
secret that can not be moved so is not given to the command.

Error translation follows PanDAWMS/pilot3 ``pilot/copytool/xrdcp.py`` and ``pilot/copytool/common.py``: checksum
errors are GETADMISMATCH/PUTADMISMATCH, "no such file" on stage-in is MISSINGINPUTFILE, a server error response is
XRDCPERROR, an expired operation is a timeout. XRootD's status numbers are XrdCl's (``XrdClStatus.hh``: 206
operation expired, 305 checksum error, 400 error response, 1xx socket/connection) and the server's
(``XProtocol.hh``: 3009 no space, 3010 not authorized, 3011 not found).
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pilotlib._redact import redact_url
from pilotlib.errors import Direction
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult
from pilotlib.transfer.checksum import calculate_checksum, normalize_checksum_type, verify_checksum
from pilotlib.transfer.copytools._common import (
    CANCEL_WAIT,
    Endpoints,
    command_url,
    discard_partial,
    endpoints,
    failure,
    on_stop,
    parallel_map,
    run_command,
    success,
)
from pilotlib.transfer.copytools._xrootd_stream import stream_in
from pilotlib.transfer.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    MissingFileError,
    NoSpaceError,
    StorageUnavailableError,
    TransferError,
    TransferTimeoutError,
    XrdcpError,
)

__all__ = ["XrdcpCopytool", "classify_xrootd_failure"]

log = logging.getLogger(__name__)


class _Status(Protocol):
    code: int
    errno: int
    message: str


def classify_xrootd_failure(  # noqa: PLR0911  (a flat decision table)
    code: int, errno: int, message: str, direction: Direction, lfn: str
) -> TransferError:
    """Translate an XRootD client status (or an ``xrdcp`` failure's numbers and text) into a transfer error."""
    text = f"{lfn}: {message.strip()}"
    lowered = message.lower()
    if code == 305 or "checksum error" in lowered:
        return ChecksumMismatchError(text, direction)
    if code in (103, 206) or "expired" in lowered or "timeout" in lowered:
        return TransferTimeoutError(text, direction)
    if errno == 3011 or "no such file" in lowered:
        return MissingFileError(text, direction)
    if errno == 3010 or code == 204 or "auth" in lowered:
        return AuthenticationError(text, direction)
    if errno == 3009 or "no space" in lowered:
        return NoSpaceError(text, direction)
    if 100 <= code < 200 or "connection" in lowered:
        return StorageUnavailableError(text, direction)
    if code == 400 or "server responded with an error" in lowered:
        return XrdcpError(text, direction)
    return TransferError(text, direction)


_Ready = tuple[int, TransferRequest, Endpoints, tuple[str, str] | None]


def _client_imports() -> bool:
    """The XRootD Python client imports (its module is there and its shared library loads)."""
    if importlib.util.find_spec("XRootD") is None:
        return False
    try:
        importlib.import_module("XRootD.client")
    except ImportError:
        return False
    return True


class XrdcpCopytool:
    """Copy root:// files with the XRootD client library, or the ``xrdcp`` command when only that exists.

    Args:
        backend: ``"auto"`` (library if importable, else command), ``"python"`` or ``"command"``.
        parallel: files copied at once.
        command: the xrdcp executable.
        connection_retry: XRootD client connection attempts (the client's default, 5 x 120 s, waits ~10 min
            on a dead host; the stage-in/stage-out retries cover a passing failure).
        connection_window: seconds per connection attempt.
        timeout_resolution: seconds between the client's timeout checks.
        base_env: the ``xrdcp`` command's base environment, as the app read it (None: the process's; see
            :func:`~pilotlib.transfer.copytools._common.command_environment`).
    """

    name = "xrdcp"
    schemes: tuple[str, ...] = ("root", "xroot", "roots")

    def __init__(
        self,
        backend: str = "auto",
        *,
        parallel: int = 8,
        command: str = "xrdcp",
        connection_retry: int = 1,
        connection_window: int = 15,
        timeout_resolution: int = 1,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_env = base_env
        self._problems: dict[str, str] | None = None  # why a backend cannot be used, found on first use
        if backend not in ("auto", "python", "command"):
            raise TypeError(f"backend must be auto, python or command, not {backend!r}")
        self.backend = backend
        self.parallel = parallel
        self.command = command
        self.client_env = {
            "ConnectionRetry": connection_retry,
            "ConnectionWindow": connection_window,
            "TimeoutResolution": timeout_resolution,
        }

    def _client_env(self, shortest_timeout: int) -> dict[str, int]:
        """The client settings for a batch: a connection attempt never outlasts the shortest file timeout."""
        settings = dict(self.client_env)
        settings["ConnectionWindow"] = max(1, min(settings["ConnectionWindow"], shortest_timeout))
        return settings

    def _chosen(self) -> str | None:
        if self._problems is None:
            problems = {}
            if self.backend in ("auto", "python") and not _client_imports():
                problems["python"] = "the XRootD Python client (pip install xrootd) is not importable"
            if self.backend in ("auto", "command"):
                problems.update({"command": why} if (why := self._command_problem()) else {})
            self._problems = problems
        for backend in ("python", "command"):
            if self.backend in ("auto", backend) and backend not in self._problems:
                return backend
        return None

    def _command_problem(self) -> str | None:
        """Why the ``xrdcp`` command cannot be used (not on the base environment's ``PATH``, where
        :func:`~pilotlib.transfer.copytools._common.run_command` looks it up, or not answering ``--version``), or
        None."""
        path = self.base_env.get("PATH", "") if self.base_env is not None else None
        found = shutil.which(self.command, path=path)
        if found is None:
            return f"command {self.command!r} not found on PATH"
        try:
            done = subprocess.run([found, "--version"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"command {found} does not answer --version: {exc}"
        return None if done.returncode == 0 else f"command {found} does not answer --version (exit {done.returncode})"

    def unusable_reason(self) -> str | None:
        """Why neither the XRootD Python client nor the ``xrdcp`` command can be used, or None."""
        if self._chosen() is not None:
            return None
        assert self._problems is not None
        return ", and ".join(self._problems[b] for b in ("python", "command") if b in self._problems)

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Copy the files in parallel; one result per request, in order.

        ``stop`` cancels the copies under way: the ``xrdcp`` commands' process groups are killed, the client's
        ``CopyProcess`` is cancelled through its progress handler (``should_cancel``), a streamed read is
        abandoned; they fail with the stop's reason and leave no partial file.
        """
        started = time.monotonic()
        results: list[TransferResult | None] = [None] * len(requests)
        ready: list[_Ready] = []
        for i, request in enumerate(requests):
            try:
                ends = endpoints(request, workdir)
                preset = self._preset(request, ends)
            except TransferError as exc:
                results[i] = failure(request, self.name, exc, started)
                continue
            ready.append((i, request, ends, preset))
        backend = self._chosen()
        if backend is None:
            reason = self.unusable_reason() or "unusable"
            for i, request, _, _ in ready:
                results[i] = failure(request, self.name, TransferError(reason, request.direction), started)
        elif ready:
            run = self._run_python if backend == "python" else self._run_commands
            for (i, _, _, _), result in zip(ready, run(ready, stop), strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    @staticmethod
    def _preset(request: TransferRequest, ends: Endpoints) -> tuple[str, str] | None:
        """The adler32 to verify against: the expected one (stage-in), or the local file's (stage-out)."""
        if request.direction is Direction.STAGE_IN:
            if request.checksum is None:
                return None
            kind = normalize_checksum_type(request.checksum[0], request.direction)
            return (kind, request.checksum[1].lower().zfill(8)) if kind == "adler32" else None
        if not ends.local.is_file():
            raise MissingFileError(f"output {request.lfn} not found at {ends.local}", request.direction)
        if request.checksum is not None:
            verify_checksum(ends.local, request.checksum, request.direction)
        return ("adler32", calculate_checksum(ends.local, "adler32", request.direction))

    # -- the XRootD Python client ------------------------------------------------------------------------------
    def _run_python(self, ready: Sequence[_Ready], stop: StopSignal | None) -> list[TransferResult]:
        """Stage-in with an expected checksum streams and verifies on the fly; the rest is one CopyProcess."""
        streamed = [k for k, item in enumerate(ready) if self._streams(item[1])]
        batched = [k for k, item in enumerate(ready) if not self._streams(item[1])]
        results: dict[int, TransferResult] = {}
        if batched:
            results.update(zip(batched, self._run_copyprocess([ready[k] for k in batched], stop), strict=True))
        if streamed:
            results.update(zip(streamed, self._run_streams([ready[k] for k in streamed], stop), strict=True))
        return [results[k] for k in range(len(ready))]

    @staticmethod
    def _streams(request: TransferRequest) -> bool:
        return request.direction is Direction.STAGE_IN and request.checksum is not None

    def _set_client_env(self, ready: Sequence[_Ready]) -> None:
        env = importlib.import_module("XRootD.client.env")
        shortest = min(int(request.timeout) for _, request, _, _ in ready)
        for key, value in self._client_env(shortest).items():
            env.EnvPutInt(key, value)

    def _run_streams(self, ready: Sequence[_Ready], stop: StopSignal | None) -> list[TransferResult]:
        self._set_client_env(ready)

        def one(k: int) -> TransferResult:
            _, request, ends, _ = ready[k]
            started = time.monotonic()
            assert request.checksum is not None
            try:
                ends.local.parent.mkdir(parents=True, exist_ok=True)
                checksum = stream_in(ends.remote, ends.local, request.checksum, timeout=request.timeout,
                                     lfn=request.lfn, classify=classify_xrootd_failure, stop=stop)
            except TransferError as exc:
                log.warning("transfer failed tool=xrdcp lfn=%s code=%d error=%s", request.lfn, exc.code, exc)
                return failure(request, self.name, exc, started, stop=stop, local=ends.local)
            except OSError as exc:
                error = TransferError(f"{request.lfn}: {exc}", request.direction)
                return failure(request, self.name, error, started, stop=stop, local=ends.local)
            return success(request, self.name, ends, checksum, started)

        def timed_out(k: int) -> TransferResult:
            request = ready[k][1]
            error = TransferTimeoutError(f"xrootd copy of {request.lfn} exceeded {request.timeout:.0f} s",
                                         request.direction)
            return failure(request, self.name, error, time.monotonic() - request.timeout, stop=stop,
                           local=ready[k][2].local)

        return parallel_map(one, [r.timeout + 5.0 for _, r, _, _ in ready], self.parallel, timed_out, stop=stop,
                            discard=lambda k: discard_partial(ready[k][2].local))

    def _run_copyprocess(self, ready: Sequence[_Ready], stop: StopSignal | None) -> list[TransferResult]:
        client = importlib.import_module("XRootD.client")  # the backend is imported only here (R10)
        self._set_client_env(ready)
        process = client.CopyProcess()
        process.parallel(max(self.parallel, 1))
        for _, request, ends, preset in ready:
            inbound = request.direction is Direction.STAGE_IN
            if inbound:
                ends.local.parent.mkdir(parents=True, exist_ok=True)
            process.add_job(
                ends.remote if inbound else str(ends.local),
                str(ends.local) if inbound else ends.remote,
                force=True, mkdir=True, posc=not inbound,
                checksummode="end2end", checksumtype="adler32",
                checksumpreset="" if preset is None else preset[1], rmBadCksum=True,
                cptimeout=max(int(request.timeout), 1), inittimeout=max(int(request.timeout), 1),
            )
        timer = _JobTimer(stop)
        status = process.prepare()
        if not status.ok:
            return self._all_failed(ready, status.message, timer.started)
        outcomes = _run_bounded(process, timer, sum(r.timeout for _, r, _, _ in ready) + 5.0, stop)
        if outcomes is None:  # the client did not end in time (or within CANCEL_WAIT of the stop): given up
            for _, request, ends, _ in ready:
                if request.direction is Direction.STAGE_IN:
                    discard_partial(ends.local)
                else:
                    _remove_remote(ends.remote)
            return [failure(r, self.name, TransferTimeoutError(f"xrootd copy of {r.lfn} did not end", r.direction),
                            timer.started, stop=stop, local=e.local) for _, r, e, _ in ready]
        return [
            self._python_result(request, ends, preset, outcomes[job] if job < len(outcomes) else {},
                                timer.started_at(job), stop=stop)
            for job, (_, request, ends, preset) in enumerate(ready)
        ]

    def _python_result(
        self,
        request: TransferRequest,
        ends: Endpoints,
        preset: tuple[str, str] | None,
        outcome: dict[str, object],
        started: float,
        *,
        stop: StopSignal | None,
    ) -> TransferResult:
        status = outcome.get("status")
        if status is None:
            error = TransferError("no result from CopyProcess", request.direction)
            return failure(request, self.name, error, started, stop=stop, local=ends.local)
        st: _Status = status  # type: ignore[assignment]
        if not getattr(status, "ok", False) and stop is not None and stop.is_set():
            if request.direction is Direction.STAGE_OUT:
                _remove_remote(ends.remote)  # a cancelled upload leaves a partial file: the client closed it
            return failure(request, self.name, TransferError(st.message, request.direction), started, stop=stop,
                           local=ends.local)
        if not getattr(status, "ok", False):
            error = classify_xrootd_failure(st.code, st.errno, st.message, request.direction, request.lfn)
            if isinstance(error, ChecksumMismatchError):
                error = self._mismatch(request, preset, outcome)
            log.warning("transfer failed tool=xrdcp lfn=%s code=%d error=%s", request.lfn, error.code, error)
            return failure(request, self.name, error, started, stop=stop, local=ends.local)
        target = str(outcome.get("targetCheckSum", ""))
        checksum = ("adler32", target.split(":", 1)[1]) if target.startswith("adler32:") else preset
        return success(request, self.name, ends, checksum, started)

    @staticmethod
    def _mismatch(
        request: TransferRequest, preset: tuple[str, str] | None, outcome: dict[str, object]
    ) -> ChecksumMismatchError:
        source = str(outcome.get("sourceCheckSum", "")).partition(":")[2] or (preset[1] if preset else "")
        target = str(outcome.get("targetCheckSum", "")).partition(":")[2]
        return ChecksumMismatchError(
            f"adler32 mismatch for {request.lfn}: expected {source}, got {target}",
            request.direction, "adler32", source, target,
        )

    def _all_failed(
        self, ready: Sequence[_Ready], why: str, started: float
    ) -> list[TransferResult]:
        return [
            failure(r, self.name, TransferError(f"xrootd copy not prepared: {why}", r.direction), started)
            for _, r, _, _ in ready
        ]

    # -- the xrdcp command -------------------------------------------------------------------------------------
    def _run_commands(self, ready: Sequence[_Ready], stop: StopSignal | None) -> list[TransferResult]:
        shortest = min(int(request.timeout) for _, request, _, _ in ready)
        environment = {f"XRD_{k.upper()}": str(v) for k, v in self._client_env(shortest).items()}

        def one(k: int) -> TransferResult:
            _, request, ends, preset = ready[k]
            return self._one_command(request, ends, preset, environment, stop=stop)

        def timed_out(k: int) -> TransferResult:
            request = ready[k][1]
            error = TransferTimeoutError(f"xrdcp of {request.lfn} exceeded {request.timeout:.0f} s", request.direction)
            return failure(request, self.name, error, time.monotonic() - request.timeout, stop=stop,
                           local=ready[k][2].local)

        timeouts = [r.timeout + 5.0 for _, r, _, _ in ready]  # the command's own timeout fires first
        return parallel_map(one, timeouts, self.parallel, timed_out, stop=stop,
                            discard=lambda k: discard_partial(ready[k][2].local))

    def _one_command(
        self, request: TransferRequest, ends: Endpoints, preset: tuple[str, str] | None, env: dict[str, str], *,
        stop: StopSignal | None,
    ) -> TransferResult:
        started = time.monotonic()
        inbound = request.direction is Direction.STAGE_IN
        if inbound:
            ends.local.parent.mkdir(parents=True, exist_ok=True)
        cksum = f"adler32:{preset[1]}" if preset else "adler32"
        try:
            remote = command_url(ends.remote, request.direction)  # a token goes in BEARER_TOKEN, not in argv
            src, dst = (remote.url, str(ends.local)) if inbound else (str(ends.local), remote.url)
            args = [self.command, "--nopbar", "--force", "--rm-bad-cksum", "--cksum", cksum, src, dst]
            done = run_command(args, request.timeout, request.direction, env={**env, **remote.env},
                               base_env=self.base_env, what=request.lfn, stop=stop)
        except TransferError as exc:
            return failure(request, self.name, exc, started, stop=stop, local=ends.local)
        if done.returncode != 0:
            code = 305 if done.returncode == 53 else 0
            error = classify_xrootd_failure(code, 0, done.stderr or done.stdout, request.direction, request.lfn)
            log.warning("transfer failed tool=xrdcp lfn=%s rc=%d code=%d", request.lfn, done.returncode, error.code)
            return failure(request, self.name, error, started, stop=stop, local=ends.local)
        checksum = preset
        if inbound and request.checksum and preset is None:
            try:
                checksum = verify_checksum(ends.local, request.checksum, request.direction)
            except TransferError as exc:
                return failure(request, self.name, exc, started)
        if checksum is None and inbound:
            checksum = ("adler32", calculate_checksum(ends.local, "adler32", request.direction))
        return success(request, self.name, ends, checksum, started)


def _run_bounded(
    process: object, timer: _JobTimer, timeout: float, stop: StopSignal | None
) -> list[dict[str, object]] | None:
    """``process.run(timer)``'s per-job outcomes, the run bounded by ``timeout`` seconds and by :data:`CANCEL_WAIT`
    seconds after ``stop`` (its handler cancels the jobs; a client that does not end by then is given up: None)."""
    outcome: list[list[dict[str, object]]] = []
    finished, wake = threading.Event(), threading.Event()  # wake: finished, or the stop came

    def run() -> None:
        try:
            outcome.append(process.run(timer)[1])  # type: ignore[attr-defined]
        finally:
            finished.set()
            wake.set()

    threading.Thread(target=contextvars.copy_context().run, args=(run,), name="copyprocess", daemon=True).start()
    with on_stop(stop, wake.set):
        wake.wait(timeout)
    if not finished.is_set() and stop is not None and stop.is_set():
        finished.wait(CANCEL_WAIT)
    if not outcome:
        log.warning("xrootd CopyProcess given up jobs_started=%d", len(timer.started_ids()))
        return None
    return outcome[0]


def _remove_remote(url: str) -> None:
    """Remove a cancelled upload's partial file (best effort, 5 s at most: the pilot is stopping)."""
    client = importlib.import_module("XRootD.client")
    parsed = client.URL(url)
    status, _ = client.FileSystem(f"{parsed.protocol}://{parsed.hostid}").rm(parsed.path, timeout=5)
    if not status.ok:
        log.warning("partial upload not removed url=%s error=%s", redact_url(url), status.message)


class _JobTimer:
    """A CopyProcess progress handler that notes when each job starts (for per-file seconds) and cancels the jobs
    once the stop is set (the client asks ``should_cancel`` as the data flows)."""

    def __init__(self, stop: StopSignal | None = None) -> None:
        self._stop = stop
        self.started = time.monotonic()
        self._begun: dict[int, float] = {}

    def begin(self, jobId: int, total: int, source: object, target: object) -> None:
        """XRootD job ``jobId`` (1-based) starts."""
        self._begun[jobId] = time.monotonic()

    def end(self, jobId: int, results: object) -> None:
        """Nothing to do: the results come back from ``run``."""

    def update(self, jobId: int, processed: int, total: int) -> None:
        """Nothing to do."""

    def should_cancel(self, jobId: int) -> bool:
        """Cancel once the stop is set (a timeout is each job's own ``cptimeout``)."""
        return self._stop is not None and self._stop.is_set()

    def started_ids(self) -> list[int]:
        """The XRootD job ids that began."""
        return sorted(self._begun)

    def started_at(self, job: int) -> float:
        """When job ``job`` (0-based) began, or when the run began."""
        return self._begun.get(job + 1, self.started)
