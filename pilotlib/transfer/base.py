"""The copytool interface and the values that transfers produce.

A copytool moves files between a storage URL and a local path. Copytools are small classes registered under the
``pilotlib.copytools`` entry-point group; a backend library (gfal2, rucio, XRootD) is imported only inside its
copytool, so a pilot without it still starts and says clearly what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from pilotlib.errors import Direction, ErrorCode, PilotError
from pilotlib.stop import StopSignal
from pilotlib.transfer.errors import EscapingPathError

__all__ = [
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "Copytool",
    "CopytoolFallback",
    "Direction",
    "StopSignal",
    "TransferRequest",
    "TransferResult",
    "failed_result",
    "local_path",
    "transfer_timeout",
    "url_scheme",
]

MIN_TIMEOUT = 400.0
"""Seconds every transfer gets, whatever its size."""
MAX_TIMEOUT = 3 * 3600.0
"""No transfer gets more than three hours."""


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

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Transfer the files; one result per request, in order. Never raises for a single file's failure.

        When ``stop`` is set, copies under way are cancelled within seconds (no partial local file is left) and
        their results fail with ``stop.reason``.
        """
        ...


CopytoolFallback = Callable[[Copytool, Mapping[str, object]], "Copytool | None"]
"""What runs a copytool's transfers when it is not usable here, given the tool and its options (e.g. the same tool
inside the queue's middleware container, :class:`pilotlib.containers.middleware.MiddlewareLauncher`); None: nothing
does, the tool is skipped."""


def transfer_timeout(filesize: int | None, extra: float = 0.0) -> float:
    """The per-file timeout: 400 s plus the size at 1 MB/s, at most 3 h.

    The same limits as PanDAWMS/pilot3 ``pilot/copytool/common.py`` (``get_timeout``).

    Args:
        filesize: bytes, or None when unknown (then the minimum applies).
        extra: seconds added before the cap.
    """
    size = max(filesize or 0, 0)
    return min(MIN_TIMEOUT + size / 1e6 + extra, MAX_TIMEOUT)


def url_scheme(url: str) -> str:
    """The scheme of a URL (``"root"`` for ``root://host//path``); ``"file"`` for a bare path."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else "file"


def local_path(workdir: Path, path: str, direction: Direction) -> Path:
    """Resolve a local path from a request against the work directory and refuse one that leaves it.

    A relative path is taken inside ``workdir``. The parent folder is resolved (symbolic links, ``..``) before the
    check, so a job-defined name can not reach outside the work directory. On stage-in the last component itself is
    kept (it may be a symbolic link that a ``symlink`` stage-in made). On stage-out the whole path is resolved too,
    and the real file is returned: an output that is a symbolic link (or a chain of them) leading outside the work
    directory is refused, so no copytool reads, checksums or uploads a file the payload pointed it at
    (``out.root -> /etc/passwd``); one leading to another file of the work directory stages that file's content.

    Raises:
        EscapingPathError: the path is empty or not inside ``workdir`` (STAGEINFAILED / BADOUTPUTFILENAME).
    """
    if not path or "\x00" in path:
        raise EscapingPathError(f"bad local file name {path!r}", direction)
    root = Path(os.path.realpath(workdir))
    candidate = root / path.removeprefix("file://")
    name = candidate.name
    parent = Path(os.path.realpath(candidate.parent))
    if name in ("", ".", "..") or not (parent == root or parent.is_relative_to(root)):
        raise EscapingPathError(f"local path {path!r} leaves the work directory {root}", direction)
    if direction is Direction.STAGE_OUT:
        real = Path(os.path.realpath(parent / name))
        if not real.is_relative_to(root):
            raise EscapingPathError(f"local output {path!r} is a symbolic link leading out of the work directory "
                                    f"{root}", direction)
        return real
    return parent / name


def failed_result(request: TransferRequest, tool: str, error: PilotError, seconds: float = 0.0) -> TransferResult:
    """The :class:`TransferResult` of a request that failed with ``error``."""
    remote = request.source if request.direction is Direction.STAGE_IN else request.destination
    local = request.destination if request.direction is Direction.STAGE_IN else request.source
    return TransferResult(
        lfn=request.lfn,
        direction=request.direction,
        tool=tool,
        url=remote,
        local_path=local,
        size=request.filesize,
        seconds=seconds,
        error=error,
        ddmendpoint=request.ddmendpoint,
        guid=request.guid,
    )
