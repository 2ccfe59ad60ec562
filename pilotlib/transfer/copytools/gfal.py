"""``gfal``: transfers through gfal2-python (file, root, http/https, dav/davs, and any other gfal2 plugin).

Each file is handled in a bounded pool of threads (``parallel``), each with its own gfal2 context (a context is
not shared between threads). Stage-in with an expected checksum reads the file through gfal2's POSIX-like API
(``open``/``read_bytes``) and checksums the chunks as they arrive, renaming ``<name>.part`` into place only on a
match; without one it is a ``filecopy`` and the copy's adler32 is computed. Stage-out computes the local
checksum first and has gfal2 compare it with the storage's (``checksum_mode.both``) when ``verify_remote`` is
on. The per-file timeout is given to gfal2 (transfer, checksum and namespace timeouts) and also enforced around
the call: a call still blocked at its deadline is cancelled (``Gfal2Context.cancel()``), waited for a few seconds,
then reported as a timeout (its partial copy removed). A stop cancels the file's context at once: the copy fails
with the stop's reason and leaves no partial file.

Error translation follows PanDAWMS/pilot3 ``pilot/copytool/gfal.py`` and ``pilot/copytool/common.py``
(errno and message of the gfal2 ``GError``).
"""

from __future__ import annotations

import contextlib
import errno as errnos
import importlib.util
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from pilotlib.errors import Direction
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult
from pilotlib.transfer.checksum import (
    RunningChecksum,
    calculate_checksum,
    normalize_checksum_type,
    normalize_checksum_value,
    verify_checksum,
)
from pilotlib.transfer.copytools._common import (
    Endpoints,
    TimeoutHandlers,
    endpoints,
    failure,
    local_of,
    on_stop,
    parallel_map,
    success,
)
from pilotlib.transfer.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    FileExistsTransferError,
    MissingFileError,
    NoSpaceError,
    StorageUnavailableError,
    TransferError,
    TransferTimeoutError,
)

__all__ = ["GfalCopytool", "classify_gfal_failure"]

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024
_UNREACHABLE = {errnos.ECONNREFUSED, errnos.EHOSTDOWN, errnos.EHOSTUNREACH, errnos.ENETUNREACH, errnos.ECONNRESET}


class _RemoteFile(Protocol):
    def read_bytes(self, size: int) -> bytes: ...


class _Context(Protocol):
    def open(self, url: str, mode: str) -> _RemoteFile: ...
    def transfer_parameters(self) -> object: ...
    def filecopy(self, params: object, source: str, destination: str) -> int: ...
    def set_opt_integer(self, group: str, key: str, value: int) -> None: ...
    def cancel(self) -> int: ...


def classify_gfal_failure(  # noqa: PLR0911  (a flat decision table)
    code: int, message: str, direction: Direction, lfn: str
) -> TransferError:
    """Translate a gfal2 ``GError`` (errno and message) into a transfer error."""
    text = f"{lfn}: {message.strip()}"
    lowered = message.lower()
    if "checksum" in lowered and ("mismatch" in lowered or "error" in lowered or "do not match" in lowered):
        return ChecksumMismatchError(text, direction)
    if code in (errnos.ETIMEDOUT, errnos.ETIME) or "timed out" in lowered or "timeout" in lowered:
        return TransferTimeoutError(text, direction)
    if code == errnos.ENOENT or "no such file" in lowered or "404" in lowered:
        return MissingFileError(text, direction)
    if code in _UNREACHABLE or "could not connect" in lowered or "connection error" in lowered:
        return StorageUnavailableError(text, direction)
    if code in (errnos.EACCES, errnos.EPERM) or "401" in lowered or "403" in lowered:
        return AuthenticationError(text, direction)
    if code in (errnos.ENOSPC, errnos.EDQUOT):
        return NoSpaceError(text, direction)
    if code == errnos.EEXIST:
        return FileExistsTransferError(text, direction)
    return TransferError(text, direction)


