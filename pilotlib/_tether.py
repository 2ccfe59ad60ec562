"""The pilot's tether: the sessions its library starts (a copy command), tied to the pilot's life.

The payload runner hands its session to the pilot's :class:`~pilotlib.payload.Lifeline` itself. Other parts start
short-lived commands in sessions of their own too (the copytools' ``run_command``) and know no lifeline: they call
:func:`started` and :func:`ended` around each one, and the pilot, for its run, ties these calls to its lifeline
with :func:`tied` (``pilotlib.workflow.process.tie_payloads`` does). A pilot killed with SIGKILL mid-transfer then
leaves no copy running. Without a tie (the library used alone) both calls do nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = ["Tie", "ended", "started", "tied"]

log = logging.getLogger(__name__)


class Tie(Protocol):
    """What a session is tied to (a :class:`~pilotlib.payload.Lifeline`)."""

    def watch(self, pid: int, mark: str = "") -> None:
        """End the session led by ``pid`` if the pilot dies."""
        ...

    def release(self, pid: int) -> None:
        """The session led by ``pid`` is over."""
        ...


_lock = threading.Lock()
_ties: list[Tie] = []


@contextlib.contextmanager
def tied(tie: Tie) -> Iterator[None]:
    """For the block, tie every session announced with :func:`started` to ``tie``."""
    with _lock:
        _ties.append(tie)
    try:
        yield
    finally:
        with _lock:
            _ties.remove(tie)


def _each(call: Callable[[Tie], None]) -> None:
    with _lock:
        ties = list(_ties)
    for tie in ties:
        try:
            call(tie)
        except (OSError, ValueError) as exc:  # a session that already ended, a lifeline that is gone
            log.debug("session not tied to the pilot error=%s", exc)


def started(pid: int) -> None:
    """A session led by ``pid`` (a child started with ``start_new_session``, not yet reaped) began."""
    _each(lambda tie: tie.watch(pid))


def ended(pid: int) -> None:
    """The session led by ``pid`` ended (its leader was reaped)."""
    _each(lambda tie: tie.release(pid))
