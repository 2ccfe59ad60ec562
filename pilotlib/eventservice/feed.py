"""Event ranges asked for ahead, so that the payload never waits, and never more than it can finish in time.

:class:`RangeFeed` keeps up to ``ahead`` ranges in hand, asking the source (the server's ``getEventRanges`` or
Harvester's files) for at most ``batch`` at a time on a thread of its own. How many the payload may still be given
is the ``budget`` (None: no bound; the workflow estimates it from the ranges done so far and the pilot's remaining
lifetime): the feed asks for no more than that and hands out none beyond it.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from pilotlib.errors import PilotError
from pilotlib.job import Job
from pilotlib.panda.base import EventRange, EventRangeSource

__all__ = ["RangeFeed"]

log = logging.getLogger(__name__)

#: Seconds between looks at the budget while it forbids asking for more.
BUDGET_RECHECK = 0.5


class RangeFeed:
    """Ranges for one job, asked for ahead.

    Args:
        source: where the ranges come from.
        job: the job they belong to.
        ahead: how many ranges to keep in hand.
        batch: the most to ask for in one request.
        budget: how many more ranges the payload may be given (called often; None: no bound).
    """

    def __init__(self, source: EventRangeSource, job: Job, *, ahead: int = 16, batch: int = 8,
                 budget: Callable[[], int | None] = lambda: None) -> None:
        self._source = source
        self._job = job
        self._batch = max(1, batch)
        self._ahead = max(self._batch, ahead)
        self._budget = budget
        self._queue: collections.deque[EventRange] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._exhausted = False
        self.error: PilotError | None = None
        self.requests = 0
        self.received = 0
        self._thread = threading.Thread(target=self._fill, name=f"es-feed-{job.panda_id}", daemon=True)

    def start(self) -> RangeFeed:
        """Start asking."""
        self._thread.start()
        return self

    def take(self) -> EventRange | None:
        """The next range; blocks while one is on its way; None once there will be no more (the source has none,
        it failed, the budget is spent, or the feed was closed)."""
        with self._cond:
            while not self._queue and not self._done():
                self._cond.wait()
            if not self._queue or self._spent(0):
                return None
            item = self._queue.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> list[EventRange]:
        """Stop asking; the ranges received and never handed out (they stay with the job at the source)."""
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        return left

    @property
    def exhausted(self) -> bool:
        """The source answered that it has no more ranges."""
        return self._exhausted

    def _done(self) -> bool:
        return self._closed or self._exhausted or self.error is not None or self._spent(0)

    def _spent(self, queued: int) -> bool:
        budget = self._budget()
        return budget is not None and budget <= queued

    def _want(self) -> int:
        """How many to ask for now (0: none), under the lock: a full batch once that many are missing (or nothing
        is in hand), so that a source faster than the payload is not asked once per range."""
        missing = self._ahead - len(self._queue)
        if missing < self._batch and self._queue:
            return 0
        want = min(self._batch, missing)
        budget = self._budget()
        if budget is not None:
            want = min(want, budget - len(self._queue))
        return max(0, want)

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._want()):
                    self._cond.wait(BUDGET_RECHECK)
                    self._cond.notify_all()  # a take() waiting on a budget now spent returns
                if self._closed:
                    return
                want = self._want()
            try:
                ranges = list(self._source.get_event_ranges(self._job, want))
            except PilotError as exc:
                log.warning("event ranges not received job=%d code=%d error=%s", self._job.panda_id,
                            int(exc.code), exc)
                with self._cond:
                    self.error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self.requests += 1
                self.received += len(ranges)
                self._queue.extend(ranges)
                if not ranges:
                    self._exhausted = True
                self._cond.notify_all()
                if not ranges:
                    log.info("no more event ranges job=%d received=%d requests=%d", self._job.panda_id,
                             self.received, self.requests)
                    return