class GfalCopytool:
    """Copy files with gfal2.

    Args:
        parallel: files copied at once.
        verify_remote: on stage-out, have gfal2 compare the local checksum with the storage's.
        stream: stage in a file with an expected checksum by reading it through gfal2's POSIX-like API and
            checksumming the chunks as they arrive (no second read); off: ``filecopy``, then verify the copy.
    """

    name = "gfal"
    schemes: tuple[str, ...] = ("file", "root", "xroot", "http", "https", "dav", "davs", "srm", "gsiftp", "s3")

    def __init__(self, parallel: int = 4, verify_remote: bool = True, stream: bool = True) -> None:
        self.parallel = parallel
        self.verify_remote = verify_remote
        self.stream = stream
        self._contexts: queue.SimpleQueue[_Context] = queue.SimpleQueue()

    def unusable_reason(self) -> str | None:
        """None when gfal2 imports and a context can be made (it needs its plugins), else why not."""
        if importlib.util.find_spec("gfal2") is None:
            return "the gfal2 Python binding is not importable (Debian python3-gfal2 or pip gfal2-python)"
        try:
            self._contexts.put(self._new_context())
        except Exception as exc:  # gfal2.GError, or an ImportError from a broken binding
            return f"gfal2 context can not be created: {exc}"
        return None

    @staticmethod
    def _new_context() -> _Context:
        import gfal2  # noqa: PLC0415  (backend imported only here: R10)

        context: _Context = gfal2.creat_context()
        return context

    def _context(self) -> _Context:
        try:
            return self._contexts.get_nowait()
        except queue.Empty:
            return self._new_context()

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Copy the files, ``parallel`` at once; one result per request, in order. ``stop`` cancels the copies
        under way (``Gfal2Context.cancel()``)."""
        running: dict[int, _Context] = {}
        lock = threading.Lock()

        def one(i: int) -> TransferResult:
            return self._one(requests[i], workdir, stop, _Slot(running, lock, i))

        def cancel(i: int) -> None:
            with lock:
                context = running.get(i)
            if context is not None:
                context.cancel()

        handlers = TimeoutHandlers("gfal copy", requests, workdir, stop)
        return parallel_map(one, [r.timeout for r in requests], self.parallel, handlers.timed_out, stop=stop,
                            cancel=cancel, discard=handlers.discard)

    def _one(self, request: TransferRequest, workdir: Path, stop: StopSignal | None, slot: _Slot) -> TransferResult:
        started = time.monotonic()
        local = local_of(request, workdir)
        try:
            ends = endpoints(request, workdir)
            context = self._context()
            with slot.holding(context), on_stop(stop, context.cancel):
                if request.direction is Direction.STAGE_IN:
                    checksum = self._stage_in(context, request, ends, stop)
                else:
                    checksum = self._stage_out(context, request, ends)
            self._contexts.put(context)
        except TransferError as exc:
            log.warning("transfer failed tool=gfal lfn=%s code=%d error=%s", request.lfn, exc.code, exc)
            return failure(request, self.name, exc, started, stop=stop, local=local)
        except Exception as exc:  # the binding's GError (or an import failure), translated once here
            error = classify_gfal_failure(getattr(exc, "code", 0), str(getattr(exc, "message", exc)),
                                          request.direction, request.lfn)
            log.warning("transfer failed tool=gfal lfn=%s code=%d error=%s", request.lfn, error.code, error)
            return failure(request, self.name, error, started, stop=stop, local=local)
        return success(request, self.name, ends, checksum, started)

    def _params(self, context: _Context, request: TransferRequest) -> object:
        seconds = max(int(request.timeout), 1)
        for group, key in (("CORE", "CHECKSUM_TIMEOUT"), ("CORE", "NAMESPACE_TIMEOUT"),
                           ("HTTP PLUGIN", "OPERATION_TIMEOUT")):
            context.set_opt_integer(group, key, seconds)
        params = context.transfer_parameters()
        params.overwrite = True  # type: ignore[attr-defined]
        params.create_parent = True  # type: ignore[attr-defined]
        params.timeout = seconds  # type: ignore[attr-defined]
        return params

    def _stage_in(
        self, context: _Context, request: TransferRequest, ends: Endpoints, stop: StopSignal | None
    ) -> tuple[str, str]:
        ends.local.parent.mkdir(parents=True, exist_ok=True)
        if request.checksum is not None and self.stream:
            return self._stream_in(context, request, ends, request.checksum, stop)
        context.filecopy(self._params(context, request), ends.remote, ends.local.as_uri())
        if request.checksum is not None:
            return verify_checksum(ends.local, request.checksum, request.direction)
        return ("adler32", calculate_checksum(ends.local, "adler32", request.direction))

    def _stream_in(
        self, context: _Context, request: TransferRequest, ends: Endpoints, expected: tuple[str, str],
        stop: StopSignal | None,
    ) -> tuple[str, str]:
        """Read the remote file through gfal2's POSIX-like API, checksumming the chunks as they arrive; a stop ends
        the loop at the next chunk (the context's cancel may end a read sooner)."""
        self._params(context, request)  # sets the context's timeouts
        running = RunningChecksum(expected[0], request.direction)
        want = normalize_checksum_value(running.kind, expected[1])
        partial = ends.local.with_name(ends.local.name + ".part")
        remote = context.open(ends.remote, "r")
        try:
            with open(partial, "wb") as out:
                while chunk := remote.read_bytes(_CHUNK):
                    if stop is not None and stop.is_set():
                        raise TransferError(f"gfal read of {request.lfn} ended: the pilot is stopping",
                                            request.direction)
                    out.write(chunk)
                    running.update(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if running.value != want:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatchError(f"{running.kind} mismatch for {request.lfn}: expected {want}, "
                                        f"got {running.value}", request.direction, running.kind, want, running.value)
        os.replace(partial, ends.local)
        return running.kind, running.value

    def _stage_out(self, context: _Context, request: TransferRequest, ends: Endpoints) -> tuple[str, str]:
        import gfal2  # noqa: PLC0415

        if not ends.local.is_file():
            raise MissingFileError(f"output {request.lfn} not found at {ends.local}", request.direction)
        kind = normalize_checksum_type(request.checksum[0] if request.checksum else "adler32", request.direction)
        if request.checksum is not None:
            checksum = verify_checksum(ends.local, request.checksum, request.direction)
        else:
            checksum = (kind, calculate_checksum(ends.local, kind, request.direction))
        params = self._params(context, request)
        if self.verify_remote:
            params.set_checksum(gfal2.checksum_mode.both, kind.upper(), checksum[1])  # type: ignore[attr-defined]
        context.filecopy(params, ends.local.as_uri(), ends.remote)
        return checksum


class _Slot:
    """Where a running copy's context is kept for its timeout's cancel (by the file's index)."""

    def __init__(self, running: dict[int, _Context], lock: threading.Lock, index: int) -> None:
        self._running = running
        self._lock = lock
        self._index = index

    @contextlib.contextmanager
    def holding(self, context: _Context) -> Iterator[None]:
        with self._lock:
            self._running[self._index] = context
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(self._index, None)
