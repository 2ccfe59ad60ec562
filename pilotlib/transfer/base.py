"""The copytool interface and the values that transfers produce.

A copytool moves files between a storage URL and a local path. Copytools are small classes registered under the
``pilotlib.copytools`` entry-point group; a backend library (gfal2, rucio, XRootD) is imported only inside its
copytool, so a pilot without it still starts and says clearly what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from pilotlib.errors import Direction, ErrorCode, PilotError

__all__ = [
    "Copytool",
    "Direction",
    "TransferRequest",
    "TransferResult",
]


@attrs.frozen
class TransferRequest:
    """One file to move.

    For stage-in ``source`` is the remote URL (or a DID for rucio) and ``destination`` the local path; for stage-out
    the other way round. ``checksum`` is the expected one as ``(type, value)`` (``("adler32", "0a0b0c0d")``).
    """

    lfn: str
    direction: Direction
    source: str
    destination: str
    scope: str = ""
    filesize: int | None = None
    checksum: tuple[str, str] | None = None
    ddmendpoint: str = ""
    guid: str = ""
    timeout: float = 400.0


@attrs.frozen
class TransferResult:
    """The outcome of one file transfer; ``error`` is None on success."""

    lfn: str
    direction: Direction
    tool: str
    url: str
    local_path: str
    size: int | None = None
    checksum: tuple[str, str] | None = None
    seconds: float = 0.0
    error: PilotError | None = attrs.field(default=None, eq=False)
    ddmendpoint: str = ""
    guid: str = ""

    @property
    def ok(self) -> bool:
        """True when the file was transferred."""
        return self.error is None

    @property
    def error_code(self) -> ErrorCode | None:
        """The PanDA error code of the failure, if any."""
        return None if self.error is None else self.error.code


@runtime_checkable
class Copytool(Protocol):
    """A way to move files; each implementation is a small class."""

    name: str
    schemes: tuple[str, ...]

    def unusable_reason(self) -> str | None:
        """None when the tool can be used on this node, else why not (library missing, command absent, ...)."""
        ...

    def transfer(self, requests: Sequence[TransferRequest], workdir: Path) -> list[TransferResult]:
        """Transfer the files; one result per request, in order. Never raises for a single file's failure."""
        ...
