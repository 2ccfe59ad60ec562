"""The payload's end of the event-range channel: a small helper for authors of event-processing payloads.

It speaks the messages of :mod:`.protocol` over the pilot's Unix-domain stream socket, whose path the pilot puts
in the payload's environment as ``PILOT_EVENTRANGECHANNEL``. It needs nothing but the standard library and
:mod:`.protocol`, so it can run inside a payload's container. Usage::

    from pilotlib.eventservice.client import EventChannelClient

    with EventChannelClient.from_environment() as channel:
        for event_range in channel.ranges():          # sends "Ready for events" whenever it needs more
            output = process(event_range)             # your work: one output file per range
            channel.finished(event_range["eventRangeID"], output, cpu=1.5, wall=2.0)

A range that cannot be processed is reported with ``channel.failed(range_id, "what went wrong")``.
``python -m pilotlib.eventservice.reference_payload`` is a complete example.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, BinaryIO

from pilotlib.eventservice.protocol import (
    CHANNEL_VARIABLE,
    MAX_MESSAGE_BYTES,
    READY,
    MessageError,
    format_done,
    format_failed,
    parse_answer,
)

__all__ = [
    "ChannelClosedError",
    "ChannelConnectError",
    "EventChannelClient",
    "NoChannelError",
    "channel_path",
]

#: Seconds a connection to the pilot may take before :class:`ChannelConnectError`.
DEFAULT_CONNECT_TIMEOUT = 30.0
_CONNECT_RETRY = 0.05


class NoChannelError(LookupError):
    """The environment does not name a channel (``PILOT_EVENTRANGECHANNEL`` is unset or empty)."""


class ChannelConnectError(ConnectionError):
    """The pilot's channel could not be reached (no such socket, nobody listening, or the connect timed out)."""


class ChannelClosedError(ConnectionError):
    """The channel is closed: the pilot hung up, or the client was used after :meth:`EventChannelClient.close`."""


def channel_path(environ: Mapping[str, str] | None = None) -> str:
    """The channel's socket path from ``environ`` (default: this process's environment).

    Raises:
        NoChannelError: ``PILOT_EVENTRANGECHANNEL`` is unset or empty.
    """
    path = (os.environ if environ is None else environ).get(CHANNEL_VARIABLE, "")
    if not path:
        raise NoChannelError(f"{CHANNEL_VARIABLE} is not set: this payload was not started by an event-service pilot")
    return path


