"""The ``rucio`` copytool: rucio-clients downloads by DID (with the RSE chosen by replica selection) and uploads with
registration.

Requests for this tool name files by DID: on stage-in ``source`` is ``scope:lfn`` (or a replica URL, then downloaded
as that PFN) and ``ddmendpoint`` the RSE to read from (empty: Rucio picks); on stage-out ``destination`` is
``scope:lfn`` (or any text: the scope and LFN fields are used) and ``ddmendpoint`` the RSE to write to. The upload
registers the file (``register_after_upload``) with the request's GUID.

The flow follows PanDAWMS/pilot3 ``pilot/copytool/rucio.py`` (``_stage_in_api``: ``download_pfns`` when a TURL is
known, else ``download_dids`` with ``rse``, ``no_subdir`` and ``transfer_timeout``; ``_stage_out_api``:
``UploadClient.upload`` with ``rse``, ``did_scope``, the GUID and the transfer timeout). The rucio-clients API is not
timeout-safe for every protocol (the posix one ignores ``transfer_timeout``), so each call also runs under a
watchdog; on expiry the result is a :class:`~pilotlib.transfer.errors.TransferTimeoutError`. Downloads go to a
private scratch folder in the work directory and are moved into place only when they finished in time, so an
abandoned call can never overwrite or remove a later attempt's file; it removes its scratch folder when it ends.

rucio-clients offers no way to cancel a download or an upload under way (``DownloadClient`` runs the protocol's
``get`` in its own threads: the posix protocol copies in-process with ``shutil``, the xrootd one runs ``xrdcp``
through ``rucio.common.utils.execute_args``, a child of the pilot's process). So, once the pilot stops, the
children copying into the download's scratch folder (that protocol's ``xrdcp``, each retry's too) are killed, and
the call is waited for :data:`~pilotlib.transfer.copytools._common.CANCEL_WAIT` seconds at most; an in-process copy
still running then is given up with the stop's reason as its error, its scratch folder (the partial download)
removed at once, and again by its thread when it ends.

``rucio`` is imported only inside this module's methods (R10): without rucio-clients the tool says so in
:meth:`RucioCopytool.unusable_reason`. The client comes from ``client_factory``; without one, rucio-clients builds
its own from its usual configuration (``RUCIO_CONFIG`` or ``/opt/rucio/etc/rucio.cfg``), read by rucio, not by
pilotlib.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pilotlib._redact import redact_text, redact_url
from pilotlib.errors import Direction, PilotError
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult, failed_result, local_path
from pilotlib.transfer.checksum import calculate_checksum, verify_checksum
from pilotlib.transfer.copytools._common import CANCEL_WAIT, on_stop
from pilotlib.transfer.errors import (
    ChecksumMismatchError,
    MissingFileError,
    StorageUnavailableError,
    TransferError,
    TransferTimeoutError,
)
from pilotlib.transfer.replicas import DID_SCHEME

__all__ = ["DID_SCHEME", "RucioCopytool"]

log = logging.getLogger(__name__)

ClientFactory = Callable[[], object]


def _rucio_log(level: int, msg: str, *args: object, **kwargs: object) -> None:
    """rucio-clients' logger function (called like ``logging.log``), routed to a child of this module's logger.

    Redacted: rucio-clients logs PFNs and the commands its protocols run (``rse/protocols/xrootd.py`` logs
    ``xrootd.get: cmd: xrdcp -f <pfn> <dest>``), and a PFN may carry a token.
    """
    logger = logging.getLogger(__name__ + ".client")
    if not logger.isEnabledFor(level):
        return
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = " ".join(str(x) for x in (msg, *args))
    logger.log(level, "%s", redact_text(text), exc_info=bool(kwargs.get("exc_info")))


class RucioCopytool:
    """Download and upload through rucio-clients.

    Args:
        client_factory: builds a ``rucio.client.Client`` (called once per transfer batch); default: rucio's own.
        tracing: send Rucio traces (off by default).
        download_retries: attempts rucio-clients makes per replica (its own checksum check included).
    """

    name = "rucio"
    schemes: tuple[str, ...] = (DID_SCHEME, "root", "file", "davs", "https", "http", "srm", "gsiftp")

    def __init__(
        self, client_factory: ClientFactory | None = None, tracing: bool = False, download_retries: int = 1
    ) -> None:
        self._client_factory = client_factory
        self._tracing = tracing
        self._download_retries = download_retries

    def unusable_reason(self) -> str | None:
        """None when rucio-clients can be imported, else why not."""
        if importlib.util.find_spec("rucio") is None or importlib.util.find_spec("rucio.client") is None:
            return "rucio-clients is not installed (pip install rucio-clients)"
        return None

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Transfer each request in turn; one result per request, never raising for a single file.

        Once ``stop`` is set, the call under way is given up within
        :data:`~pilotlib.transfer.copytools._common.CANCEL_WAIT` seconds and no other starts; they fail with the
        stop's reason.
        """
        results: list[TransferResult] = []
        client: object | None = None
        for request in requests:
            started = time.monotonic()
            try:
                if stop is not None and stop.is_set():
                    raise TransferError(f"rucio {request.direction.value} of {request.lfn} not started: stopping",
                                        request.direction)
                if client is None:
                    client = self._client(request.direction)
                results.append(self._one(client, request, workdir, started, stop))
            except TransferError as exc:
                error: PilotError = exc if stop is None or stop.reason is None else stop.reason
                results.append(failed_result(request, self.name, error, time.monotonic() - started))
        return results

    def _client(self, direction: Direction) -> object:
        try:
            if self._client_factory is not None:
                return self._client_factory()
            from rucio.client import Client  # noqa: PLC0415 - the backend is imported only when used (R10)

            return Client()
        except Exception as exc:  # rucio raises many types for a bad configuration or an unreachable server
            raise StorageUnavailableError(f"cannot connect to Rucio: {type(exc).__name__}: {exc}", direction) from exc

    def _one(
        self, client: object, request: TransferRequest, workdir: Path, started: float, stop: StopSignal | None
    ) -> TransferResult:
        if request.direction is Direction.STAGE_IN:
            target = local_path(workdir, request.destination, request.direction)
            try:
                scratch = Path(tempfile.mkdtemp(prefix=".rucio-", dir=target.parent))
            except OSError as exc:
                reason = exc.strerror or exc
                raise TransferError(f"cannot write in {target.parent}: {reason}", request.direction) from exc
            try:
                url = _watchdog(lambda: self._download(client, request, scratch), request, scratch, stop)
                _move_into_place(scratch / _did(request)[1], target, request.direction)
            finally:
                if not scratch.exists() or not _is_running(scratch):
                    shutil.rmtree(scratch, ignore_errors=True)
            return self._result(request, url, str(target), target, started, checksum=_checksum(request, target))
        source = local_path(workdir, request.source, request.direction)
        if not source.is_file():
            raise MissingFileError(f"local file {source} does not exist", request.direction)
        checksum = _checksum(request, source)  # a mismatch with the job's checksum is not uploaded
        url = _watchdog(lambda: self._upload(client, request, source), request, None, stop)
        return self._result(request, url, str(source), source, started, checksum=checksum)

    def _result(
        self, request: TransferRequest, url: str, local: str, path: Path, started: float, *, checksum: tuple[str, str]
    ) -> TransferResult:
        return TransferResult(
            lfn=request.lfn,
            direction=request.direction,
            tool=self.name,
            url=url,
            local_path=local,
            size=path.stat().st_size,
            seconds=time.monotonic() - started,
            ddmendpoint=request.ddmendpoint,
            guid=request.guid,
            checksum=checksum,
        )

    # -- stage-in -----------------------------------------------------------------------------------------------
    def _download(self, client: object, request: TransferRequest, scratch: Path) -> str:
        if "://" in request.source and redact_text(request.source) != request.source:
            # rucio-clients' protocols may run a command with the PFN as an argument (rse/protocols/xrootd.py: xrdcp,
            # rse/protocols/gfal.py CLI: gfal-copy): a PFN with a secret would show it in /proc/<pid>/cmdline
            raise TransferError(f"{redact_url(request.source)}: a PFN with a token or signature is not given to "
                                "rucio-clients, whose protocols may put it on a command line", request.direction)
        from rucio.client.downloadclient import DownloadClient  # noqa: PLC0415 - the backend is imported only when used (R10)

        downloader = DownloadClient(client=client, logger=_rucio_log, tracing=self._tracing)
        scope, name = _did(request)
        item: dict[str, Any] = {
            "did": f"{scope}:{name}",
            "base_dir": str(scratch),
            "no_subdir": True,
            "transfer_timeout": int(request.timeout),
        }
        if request.ddmendpoint:
            item["rse"] = request.ddmendpoint
        traces: list[dict[str, Any]] = []
        try:
            if "://" in request.source:
                item["pfn"] = request.source
                out = downloader.download_pfns([item], 1, traces_copy_out=traces,
                                               deactivate_file_download_exceptions=True)
            else:
                out = downloader.download_dids([item], 1, traces_copy_out=traces,
                                               deactivate_file_download_exceptions=True)
        except Exception as exc:  # translate every rucio-clients failure once, here
            raise _translate(exc, request) from exc
        _check_download(out, traces, request)
        return _source_url(traces, request)

    # -- stage-out ----------------------------------------------------------------------------------------------
    def _upload(self, client: object, request: TransferRequest, source: Path) -> str:
        from rucio.client.uploadclient import UploadClient  # noqa: PLC0415 - the backend is imported only when used (R10)

        uploader = UploadClient(_client=client)
        uploader.tracing = self._tracing  # the constructor's tracing=False path is broken in rucio-clients 41
        scope, name = _did(request)
        item: dict[str, Any] = {
            "path": str(source),
            "rse": request.ddmendpoint,
            "did_scope": scope,
            "did_name": name,
            "register_after_upload": True,
            "transfer_timeout": int(request.timeout),
        }
        if request.guid:
            item["guid"] = request.guid
        try:
            uploader.upload([item], ignore_availability=True)
            return _replica_url(client, scope, name, request.ddmendpoint)
        except Exception as exc:  # translate every rucio-clients failure once, here
            raise _translate(exc, request) from exc


