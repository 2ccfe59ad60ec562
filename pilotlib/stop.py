"""The pilot's stop: one event that reaches every stage, copy, server call and payload, with the reason it was set.

:class:`Stop` is the one stop type (the pilot's signal handler sets it, :func:`pilotlib.workflow.handle_signals`;
the heartbeat sets a job's own stop on the server's ``tobekilled``); :class:`StopSignal` is what the library's parts
need of it (waiting on it, or a callback when it is set), so that a part can be given a job's stop or the pilot's,
or a test's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from pilotlib.errors import PilotError

__all__ = ["Stop", "StopSignal"]


class StopSignal(Protocol):
    """What the library's parts need of the pilot's stop (:class:`Stop` is the implementation).

    A part that waits looks at :meth:`is_set` or :meth:`wait`; one that must act at once (end a copy process, cancel
    a transfer, wake a server call) registers an action with :meth:`when_set` and :meth:`forget` s it when done; a
    step ended so fails with :attr:`reason`.
    """

    @property
    def reason(self) -> PilotError | None:
        """The error the stop was set with (a signal's, PANDAKILL for the server's kill), None while not set."""
        ...

    def is_set(self) -> bool:
        """Whether the stop is set."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds passed; True when set."""
        ...

    def when_set(self, callback: Callable[[PilotError], object]) -> Callable[[PilotError], object]:
        """Call ``callback(reason)`` when the stop is set (at once if it is already)."""
        ...

    def forget(self, callback: Callable[[PilotError], object]) -> None:
        """Unregister a callback given to :meth:`when_set`."""
        ...


class Stop:
    """One stop event for every stage, remembering the first reason it was set with.

    ``child()`` gives a stop that is also set when this one is (a job's own stop: a server kill sets only the child,
    a signal sets the parent and so every child); ``later(seconds)`` one set that much after it (a bounded step that
    still runs once stopping: the log); ``when_set()`` registers a callback (e.g. a payload runner's kill
    request) so that waiters wake at once. Setting is safe from a signal handler on the main thread.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.RLock()
        self._reason: PilotError | None = None
        self._callbacks: list[Callable[[PilotError], object]] = []
        self._link: Callable[[PilotError], object] | None = None  # what sets this stop from its parent's
        self._timer: threading.Timer | None = None  # the timer of a stop made by later()

    def set(self, reason: PilotError) -> bool:
        """Set the stop; True when this call set it first (later reasons are ignored, nothing is overwritten)."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(reason)
        return True

    def is_set(self) -> bool:
        """Whether the stop is set."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds passed; True when set."""
        return self._event.wait(timeout)

    @property
    def reason(self) -> PilotError | None:
        """The error the stop was first set with."""
        return self._reason

    def when_set(self, callback: Callable[[PilotError], object]) -> Callable[[PilotError], object]:
        """Call ``callback(reason)`` when the stop is set (at once if it is); returns it, for :meth:`forget`."""
        with self._lock:
            reason = self._reason
            if reason is None:
                self._callbacks.append(callback)
        if reason is not None:
            callback(reason)
        return callback

    def forget(self, callback: Callable[[PilotError], object]) -> None:
        """Unregister a callback given to :meth:`when_set` (or the stop made by :meth:`child`)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def child(self) -> Stop:
        """A stop that is set whenever this one is (already set if this one is); :meth:`release` it when done."""
        child = Stop()
        child._link = self.when_set(child.set)
        return child

    def later(self, seconds: float) -> Stop:
        """A stop set ``seconds`` after this one is (counted from now when this one is set already), with its reason.

        For a step that must still run once the pilot is stopping but within a bound (the log's stage-out: it is
        given this stop, so its copies are cancelled ``seconds`` after the signal at the latest); :meth:`release` it
        when the step is over.
        """
        later = Stop()

        def arm(reason: PilotError) -> None:
            timer = threading.Timer(seconds, later.set, args=(reason,))
            timer.daemon = True
            later._timer = timer
            timer.start()

        later._link = self.when_set(arm)
        return later

    def release(self, child: Stop) -> None:
        """Forget a stop made by :meth:`child` or :meth:`later` (when its job or step is over)."""
        if child._link is not None:
            self.forget(child._link)
        if child._timer is not None:
            child._timer.cancel()