def _connect(path: str, timeout: float) -> socket.socket:
    """A socket connected to ``path``, retried while the pilot's backlog is full, until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(path)
                return sock
            except BlockingIOError:  # a Unix socket's full backlog: EAGAIN at once, not a wait
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"timed out after {timeout:g} s") from None
                time.sleep(_CONNECT_RETRY)
    except OSError as exc:
        sock.close()
        raise ChannelConnectError(f"cannot connect to the pilot's channel {path!r}: {exc}") from exc


class EventChannelClient:
    """One connection to the pilot's event-range channel.

    Args:
        path: the socket's filesystem path.
        connect_timeout: seconds the connection may take.
        answer_timeout: seconds to wait for the pilot's answer to ``Ready for events`` (``None``: as long as it
            takes; the pilot may be fetching ranges from the server). A timeout raises :class:`TimeoutError`.

    Raises:
        ChannelConnectError: the socket cannot be reached.

    Example::

        with EventChannelClient("/tmp/pilot.sock", connect_timeout=5) as channel:
            for event_range in channel.ranges():
                channel.failed(event_range["eventRangeID"], "this payload only says no")
    """

    def __init__(
        self, path: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, answer_timeout: float | None = None
    ) -> None:
        self.path = path
        self.no_more_events = False
        self._held: dict[str, None] = {}
        self._sock: socket.socket | None = _connect(path, connect_timeout)
        self._sock.settimeout(answer_timeout)
        self._reader: BinaryIO | None = self._sock.makefile("rb")

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        answer_timeout: float | None = None,
    ) -> EventChannelClient:
        """Connect to the channel named by ``PILOT_EVENTRANGECHANNEL`` in ``environ`` (default: ``os.environ``).

        Raises:
            NoChannelError: the variable is unset or empty.
            ChannelConnectError: the socket cannot be reached.
        """
        return cls(channel_path(environ), connect_timeout=connect_timeout, answer_timeout=answer_timeout)

    @property
    def held(self) -> tuple[str, ...]:
        """The ids of the ranges received and not yet reported finished or failed, in the order received."""
        return tuple(self._held)

    def request(self) -> list[dict[str, Any]]:
        """Send ``Ready for events`` and read the one answer: the ranges, or ``[]`` for ``No more events``.

        Raises:
            ChannelClosedError: the pilot closed the channel before answering.
            MessageError: the answer is not in the grammar, or longer than ``MAX_MESSAGE_BYTES``.
            TimeoutError: no answer within ``answer_timeout``.
        """
        self.send_line(READY)
        ranges = parse_answer(self._read_line())
        if not ranges:
            self.no_more_events = True
        self._held.update(dict.fromkeys(str(r["eventRangeID"]) for r in ranges))
        return ranges

    def ranges(self) -> Iterator[dict[str, Any]]:
        """Yield the pilot's ranges one by one, asking for more when the last answer's are used up.

        Each range is a dict with ``eventRangeID``, ``startEvent``, ``lastEvent``, ``LFN``, ``GUID``, ``scope``
        and maybe ``PFN`` (the input file's path). The iterator ends at ``No more events``. It raises what
        :meth:`request` raises.
        """
        while ranges := self.request():
            yield from ranges

    def finished(self, range_id: str, output: str, cpu: float, wall: float) -> None:
        """Report range ``range_id`` done: its output file (no comma in the path), CPU and wall seconds.

        Raises:
            ChannelClosedError: the pilot closed the channel.
            MessageError: the output path holds a comma or a newline.
        """
        self.send_line(format_done(range_id, output, cpu, wall))
        self._held.pop(range_id, None)

    def failed(self, range_id: str, message: str, error_type: str = "ERR_PAYLOAD_RANGE") -> None:
        """Report range ``range_id`` failed, with a one-line ``message`` and pilot3's error type (``ERR_...``).

        Raises:
            ChannelClosedError: the pilot closed the channel.
            MessageError: ``error_type`` is not ``ERR_`` followed by capitals and underscores.
        """
        self.send_line(format_failed(range_id, message, error_type))
        self._held.pop(range_id, None)

    def send_line(self, message: str) -> None:
        """Send one message as it is (a newline is added); :meth:`finished` and :meth:`failed` use it.

        Raises:
            ChannelClosedError: the pilot closed the channel.
            MessageError: the message holds a newline or is longer than ``MAX_MESSAGE_BYTES``.
        """
        data = message.encode() + b"\n"
        if b"\n" in data[:-1] or len(data) > MAX_MESSAGE_BYTES:
            raise MessageError(f"a message is one line of at most {MAX_MESSAGE_BYTES} bytes, got {len(data)} bytes")
        try:
            self._socket().sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosedError(f"the pilot closed the channel {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (the pilot sees the end of the stream); closing twice is harmless."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> EventChannelClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ChannelClosedError(f"the channel {self.path!r} was closed by this client")
        return self._sock

    def _read_line(self) -> str:
        if self._reader is None:
            raise ChannelClosedError(f"the channel {self.path!r} was closed by this client")
        try:
            data = self._reader.readline(MAX_MESSAGE_BYTES + 1)
        except ConnectionResetError as exc:
            raise ChannelClosedError(f"the pilot closed the channel {self.path!r}: {exc}") from exc
        if not data.endswith(b"\n"):
            if len(data) > MAX_MESSAGE_BYTES:
                raise MessageError(f"the pilot's answer is longer than {MAX_MESSAGE_BYTES} bytes")
            raise ChannelClosedError(f"the pilot closed the channel {self.path!r} without answering {READY!r}")
        try:
            return data[:-1].decode()
        except UnicodeDecodeError as exc:
            raise MessageError(f"the pilot's answer is not UTF-8: {exc}") from exc