def _checksum(request: TransferRequest, path: Path) -> tuple[str, str]:
    """The local file's checksum, checked against the request's when it has one (as every copytool does: rucio-clients
    only compares a download with Rucio's catalogue, which a job's own checksum may contradict).

    Raises:
        ChecksumMismatchError: GETADMISMATCH / PUTADMISMATCH (or the md5 codes).
    """
    if request.checksum is not None:
        return verify_checksum(path, request.checksum, request.direction)
    return "adler32", calculate_checksum(path, "adler32", request.direction)


def _did(request: TransferRequest) -> tuple[str, str]:
    text = request.source if request.direction is Direction.STAGE_IN else request.destination
    if request.scope:
        return request.scope, request.lfn
    if "://" not in text and text.count(":") == 1:
        scope, name = text.split(":")
        return scope, name
    raise MissingFileError(f"no Rucio scope for {request.lfn}", request.direction)


def _move_into_place(downloaded: Path, target: Path, direction: Direction) -> None:
    try:
        downloaded.replace(target)
    except OSError as exc:
        raise TransferError(f"cannot move the download to {target}: {exc.strerror or exc}", direction) from exc


def _check_download(out: list[dict[str, Any]], traces: list[dict[str, Any]], request: TransferRequest) -> None:
    state = str(out[0].get("clientState", "")) if out else "FILE_NOT_FOUND"
    state = state.rsplit(".", 1)[-1]
    if state in ("DONE", "ALREADY_DONE"):
        return
    reason = next((str(t.get("stateReason")) for t in reversed(traces) if t.get("stateReason")), state)
    where = f" on {request.ddmendpoint}" if request.ddmendpoint else ""
    if state == "FILE_NOT_FOUND":
        raise MissingFileError(f"no replica of {request.scope}:{request.lfn}{where}: {reason}", request.direction)
    if state == "FAIL_VALIDATE" or "checksum" in reason.lower():
        raise ChecksumMismatchError(f"{request.lfn}{where}: {reason}", request.direction)
    raise StorageUnavailableError(f"download of {request.lfn}{where} failed: {reason}", request.direction)


