"""Bounded HTTP calls: each request runs on a helper thread that the caller leaves at its deadline or at the stop.

``requests`` bounds each socket operation (the connect, each read), not a request: a server that trickles a byte
every few seconds holds a request for as long as it likes, and a blocked read does not notice that the pilot is
stopping. Here the caller waits for the request's thread on one event, set when the request ends or when the stop is
set, for at most the time the call has left. When it gives up it cancels the request: the sockets the request opened
(recorded by the connection classes of :func:`tracking_adapter` on the request's thread) are shut down, so the
helper thread's blocked read returns at once and the thread ends (during a TCP connect, within the connect timeout).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from pilotlib.errors import PilotError
from pilotlib.stop import StopSignal

if TYPE_CHECKING:
    import requests.adapters

__all__ = ["Cancelled", "Waiter", "bounded_call", "run_bounded", "tracked_session", "tracking_adapter"]

T = TypeVar("T")

_CURRENT = threading.local()  # the request running on this (helper) thread: .request


class Cancelled(Exception):
    """The request was left: ``stopped`` (the stop was set) or its deadline passed."""

    def __init__(self, stopped: bool) -> None:
        super().__init__("stopped" if stopped else "deadline passed")
        self.stopped = stopped


class Waiter:
    """One call's deadline and its wake-up: the event is set by the stop (while the call listens to it).

    Use as a context manager: it listens to ``stop`` from entering to leaving.

    Args:
        seconds: the call's bound, from now.
        stop: the pilot's stop, or None; a call started when it is already set does not listen to it (it is part
            of the pilot's shutdown, e.g. the final update, and is bounded by ``seconds`` only).
    """

    def __init__(self, seconds: float, stop: StopSignal | None) -> None:
        self.deadline = time.monotonic() + seconds
        self.event = threading.Event()
        self._stop = stop if stop is not None and not stop.is_set() else None
        self.stopped = False

    def __enter__(self) -> Waiter:
        if self._stop is not None:
            self._stop.when_set(self._on_stop)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop.forget(self._on_stop)

    def _on_stop(self, _reason: PilotError) -> None:
        self.stopped = True
        self.event.set()

    def left(self) -> float:
        """Seconds until the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (less when the stop comes first); True when the call should go on."""
        self.event.clear()  # it may still hold the last request's end; the stop sets ``stopped`` before the event
        if not self.stopped:
            self.event.wait(seconds)
        return not self.stopped


class _Request(Generic[T]):
    """One request on its helper thread: its outcome, and the sockets to shut down when it is left."""

    def __init__(self, func: Callable[[], T], wake: threading.Event) -> None:
        self._func = func
        self._wake = wake
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._left = False
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        _CURRENT.request = self
        try:
            self.value = self._func()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            _CURRENT.request = None
            self.done = True
            self._wake.set()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            left = self._left
            if not left:
                self._sockets.append(sock)
        if left:
            _shutdown(sock)

    def leave(self) -> None:
        with self._lock:
            self._left = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # the plain socket's shutdown, also for a TLS socket (whose own would drop its TLS state under the reader);
    # an error means it is already closed or not connected
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _track(sock: socket.socket | None) -> None:
    """Record a socket of the request running on this thread (a no-op outside a bounded call)."""
    request = getattr(_CURRENT, "request", None)
    if request is not None and sock is not None:
        request.track(sock)


def run_bounded(func: Callable[[], T], waiter: Waiter, name: str) -> T:
    """Run ``func`` (one HTTP request) on a helper thread; return its value or raise its exception.

    Raises:
        Cancelled: the waiter's deadline passed or the stop was set first; the request's sockets are shut down.
    """
    waiter.event.clear()
    request: _Request[T] = _Request(func, waiter.event)
    context = contextvars.copy_context()  # the request's log records belong to the caller's job
    thread = threading.Thread(target=context.run, args=(request.run,), name=name, daemon=True)
    thread.start()
    while not request.done and not waiter.stopped and waiter.left() > 0:
        waiter.event.wait(waiter.left())
        waiter.event.clear()
    if not request.done:
        request.leave()
        thread.join(1.0)  # usually at once (its socket is shut); never longer: the call is over
        raise Cancelled(waiter.stopped)
    if request.error is not None:
        raise request.error
    return request.value  # type: ignore[return-value] # done without an error: func's value


def tracking_adapter() -> requests.adapters.HTTPAdapter:
    """A ``requests`` adapter whose connections record their sockets with the bounded call on their thread."""
    import requests.adapters  # noqa: PLC0415 - lazy, see pilotlib.panda._transport
    from urllib3.connection import HTTPConnection, HTTPSConnection  # noqa: PLC0415
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool  # noqa: PLC0415

    class _Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            _track(self.sock)

        def request(self, *args: object, **kwargs: object) -> None:
            _track(self.sock)  # a kept-alive connection: no new connect
            super().request(*args, **kwargs)  # type: ignore[arg-type]

    class _TLSConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            _track(self.sock)

        def request(self, *args: object, **kwargs: object) -> None:
            _track(self.sock)
            super().request(*args, **kwargs)  # type: ignore[arg-type]

    class _Pool(HTTPConnectionPool):
        ConnectionCls = _Connection

    class _TLSPool(HTTPSConnectionPool):
        ConnectionCls = _TLSConnection

    class _Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: object, **kwargs: object) -> None:
            super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
            self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    return _Adapter()


def tracked_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` (a new one by default) with :func:`tracking_adapter` mounted for http and https."""
    import requests  # noqa: PLC0415 - lazy, see pilotlib.panda._transport

    session = session if session is not None else requests.Session()
    adapter = tracking_adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def bounded_call(func: Callable[[], T], seconds: float, stop: StopSignal | None, name: str) -> T:
    """Run ``func`` (requests made through a :func:`tracked_session`) within ``seconds`` in all, ended at once by
    ``stop``.

    Raises:
        Cancelled: the bound passed or the stop was set first (``stopped`` says which); the sockets are shut down.
    """
    with Waiter(seconds, stop) as waiter:
        return run_bounded(func, waiter, name)
