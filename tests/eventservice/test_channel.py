"""The pilot's end of the event channel (:class:`pilotlib.eventservice.channel.EventChannel`)."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotlib.eventservice.channel import MAX_SOCKET_PATH, EventChannel


class _Quiet:
    def ready(self) -> Sequence[Mapping[str, Any]]:
        return ()

    def done(self, message: object) -> None: ...

    def failed(self, message: object) -> None: ...

    def broken(self, reason: str) -> None: ...


def test_a_work_directory_too_deep_for_a_socket_gets_a_short_private_channel(tmp_path: Path) -> None:
    """A Unix socket's path holds at most 107 bytes; an HPC work directory deep in a shared file system is longer
    (``<access point>/.hpc-pilot/work/rank-N/<PandaID>/pilot-events.sock``). The channel is then made in a private
    directory (0700) under the short directory, the address the payload is given names it, a client connects
    there, and closing removes it."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    short = tmp_path / "s"
    short.mkdir()
    channel = EventChannel(deep / "pilot-events.sock", _Quiet(), short_dir=short)  # type: ignore[arg-type]
    with channel:
        address = Path(channel.address)
        assert len(str(deep / "pilot-events.sock")) > MAX_SOCKET_PATH
        assert address.parent.parent == short and address.name == "pilot-events.sock"
        assert address.parent.stat().st_mode & 0o777 == 0o700 and address.is_socket()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(address))
    assert list(short.iterdir()) == []