def _source_url(traces: list[dict[str, Any]], request: TransferRequest) -> str:
    for trace in reversed(traces):
        if trace.get("url"):
            return str(trace["url"])
    return request.source


def _replica_url(client: Any, scope: str, name: str, rse: str) -> str:
    for replica in client.list_replicas([{"scope": scope, "name": name}], rse_expression=rse or None):
        for pfn in replica.get("pfns", {}):
            return str(pfn)
    return f"{scope}:{name}"


def _translate(exc: Exception, request: TransferRequest) -> TransferError:
    kind = type(exc).__name__
    text = f"{kind}: {exc}".replace("\n", " ")
    if kind in ("DataIdentifierNotFound", "SourceNotFound", "FileNotFoundError", "NoFilesDownloaded"):
        return MissingFileError(f"{request.lfn}: {text}", request.direction)
    if "checksum" in text.lower() and "mismatch" in text.lower():
        return ChecksumMismatchError(f"{request.lfn}: {text}", request.direction)
    return StorageUnavailableError(f"rucio {request.direction.value} of {request.lfn} failed: {text}",
                                   request.direction)


_RUNNING: set[Path] = set()
"""Scratch folders of downloads still running (a timed-out download cleans its own folder when it ends)."""


def _is_running(scratch: Path) -> bool:
    return scratch in _RUNNING


