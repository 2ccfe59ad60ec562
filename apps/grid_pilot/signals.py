"""Signal handling (the app's, never the library's): the first signal stops the pilot with the signal's error.

SIGTERM, SIGINT, SIGUSR1, SIGQUIT and SIGXCPU set the pilot's one :class:`~pilotlib.stop.Stop` with
:func:`pilotlib.errors.error_for_signal`; the pipeline then fails the running job with that code, stops its
payload, stages the log out and reports. A later signal is only recorded: it changes nothing already decided.
"""

from __future__ import annotations

import signal
import types
from collections.abc import Iterator
from contextlib import contextmanager

from pilotlib.errors import error_for_signal
from pilotlib.stop import Stop

__all__ = ["HANDLED", "SignalLog", "handle_signals"]

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGQUIT, signal.SIGXCPU)


class SignalLog:
    """The signals received, in order (the handler only appends and sets the stop: safe in a handler)."""

    def __init__(self) -> None:
        self.received: list[int] = []


@contextmanager
def handle_signals(stop: Stop, signals: tuple[signal.Signals, ...] = HANDLED) -> Iterator[SignalLog]:
    """Install the handlers for the duration of the block (main thread only), then restore the previous ones."""
    record = SignalLog()

    def handler(signum: int, frame: types.FrameType | None) -> None:
        record.received.append(signum)
        stop.set(error_for_signal(signum))

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield record
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
