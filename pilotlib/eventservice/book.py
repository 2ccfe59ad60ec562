"""Which ranges the payload holds, which it finished or failed: each range reported once, none it was not given.

:class:`RangeBook` is thread-safe (the channel's connections and the workflow use it at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from pilotlib.errors import ErrorCode
from pilotlib.eventservice.errors import MessageHandlingError
from pilotlib.eventservice.protocol import RangeDone, RangeFailed
from pilotlib.panda.base import EventRange

__all__ = ["FailedRange", "FinishedRange", "RangeBook"]


@attrs.frozen
class FinishedRange:
    """A range the payload finished: its output file (in the work directory), the CPU and wall seconds it reported
    (None: not reported) and the seconds from hand-out to report."""

    range: EventRange
    output: Path
    cpu: float | None
    wall: float | None
    seconds: float


@attrs.frozen
class FailedRange:
    """A range that failed: the code reported for it and why."""

    range: EventRange
    code: ErrorCode
    message: str


class RangeBook:
    """The ranges handed to one payload and what became of them.

    Args:
        workdir: the payload's work directory (relative output paths are in it; no output may be outside it).
        clock: seconds, monotonic.
    """

    def __init__(self, workdir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.workdir = Path(workdir).resolve()
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, tuple[EventRange, float]] = {}
        self._seen: set[str] = set()
        self.first_given: float | None = None
        self.given = 0
        self.finished = 0
        self.failed = 0

    def give(self, ranges: Sequence[EventRange]) -> None:
        """The payload now holds ``ranges``."""
        now = self._clock()
        with self._lock:
            if self.first_given is None and ranges:
                self.first_given = now
            for item in ranges:
                self._held[item.event_range_id] = (item, now)
                self._seen.add(item.event_range_id)
            self.given += len(ranges)

    def finish(self, message: RangeDone) -> FinishedRange | FailedRange:
        """The payload finished a range: the finished range, or a failed one when its output is not a file in the
        work directory (MISSINGOUTPUTFILE 1165).

        Raises:
            MessageHandlingError: the payload does not hold that range (never given, or already reported).
        """
        item, given_at = self._take(message.range_id)
        output = self._output(message.output)
        if output is None:
            with self._lock:
                self.failed += 1
            return FailedRange(item, ErrorCode.MISSINGOUTPUTFILE,
                               f"range {item.event_range_id}: output {message.output!r} is not a file in the work "
                               "directory")
        with self._lock:
            self.finished += 1
        return FinishedRange(item, output, message.cpu, message.wall, self._clock() - given_at)

    def fail(self, message: RangeFailed) -> FailedRange:
        """The payload failed a range (pilot3 reports it with UNKNOWNPAYLOADFAILURE 1220).

        Raises:
            MessageHandlingError: the payload does not hold that range.
        """
        item, _ = self._take(message.range_id)
        with self._lock:
            self.failed += 1
        return FailedRange(item, ErrorCode.UNKNOWNPAYLOADFAILURE,
                           f"{message.error_type} {message.range_id}: {message.message}"[:500])

    def release_held(self, code: ErrorCode, message: str) -> list[FailedRange]:
        """Every range still held, now failed with ``code`` (the payload ended or was stopped without them)."""
        with self._lock:
            held = [item for item, _ in self._held.values()]
            self._held.clear()
            self.failed += len(held)
        return [FailedRange(item, code, message) for item in held]

    def holding(self) -> int:
        """How many ranges the payload holds."""
        with self._lock:
            return len(self._held)

    def _take(self, range_id: str) -> tuple[EventRange, float]:
        with self._lock:
            found = self._held.pop(range_id, None)
            seen = range_id in self._seen
        if found is None:
            what = "already reported" if seen else "never given to it"
            raise MessageHandlingError(f"the payload reported range {range_id}, {what}")
        return found

    def _output(self, name: str) -> Path | None:
        path = (self.workdir / name).resolve()
        if not path.is_relative_to(self.workdir) or not path.is_file():
            return None
        return path
