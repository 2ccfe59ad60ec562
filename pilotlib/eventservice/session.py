"""One event-service payload's session: the channel's handler, between the range feed, the book and the outputs.

The payload asks (``Ready for events``) and gets one range at a time, as pilot3's ``esprocess.py``
``get_event_range_to_payload`` gives them, with ``PFN`` set to the input file's path in the work directory when it
is there; what it reports goes through the :class:`~.book.RangeBook` (a range it does not hold is
MESSAGEHANDLINGFAILURE) to the :class:`~.outputs.RangeOutputs`. After :meth:`EventSession.no_more` (the server's
``softkill``, the pilot's stop) the payload is answered ``No more events``.

How many ranges the payload may still be given (the feed's budget) is estimated from the ranges finished so far:
their rate since the first hand-out times the time left before ``deadline``, less what the payload holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotlib.errors import PilotError
from pilotlib.eventservice.book import FinishedRange, RangeBook
from pilotlib.eventservice.errors import MessageHandlingError
from pilotlib.eventservice.feed import RangeFeed
from pilotlib.eventservice.outputs import RangeOutputs
from pilotlib.eventservice.protocol import RangeDone, RangeFailed
from pilotlib.panda.base import EventRange

__all__ = ["EventSession", "payload_range"]

log = logging.getLogger(__name__)


def payload_range(item: EventRange, workdir: Path) -> dict[str, Any]:
    """A range as the payload gets it: the server's fields, and ``PFN`` when the input is in the work directory."""
    entry: dict[str, Any] = {"eventRangeID": item.event_range_id, "startEvent": item.start_event,
                             "lastEvent": item.last_event, "LFN": item.lfn, "GUID": item.guid, "scope": item.scope}
    if (workdir / item.lfn).exists():
        entry["PFN"] = str(workdir / item.lfn)
    return entry


class EventSession:
    """The channel's handler for one payload (see the module).

    Args:
        workdir: the payload's work directory.
        outputs: where the ranges' outcomes go.
        on_broken: called once with the error when the payload breaks the protocol (the workflow stops it).
        deadline: when the payload must be done (monotonic seconds; None: no bound).
        clock: seconds, monotonic.
    """

    def __init__(self, workdir: Path, outputs: RangeOutputs, *, on_broken: Callable[[PilotError], None],
                 deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.workdir = Path(workdir)
        self.book = RangeBook(workdir, clock)
        self.outputs = outputs
        self.feed: RangeFeed | None = None
        self.error: PilotError | None = None
        self.last_message = clock()
        self._on_broken = on_broken
        self._deadline = deadline
        self._clock = clock
        self._no_more = threading.Event()
        self._lock = threading.Lock()

    def no_more(self) -> None:
        """Give the payload no more ranges (it finishes what it holds)."""
        if not self._no_more.is_set():
            log.info("event ranges: no more for the payload holding=%d", self.book.holding())
        self._no_more.set()

    def budget(self) -> int | None:
        """How many more ranges the payload may be given (None: no estimate yet, or no deadline)."""
        if self._no_more.is_set() or self.error is not None:
            return 0
        first, done = self.book.first_given, self.book.finished + self.book.failed
        if self._deadline is None or first is None or done == 0:
            return None
        now = self._clock()
        rate = done / max(now - first, 1e-6)
        return int(rate * max(0.0, self._deadline - now)) - self.book.holding()

    def ready(self) -> Sequence[Mapping[str, Any]]:
        """One range, or none when there are no more (or the payload is to get no more)."""
        self.last_message = self._clock()
        if self._no_more.is_set() or self.error is not None or self.feed is None:
            return []
        item = self.feed.take()
        if item is None or self._no_more.is_set():
            return []
        self.book.give([item])
        return [payload_range(item, self.workdir)]

    def done(self, message: RangeDone) -> None:
        """A finished range: to the outputs (a failed one when its output is not there)."""
        self.last_message = self._clock()
        try:
            outcome = self.book.finish(message)
        except MessageHandlingError as exc:
            self._broken(exc)
            return
        if isinstance(outcome, FinishedRange):
            self.outputs.finished(outcome)
        else:
            log.warning("event range failed code=%d error=%s", int(outcome.code), outcome.message)
            self.outputs.failed([outcome])

    def failed(self, message: RangeFailed) -> None:
        """A failed range: reported failed."""
        self.last_message = self._clock()
        try:
            outcome = self.book.fail(message)
        except MessageHandlingError as exc:
            self._broken(exc)
            return
        log.warning("event range failed by the payload range=%s error=%s", message.range_id, outcome.message)
        self.outputs.failed([outcome])

    def broken(self, reason: str) -> None:
        """The payload said something outside the grammar."""
        self._broken(MessageHandlingError(f"the payload broke the event channel's protocol: {reason}"))

    def _broken(self, error: PilotError) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = error
        if first:
            log.error("event channel broken code=%d error=%s", int(error.code), error)
            self._on_broken(error)
