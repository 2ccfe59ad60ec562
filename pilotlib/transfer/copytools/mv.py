"""``mv``, ``cp`` and ``symlink``: files already in place (ARC, Harvester pre-staging), and the ``output.list``.

Stage-in takes the file from a local path (or ``file://`` URL) outside or inside the work directory and moves,
copies or links it to the request's destination inside the work directory. Stage-out moves or copies the output to
a local path (``file://`` URL) — or, with ``output_list`` (the ARC convention, PanDAWMS/pilot3
``pilot/copytool/mv.py``: ``create_output_list``), leaves it under its LFN in the output list's folder (ARC's
session directory) and appends ``<lfn> <destination URL>:checksumtype=<type>:checksumvalue=<value>`` to the list
so that ARC uploads it.

A copy (``cp``, or ``mv`` across file systems) goes in chunks through ``<name>.<pid>-<n>.part`` (one per copy, so
that copies to one place at once do not share it): its timeout or the pilot's stop ends it at the next chunk and
removes the partial file; the stop's reason is the result's error.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from pilotlib._redact import redact_url
from pilotlib.errors import Direction
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult, url_scheme
from pilotlib.transfer.checksum import calculate_checksum, normalize_checksum_type, verify_checksum
from pilotlib.transfer.copytools._common import Endpoints, endpoints, failure, success
from pilotlib.transfer.errors import MissingFileError, TransferError, TransferTimeoutError

__all__ = ["CpCopytool", "MvCopytool", "SymlinkCopytool"]

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024
_COPIES = itertools.count(1)  # numbers each copy's partial file within the process


def _plain_path(url: str) -> Path:
    """``file://localhost/a/b``, ``file:///a/b`` or ``/a/b`` -> ``/a/b``."""
    if url.startswith("file://"):
        rest = url[len("file://"):]
        return Path("/" + rest.split("/", 1)[1] if not rest.startswith("/") else rest)
    return Path(url)


def copy_with_deadline(
    source: Path, target: Path, deadline: float, direction: Direction, stop: StopSignal | None = None
) -> None:
    """Copy ``source`` to ``target`` in chunks; past ``deadline``, or once ``stop`` is set, remove the partial copy
    and raise.

    Raises:
        TransferTimeoutError: the copy did not finish by ``deadline`` (a ``time.monotonic()`` value).
        TransferError: ``stop`` was set during the copy.
    """
    # a partial file of this copy's own: two copies to one target at once (two pilots storing one name in one
    # place) must not truncate and rename away each other's partial file; the last one renamed into place wins
    partial = target.with_name(f"{target.name}.{os.getpid()}-{next(_COPIES)}.part")
    try:
        with open(source, "rb") as src, open(partial, "wb") as dst:
            while True:
                if stop is not None and stop.is_set():
                    raise TransferError(f"copy of {source.name} ended: the pilot is stopping", direction)
                if time.monotonic() > deadline:
                    raise TransferTimeoutError(f"copy of {source.name} exceeded its timeout", direction)
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                dst.write(chunk)
        shutil.copystat(source, partial)
        os.replace(partial, target)
    except BaseException:  # stopped, too late, or failed (a full disk): the partial file is this copy's to remove
        partial.unlink(missing_ok=True)
        raise


@attrs.frozen
class _Limits:
    """When a copy must end: its deadline (``time.monotonic()``) and the pilot's stop."""

    deadline: float
    stop: StopSignal | None


