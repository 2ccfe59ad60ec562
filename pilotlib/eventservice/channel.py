"""The pilot's end of the payload channel: a Unix stream socket, one line per message (see :mod:`.protocol`).

:class:`EventChannel` listens at a path (in the job's work directory, so that a payload in a container, where the
work directory is bound at the same path, reaches it too), accepts any number of connections (a payload with
several worker processes may give each its own) and reads each on a thread of its own. Every message goes to the
:class:`ChannelHandler`: ``Ready for events`` is answered on the same connection with what :meth:`ChannelHandler.ready`
returns; a finished or failed range is passed on; a line outside the grammar, or longer than
:data:`~.protocol.MAX_MESSAGE_BYTES`, is :meth:`ChannelHandler.broken` (the handler decides: the workflow stops
the payload with MESSAGEHANDLINGFAILURE). No message is answered after :meth:`EventChannel.close`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pilotlib.eventservice.errors import ChannelError
from pilotlib.eventservice.protocol import (
    MAX_MESSAGE_BYTES,
    MessageError,
    RangeDone,
    RangeFailed,
    Ready,
    format_ranges,
    parse_message,
)

__all__ = ["MAX_SOCKET_PATH", "ChannelHandler", "EventChannel"]

log = logging.getLogger(__name__)

#: The longest path of a Unix socket (``sun_path`` holds 108 bytes with its terminating zero).
MAX_SOCKET_PATH = 107


class ChannelHandler(Protocol):
    """What the channel does with the payload's messages (called from the connections' threads)."""

    def ready(self) -> Sequence[Mapping[str, Any]]:
        """The ranges for a payload that is ready (empty: no more events); may block until there are some."""
        ...

    def done(self, message: RangeDone) -> None:
        """A range finished."""
        ...

    def failed(self, message: RangeFailed) -> None:
        """A range failed."""
        ...

    def broken(self, reason: str) -> None:
        """A message outside the grammar, or the handler refused a message (``reason`` says which)."""
        ...


class EventChannel:
    """Listens at ``path`` for the payload and passes its messages to ``handler``; a context manager.

    Args:
        path: the socket's path (an old file there is replaced). A path longer than :data:`MAX_SOCKET_PATH` bytes
            (a work directory deep in a shared file system) cannot be bound: the socket is then made in a private
            directory (mode 0700) of its own under ``short_dir`` instead, removed at :meth:`close`, and
            :attr:`address` names it (a payload in a container reaches it only if ``short_dir`` is bound).
        handler: what to do with the messages.
        short_dir: see ``path``.
    """

    def __init__(self, path: Path, handler: ChannelHandler, *, short_dir: Path = Path("/tmp")) -> None:  # noqa: S108
        self.path = Path(path)
        self._short_dir = short_dir
        self._private: Path | None = None
        self._handler = handler
        self._server: socket.socket | None = None
        self._closed = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """What the payload is given in ``PILOT_EVENTRANGECHANNEL``."""
        return str(self.path)

    def open(self) -> EventChannel:
        """Bind and listen; start accepting.

        Raises:
            ChannelError: the path (the short one too) is too long or cannot be bound.
        """
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            try:
                self._private = Path(tempfile.mkdtemp(prefix="pilot-es-", dir=self._short_dir))
            except OSError as exc:
                raise ChannelError(f"event channel path is longer than {MAX_SOCKET_PATH} bytes: {self.path}, and no "
                                   f"short directory could be made in {self._short_dir}: {exc}") from exc
            log.info("event channel path too long, using a short one path=%s long=%s", self._private, self.path)
            self.path = self._private / self.path.name
            if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
                raise ChannelError(f"event channel path is longer than {MAX_SOCKET_PATH} bytes: {self.path}")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            server.bind(str(self.path))
            server.listen(64)
        except OSError as exc:
            server.close()
            raise ChannelError(f"event channel cannot listen at {self.path}: {exc.strerror or exc}") from exc
        self._server = server
        threading.Thread(target=self._accept, name="es-channel", daemon=True).start()
        log.info("event channel open path=%s", self.path)
        return self

    def close(self) -> None:
        """Stop listening, close every connection (the payload reads the end of its channel), remove the socket."""
        self._closed.set()
        with self._lock:
            sockets = [*self._connections, *([self._server] if self._server else [])]
            self._connections.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        if self._private is not None:
            with contextlib.suppress(OSError):
                self._private.rmdir()

    def __enter__(self) -> EventChannel:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), name="es-channel-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Read the connection's lines until it ends or the channel closes."""
        with conn, conn.makefile("rb") as reader:
            while not self._closed.is_set():
                try:
                    line = reader.readline(MAX_MESSAGE_BYTES + 1)
                except OSError:
                    return
                if not line:
                    return  # the payload closed its end
                if not line.endswith(b"\n") and len(line) > MAX_MESSAGE_BYTES:
                    self._handler.broken(f"a message longer than {MAX_MESSAGE_BYTES} bytes")
                    return
                if not self._handle(conn, line):
                    return

    def _handle(self, conn: socket.socket, line: bytes) -> bool:
        """One message; False when the connection is to end."""
        try:
            message = parse_message(line.decode("utf-8", errors="strict").rstrip("\n"))
        except (MessageError, UnicodeDecodeError) as exc:
            self._handler.broken(f"{exc}")
            return False
        if isinstance(message, Ready):
            answer = format_ranges(self._handler.ready())
            if self._closed.is_set():
                return False
            try:
                conn.sendall(answer.encode() + b"\n")
            except OSError:
                return False
        elif isinstance(message, RangeDone):
            self._handler.done(message)
        else:
            self._handler.failed(message)
        return True
