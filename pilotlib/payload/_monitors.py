"""Payload monitors: small objects with one ``check``, run from the runner's wait loop (private module).

Defaults are production pilots' (``/work/shared/PANDA.md`` section 6; pilot3 ``pilot/util/default.cfg``: looping limit
7200 s checked every 900 s, stdout limit 2 GiB, free space while running 1 GB checked every 60 s, memory checked
every 60 s; the checks themselves in ``pilot/util/monitoring.py`` and ``pilot/util/loopingjob.py``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from pilotlib.errors import PilotError
from pilotlib.payload._usage import ResourceSnapshot, read_prmon_summary
from pilotlib.payload.errors import (
    LoopingJobError,
    MemoryLimitExceededError,
    NoLocalSpaceError,
    ReachedMaxTimeError,
    StdoutTooBigError,
    UserDirTooLargeError,
)

__all__ = [
    "FreeDiskMonitor",
    "LoopingMonitor",
    "MemoryMonitor",
    "Monitor",
    "MonitorContext",
    "StdoutSizeMonitor",
    "WalltimeMonitor",
    "WorkdirSizeMonitor",
]

GB = 1000**3
GiB = 1024**3


@attrs.frozen
class MonitorContext:
    """What a monitor sees at one check.

    Attributes:
        now: the runner's clock (seconds since the epoch).
        started: when the payload started (same clock).
        workdir: the payload's work directory.
        stdout: the payload's stdout file.
        stderr: the payload's stderr file.
        snapshot: the latest reading of the payload's process tree (``None`` before the first).
    """

    now: float
    started: float
    workdir: Path
    stdout: Path
    stderr: Path
    snapshot: ResourceSnapshot | None = None


@runtime_checkable
class Monitor(Protocol):
    """One check of a running payload, called every ``interval`` seconds; returns the error when a limit is breached."""

    @property
    def interval(self) -> float:
        """Seconds between two checks."""
        ...

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """Return the error to kill the payload with, or ``None`` when all is well."""
        ...


@attrs.frozen
class WalltimeMonitor:
    """Wall-time limit of the job (``max_seconds`` since start) and the pilot's end of life (``deadline``, epoch).

    Either limit reached gives :class:`~pilotlib.payload.errors.ReachedMaxTimeError` (1213). ``margin`` seconds are
    kept before the deadline so the pilot can still stage out the log and report.
    """

    max_seconds: float | None = None
    deadline: float | None = None
    margin: float = 0.0
    interval: float = 10.0

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        ran = ctx.now - ctx.started
        if self.max_seconds is not None and ran >= self.max_seconds:
            return ReachedMaxTimeError(f"payload ran {ran:.0f} s, wall-time limit is {self.max_seconds:.0f} s")
        if self.deadline is not None and ctx.now >= self.deadline - self.margin:
            left = self.deadline - ctx.now
            return ReachedMaxTimeError(f"pilot lifetime nearly over ({left:.0f} s left, margin {self.margin:.0f} s)")
        return None


def _files(root: Path, max_entries: int) -> Iterator[os.stat_result]:
    """``stat`` of the regular files under ``root`` (symlinks not followed), at most ``max_entries`` entries seen."""
    seen = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(itertools.islice(it, max_entries - seen))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield entry.stat(follow_symlinks=False)
            except OSError:
                continue
        if seen >= max_entries:
            return


def newest_mtime(root: Path, max_entries: int = 20000) -> float | None:
    """The newest modification time of the files under ``root`` (symlinks not followed), scanning at most
    ``max_entries`` entries; ``None`` when no file is found."""
    return max((st.st_mtime for st in _files(root, max_entries)), default=None)


@attrs.frozen
class LoopingMonitor:
    """Looping job: no file in the work directory modified for ``limit`` seconds -> LOOPINGJOB (1150).

    The payload's start counts as a modification, so a fresh payload is never looping. The scan is bounded by
    ``max_entries``.
    """

    limit: float = 7200.0
    interval: float = 900.0
    max_entries: int = 20000

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        newest = max(newest_mtime(ctx.workdir, self.max_entries) or ctx.started, ctx.started)
        idle = ctx.now - newest
        if idle > self.limit:
            return LoopingJobError(f"no file in {ctx.workdir} modified for {idle:.0f} s (limit {self.limit:.0f} s)")
        return None


@attrs.frozen
class MemoryMonitor:
    """Memory: PSS of the payload's process tree above ``limit_kb`` -> PAYLOADEXCEEDMAXMEM (1235).

    When ``prmon_summary`` is given and readable, prmon's ``Max.pss`` is used; otherwise the runner's /proc snapshot.
    """

    limit_kb: int
    interval: float = 60.0
    prmon_summary: Path | None = None

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        pss, source = self._pss(ctx)
        if pss is not None and pss > self.limit_kb:
            return MemoryLimitExceededError(f"payload PSS {pss} kB above limit {self.limit_kb} kB (from {source})")
        return None

    def _pss(self, ctx: MonitorContext) -> tuple[int | None, str]:
        if self.prmon_summary is not None:
            usage = read_prmon_summary(self.prmon_summary)
            if usage is not None:
                return usage.max_pss_kb, "prmon"
        if ctx.snapshot is not None:
            return ctx.snapshot.pss_kb, "/proc"
        return None, "none"


def tree_size(root: Path, max_entries: int = 200000) -> int:
    """Bytes used by the files under ``root`` (symlinks not followed; at most ``max_entries`` entries scanned)."""
    return sum(st.st_size for st in _files(root, max_entries))


@attrs.frozen
class WorkdirSizeMonitor:
    """Work directory above ``limit_bytes`` (the queue's ``maxwdir``) -> USERDIRTOOLARGE (1104)."""

    limit_bytes: int
    interval: float = 300.0

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        size = tree_size(ctx.workdir)
        if size > self.limit_bytes:
            return UserDirTooLargeError(f"work directory {ctx.workdir} is {size} B, limit {self.limit_bytes} B")
        return None


@attrs.frozen
class StdoutSizeMonitor:
    """Payload stdout or stderr above ``limit_bytes`` (default 2 GiB) -> STDOUTTOOBIG (1106)."""

    limit_bytes: int = 2 * GiB
    interval: float = 300.0

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        for path in (ctx.stdout, ctx.stderr):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > self.limit_bytes:
                return StdoutTooBigError(f"{path.name} is {size} B, limit {self.limit_bytes} B")
        return None


@attrs.frozen
class FreeDiskMonitor:
    """Free space on the work directory's file system below ``min_free_bytes`` (default 1 GB) -> NOLOCALSPACE (1098).

    ``path`` overrides the directory whose file system is checked (default: the work directory).
    """

    min_free_bytes: int = GB
    interval: float = 60.0
    path: Path | None = None

    def check(self, ctx: MonitorContext) -> PilotError | None:
        """See the class docstring."""
        where = self.path or ctx.workdir
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            return None
        if free < self.min_free_bytes:
            return NoLocalSpaceError(f"{free} B free under {where}, need {self.min_free_bytes} B")
        return None