class _LocalCopytool:
    """The shared logic; subclasses set ``name`` (the operation)."""

    name = "local"
    schemes: tuple[str, ...] = ("file",)

    def __init__(self, output_list: str | Path | None = None, verify: bool = True) -> None:
        self.output_list = None if output_list is None else Path(output_list)
        self.verify = verify

    def unusable_reason(self) -> str | None:
        """Always usable: it needs only the local file system."""
        return None

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Move, copy or link each file, one after the other (local operations gain nothing from threads); once
        ``stop`` is set the copy under way ends and no other starts (each fails with the stop's reason)."""
        return [self._one(request, workdir, stop) for request in requests]

    def _one(self, request: TransferRequest, workdir: Path, stop: StopSignal | None) -> TransferResult:
        started = time.monotonic()
        ends: Endpoints | None = None
        try:
            ends = endpoints(request, workdir)
            if stop is not None and stop.is_set():
                raise TransferError(f"{self.name} of {request.lfn} not started: the pilot is stopping",
                                    request.direction)
            if request.direction is Direction.STAGE_IN:
                checksum = self._stage_in(request, ends, _Limits(started + request.timeout, stop))
            else:
                checksum = self._stage_out(request, ends, _Limits(started + request.timeout, stop))
        except TransferError as exc:
            log.warning("transfer failed tool=%s lfn=%s code=%d error=%s", self.name, request.lfn, exc.code, exc)
            return failure(request, self.name, exc, started, stop=stop, local=ends.local if ends else None)
        except OSError as exc:
            error = TransferError(f"{self.name} of {request.lfn} failed: {exc}", request.direction)
            return failure(request, self.name, error, started, stop=stop, local=ends.local if ends else None)
        result = success(request, self.name, ends, checksum, started)
        log.info("transfer done tool=%s lfn=%s seconds=%.2f", self.name, request.lfn, result.seconds)
        return result

    # -- stage-in ----------------------------------------------------------------------------------------------
    def _stage_in(self, request: TransferRequest, ends: Endpoints, limits: _Limits) -> tuple[str, str] | None:
        source = _plain_path(ends.remote)
        if not source.is_file():
            raise MissingFileError(f"input {request.lfn} not found at {source}", request.direction)
        target = ends.local
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        self._place(source, target, limits, request.direction)
        if request.checksum is not None and self.verify:
            return verify_checksum(target, request.checksum, request.direction)
        return None

    def _place(self, source: Path, target: Path, limits: _Limits, direction: Direction) -> None:
        raise NotImplementedError

    # -- stage-out ---------------------------------------------------------------------------------------------
    def _stage_out(self, request: TransferRequest, ends: Endpoints, limits: _Limits) -> tuple[str, str]:
        source = ends.local
        if not source.is_file():
            raise MissingFileError(f"output {request.lfn} not found at {source}", request.direction)
        kind = normalize_checksum_type(request.checksum[0] if request.checksum else "adler32", request.direction)
        if request.checksum is not None:
            checksum = verify_checksum(source, request.checksum, request.direction)
        else:
            checksum = (kind, calculate_checksum(source, kind, request.direction))
        if self.output_list is not None:
            target = self.output_list.parent / request.lfn
        elif url_scheme(ends.remote) == "file":
            target = _plain_path(ends.remote)
        else:
            raise TransferError(f"{self.name} can not write to {ends.remote} without an output list",
                                request.direction)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target != source:
            self._place(source, target, limits, request.direction)
        if self.output_list is not None:
            self._append_output_list(request.lfn, ends.remote, checksum)
        return checksum

    def _append_output_list(self, lfn: str, url: str, checksum: tuple[str, str]) -> None:
        assert self.output_list is not None
        line = f"{lfn} {url}:checksumtype={checksum[0]}:checksumvalue={checksum[1]}\n"
        with open(self.output_list, "a", encoding="utf-8") as handle:
            handle.write(line)
        log.info("output.list entry lfn=%s url=%s", lfn, redact_url(url))


class MvCopytool(_LocalCopytool):
    """Move files (a rename on the same file system, else a copy then a removal).

    Args:
        output_list: ARC's ``output.list`` to append stage-out entries to (the file then stays in its folder).
        verify: check the expected checksum after stage-in (default True).
    """

    name = "mv"

    def _place(self, source: Path, target: Path, limits: _Limits, direction: Direction) -> None:
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: another file system
                raise
            copy_with_deadline(source, target, limits.deadline, direction, limits.stop)
            source.unlink()


class CpCopytool(_LocalCopytool):
    """Copy files, bounded by the request's timeout. Same arguments as :class:`MvCopytool`."""

    name = "cp"

    def _place(self, source: Path, target: Path, limits: _Limits, direction: Direction) -> None:
        copy_with_deadline(source, target, limits.deadline, direction, limits.stop)


class SymlinkCopytool(_LocalCopytool):
    """Link input files into the work directory (stage-in only; stage-out of a link is refused).

    Same arguments as :class:`MvCopytool`.
    """

    name = "symlink"

    def _place(self, source: Path, target: Path, limits: _Limits, direction: Direction) -> None:
        if direction is Direction.STAGE_OUT:
            raise TransferError("symlink can not stage out (use mv or cp)", direction)
        target.symlink_to(source.resolve())
