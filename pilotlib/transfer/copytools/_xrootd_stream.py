"""Stage-in of one file with the XRootD client's ``File`` API, verifying the checksum while the data streams.

Used by :class:`~pilotlib.transfer.copytools.XrdcpCopytool` for stage-in with an expected checksum: the adler32
(or md5) is computed on the chunks as they arrive, so verification costs no second read of the file. The copy is
written to ``<name>.part`` and renamed into place only when the checksum matches. With a stop, each chunk is read
asynchronously and waited for until it arrives or the stop is set: a stop abandons the read at once, closes the
file and removes the partial copy.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotlib.errors import Direction
from pilotlib.stop import StopSignal
from pilotlib.transfer.checksum import RunningChecksum, normalize_checksum_value
from pilotlib.transfer.copytools._common import on_stop
from pilotlib.transfer.errors import ChecksumMismatchError, TransferError, TransferTimeoutError

__all__ = ["CHUNK", "Classifier", "stream_in"]

CHUNK = 8 * 1024 * 1024

Classifier = Callable[[int, int, str, Direction, str], TransferError]
"""Turns an XRootD status (code, errno, message) into a transfer error."""


def stream_in(
    url: str, target: Path, expected: tuple[str, str], *, timeout: float, lfn: str, classify: Classifier,
    stop: StopSignal | None = None,
) -> tuple[str, str]:
    """Copy ``url`` to ``target``, verifying ``expected`` on the fly; return the computed ``(type, value)``.

    Raises:
        TransferError: ``stop`` was set (the partial copy is removed).
        ChecksumMismatchError: the data does not match (no file is left at ``target``).
        TransferTimeoutError: past ``timeout`` seconds.
        TransferError: what ``classify`` makes of an XRootD failure status.
    """
    client = importlib.import_module("XRootD.client")
    flags = importlib.import_module("XRootD.client.flags")
    direction = Direction.STAGE_IN
    deadline = time.monotonic() + timeout
    running = RunningChecksum(expected[0], direction)
    want = normalize_checksum_value(running.kind, expected[1])
    partial = target.with_name(target.name + ".part")
    remote = client.File()
    status, _ = remote.open(url, flags.OpenFlags.READ, timeout=_left(deadline, lfn))
    if not status.ok:
        raise classify(status.code, status.errno, status.message, direction, lfn)
    try:
        _copy(remote, partial, running, deadline=deadline, lfn=lfn, classify=classify, stop=stop)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        remote.close(timeout=1 if stop is not None and stop.is_set() else 5)
    if running.value != want:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{running.kind} mismatch for {lfn}: expected {want}, got {running.value}",
                                    direction, running.kind, want, running.value)
    os.replace(partial, target)
    return running.kind, running.value


def _copy(
    remote: object, partial: Path, running: RunningChecksum, *, deadline: float, lfn: str, classify: Classifier,
    stop: StopSignal | None,
) -> None:
    offset = 0
    with open(partial, "wb") as out:
        while True:
            status, data = _read(remote, offset, _left(deadline, lfn), stop, lfn)
            if not status.ok:
                raise classify(status.code, status.errno, status.message, Direction.STAGE_IN, lfn)
            if not data:
                return
            out.write(data)
            running.update(data)
            offset += len(data)


def _read(remote: object, offset: int, timeout: int, stop: StopSignal | None, lfn: str) -> tuple[Any, bytes]:
    """One chunk; with a stop, read asynchronously and give the read up as soon as the stop is set."""
    read = remote.read  # type: ignore[attr-defined]
    if stop is None:
        status, data = read(offset, CHUNK, timeout=timeout)
        return status, data
    arrived = threading.Event()
    box: list[tuple[Any, bytes]] = []

    def done(status: Any, data: bytes, _hosts: object = None) -> None:
        box.append((status, data))
        arrived.set()

    with on_stop(stop, arrived.set):
        started = read(offset, CHUNK, timeout=timeout, callback=done)
        if not getattr(started, "ok", False):
            return started, b""
        arrived.wait(timeout + 5.0)
    if stop.is_set() or not box:
        raise TransferError(f"xrootd read of {lfn} ended: the pilot is stopping" if stop.is_set()
                            else f"xrootd read of {lfn} gave no answer", Direction.STAGE_IN)
    return box[0]


def _left(deadline: float, lfn: str) -> int:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransferTimeoutError(f"xrootd copy of {lfn} exceeded its timeout", Direction.STAGE_IN)
    return max(int(left), 1)


