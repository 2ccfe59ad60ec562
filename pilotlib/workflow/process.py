"""The pilot process's edges: its signals and its lifeline.

The library never installs a signal handler by itself: a pilot's ``main`` calls :func:`handle_signals` around its
run. SIGTERM, SIGINT, SIGUSR1, SIGQUIT and SIGXCPU set the pilot's one :class:`~pilotlib.stop.Stop` with
:func:`pilotlib.errors.error_for_signal`; the pipeline then fails the running job with that code, stops its
payload, stages the log out and reports. A later signal is only recorded: it changes nothing already decided.

:func:`tie_payloads` ties the payloads to the pilot for its whole run (:class:`~pilotlib.payload.Lifeline`: a payload's
session is ended when the pilot dies, even by SIGKILL), and the library's own commands too (:mod:`pilotlib._tether`:
a copy command).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import types
from collections.abc import Iterator

from pilotlib._tether import tied
from pilotlib.errors import error_for_signal
from pilotlib.payload import Lifeline
from pilotlib.stop import Stop

__all__ = ["HANDLED", "SignalLog", "handle_signals", "tie_payloads"]

log = logging.getLogger(__name__)

#: The signals that stop the pilot (:func:`handle_signals`' default).
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGQUIT, signal.SIGXCPU)


class SignalLog:
    """The signals received, in order (the handler only appends and sets the stop: safe in a handler)."""

    def __init__(self) -> None:
        self.received: list[int] = []


@contextlib.contextmanager
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
        if len(record.received) > 1:
            log.warning("signals after the first ignored count=%d", len(record.received) - 1)


@contextlib.contextmanager
def tie_payloads() -> Iterator[Lifeline | None]:
    """The pilot's lifeline for its whole run (payloads die with the pilot), closed at the end; None (logged) when
    it cannot be started: the pilot still runs its jobs."""
    try:
        started = Lifeline.start()
    except OSError as exc:
        log.error("no lifeline: payloads would outlive a killed pilot error=%s", exc)
        yield None
        return
    with started, tied(started):
        yield started
