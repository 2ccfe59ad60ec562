"""Stage-in of one file with the XRootD client's ``File`` API, verifying the checksum while the data streams.

Used by :class:`~pilotlib.transfer.copytools.XrdcpCopytool` for stage-in with an expected checksum: the adler32
(or md5) is computed on the chunks as they arrive, so verification costs no second read of the file. The copy is
written to ``<name>.part`` and renamed into place only when the checksum matches.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from pilotlib.errors import Direction
from pilotlib.transfer.checksum import RunningChecksum, normalize_checksum_value
from pilotlib.transfer.errors import ChecksumMismatchError, TransferError, TransferTimeoutError

__all__ = ["CHUNK", "Classifier", "stream_in"]

CHUNK = 8 * 1024 * 1024

Classifier = Callable[[int, int, str, Direction, str], TransferError]
"""Turns an XRootD status (code, errno, message) into a transfer error."""


def stream_in(
    url: str, target: Path, expected: tuple[str, str], *, timeout: float, lfn: str, classify: Classifier
) -> tuple[str, str]:
    """Copy ``url`` to ``target``, verifying ``expected`` on the fly; return the computed ``(type, value)``.

    Raises:
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
        _copy(remote, partial, running, deadline=deadline, lfn=lfn, classify=classify)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        remote.close(timeout=5)
    if running.value != want:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{running.kind} mismatch for {lfn}: expected {want}, got {running.value}",
                                    direction, running.kind, want, running.value)
    os.replace(partial, target)
    return running.kind, running.value


def _copy(
    remote: object, partial: Path, running: RunningChecksum, *, deadline: float, lfn: str, classify: Classifier
) -> None:
    read = remote.read  # type: ignore[attr-defined]
    offset = 0
    with open(partial, "wb") as out:
        while True:
            status, data = read(offset, CHUNK, timeout=_left(deadline, lfn))
            if not status.ok:
                raise classify(status.code, status.errno, status.message, Direction.STAGE_IN, lfn)
            if not data:
                return
            out.write(data)
            running.update(data)
            offset += len(data)


def _left(deadline: float, lfn: str) -> int:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransferTimeoutError(f"xrootd copy of {lfn} exceeded its timeout", Direction.STAGE_IN)
    return max(int(left), 1)


