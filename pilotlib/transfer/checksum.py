"""File checksums: adler32 (the default) and md5, computed streaming, and their verification.

Conventions follow PanDAWMS/pilot3 ``pilot/util/filehandling.py`` (``calculate_checksum``): adler32 starts at 1
and is written as 8 lowercase hex digits, zero-padded; md5 is the 32-digit lowercase hex digest; the type names
``adler32``/``adler``/``ad32``/``ad`` and ``md5``/``md5sum``/``md`` are accepted.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from pathlib import Path
from typing import BinaryIO

from pilotlib.errors import Direction
from pilotlib.transfer.errors import ChecksumCalculationError, ChecksumMismatchError, UnknownChecksumTypeError

__all__ = [
    "CHUNK_SIZE",
    "SUPPORTED_TYPES",
    "RunningChecksum",
    "calculate_checksum",
    "normalize_checksum_type",
    "normalize_checksum_value",
    "verify_checksum",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
SUPPORTED_TYPES = ("adler32", "md5")
_ALIASES = {
    "adler32": "adler32",
    "adler": "adler32",
    "ad32": "adler32",
    "ad": "adler32",
    "md5": "md5",
    "md5sum": "md5",
    "md": "md5",
}


def normalize_checksum_type(name: str, direction: Direction = Direction.STAGE_IN) -> str:
    """The canonical name (``adler32`` or ``md5``) of a checksum type or one of its aliases.

    Raises:
        UnknownChecksumTypeError: the type is neither adler32 nor md5 (code UNKNOWNCHECKSUMTYPE).
    """
    canonical = _ALIASES.get(name.strip().lower())
    if canonical is None:
        raise UnknownChecksumTypeError(f"unknown checksum type {name!r} (known: adler32, md5)", direction)
    return canonical


def normalize_checksum_value(checksum_type: str, value: str) -> str:
    """A checksum value in canonical form: lowercase hex, adler32 zero-padded to 8 digits."""
    text = value.strip().lower()
    if checksum_type == "adler32":
        return text.zfill(8)
    return text


class RunningChecksum:
    """A checksum fed chunk by chunk, for data checked while it streams (``update``, then ``value``).

    Raises:
        UnknownChecksumTypeError: from the constructor, for a type other than adler32/md5.
    """

    def __init__(self, checksum_type: str = "adler32", direction: Direction = Direction.STAGE_IN) -> None:
        self.kind = normalize_checksum_type(checksum_type, direction)
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False) if self.kind == "md5" else None

    def update(self, data: bytes) -> None:
        """Add the next chunk."""
        if self._md5 is None:
            self._adler = zlib.adler32(data, self._adler)
        else:
            self._md5.update(data)

    @property
    def value(self) -> str:
        """The checksum of everything fed so far, in canonical form."""
        return f"{self._adler & 0xFFFFFFFF:08x}" if self._md5 is None else self._md5.hexdigest()


def calculate_checksum(
    path: str | Path, checksum_type: str = "adler32", direction: Direction = Direction.STAGE_IN
) -> str:
    """Compute a file's checksum, reading it in chunks of :data:`CHUNK_SIZE` bytes.

    Args:
        path: the local file.
        checksum_type: ``adler32`` (default), ``md5`` or an alias.
        direction: the transfer direction an error reports.

    Returns:
        The value in canonical form (``"0a1b2c3d"`` for adler32).

    Raises:
        UnknownChecksumTypeError: unsupported type.
        ChecksumCalculationError: the file can not be read (code CHECKSUMCALCFAILURE).
    """
    kind = normalize_checksum_type(checksum_type, direction)
    try:
        with open(path, "rb") as handle:
            if kind == "adler32":
                return _adler32(handle)
            return _md5(handle)
    except OSError as exc:
        raise ChecksumCalculationError(f"cannot compute {kind} of {path}: {exc.strerror or exc}", direction) from exc


def _adler32(handle: BinaryIO) -> str:
    value = 1
    read = handle.read
    while chunk := read(CHUNK_SIZE):
        value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def _md5(handle: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    read = handle.read
    while chunk := read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | Path, expected: tuple[str, str], direction: Direction) -> tuple[str, str]:
    """Compute ``path``'s checksum of the expected type and compare.

    Args:
        path: the local file (the staged-in copy, or the output before stage-out).
        expected: ``(type, value)`` as in :attr:`TransferRequest.checksum`.
        direction: picks the error code.

    Returns:
        The ``(type, value)`` computed.

    Raises:
        ChecksumMismatchError: the values differ (GETADMISMATCH/PUTADMISMATCH, or the md5 codes).
        ChecksumCalculationError: the file can not be read.
        UnknownChecksumTypeError: unsupported type.
    """
    kind = normalize_checksum_type(expected[0], direction)
    want = normalize_checksum_value(kind, expected[1])
    got = calculate_checksum(path, kind, direction)
    if got != want:
        log.warning("checksum mismatch path=%s type=%s expected=%s actual=%s", path, kind, want, got)
        raise ChecksumMismatchError(
            f"{kind} mismatch for {Path(path).name}: expected {want}, got {got}",
            direction,
            checksum_type=kind,
            expected=want,
            actual=got,
        )
    return kind, got