def _kill_children_writing(folder: Path) -> None:
    """SIGKILL this process's children whose command line names ``folder`` (a rucio protocol's ``xrdcp`` started
    through ``rucio.common.utils.execute_args``, outside our control otherwise); Linux ``/proc`` only."""
    me, needle = os.getpid(), str(folder).encode()
    try:
        entries = [e for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return
    for entry in entries:
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == me and needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                log.warning("rucio copy process killed pid=%s", entry.name)
        except (OSError, ValueError, IndexError):
            continue


def _end_stopped(done: threading.Event, box: dict[str, object], partial: Path | None,
                 request: TransferRequest) -> None:
    """After the stop: kill the copy's command, if any; wait :data:`CANCEL_WAIT` seconds for the call; then give it
    up (raise), removing its scratch folder."""
    deadline = time.monotonic() + CANCEL_WAIT
    while time.monotonic() < deadline:  # rucio-clients retries: each new try's command is killed too
        if partial is not None:
            _kill_children_writing(partial)  # a protocol's command (xrdcp) copying into the scratch folder
        if done.wait(min(0.2, max(deadline - time.monotonic(), 0.0))):
            return  # an in-process copy can not be cancelled: it was waited for with a bound
    box["late"] = True
    if partial is not None:
        shutil.rmtree(partial, ignore_errors=True)
    log.warning("rucio %s given up lfn=%s reason=the pilot is stopping", request.direction.value, request.lfn)
    raise TransferError(f"rucio {request.direction.value} of {request.lfn} given up: the pilot is stopping",
                        request.direction)


def _watchdog(
    call: Callable[[], str], request: TransferRequest, partial: Path | None, stop: StopSignal | None = None
) -> str:
    """Run ``call`` in a helper thread and give up after ``request.timeout`` seconds, or :data:`CANCEL_WAIT` seconds
    after ``stop`` is set (then ``partial``, the scratch folder, is removed at once)."""
    box: dict[str, object] = {}
    if partial is not None:
        _RUNNING.add(partial)
    done = threading.Event()
    wake = threading.Event()  # the call ended, or the stop came

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            if partial is not None:
                _RUNNING.discard(partial)
            done.set()
            wake.set()
            if box.get("late") and partial is not None:
                shutil.rmtree(partial, ignore_errors=True)

    threading.Thread(target=run, name=f"rucio-{request.lfn}", daemon=True).start()
    with on_stop(stop, wake.set):
        wake.wait(request.timeout)
    if stop is not None and stop.is_set() and not done.is_set():
        _end_stopped(done, box, partial, request)
    if not done.is_set():
        box["late"] = True
        raise TransferTimeoutError(
            f"rucio {request.direction.value} of {request.lfn} exceeded its timeout of {request.timeout:.0f} s",
            request.direction,
        )
    error = box.get("error")
    if isinstance(error, PilotError):
        raise error
    if isinstance(error, BaseException):
        raise _translate(error if isinstance(error, Exception) else RuntimeError(str(error)), request) from error
    return str(box["value"])

