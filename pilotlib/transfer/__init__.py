"""Transfers: the copytool interface and registry, checksums, transfer errors, and the built-in copytools.

Built-in copytools live in :mod:`pilotlib.transfer.copytools` and are found through the ``pilotlib.copytools``
entry-point group by :class:`CopytoolRegistry`; importing this package never imports a backend library.
"""

from pilotlib.transfer.base import (
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    Copytool,
    Direction,
    TransferRequest,
    TransferResult,
    failed_result,
    local_path,
    transfer_timeout,
    url_scheme,
)
from pilotlib.transfer.checksum import calculate_checksum, normalize_checksum_type, verify_checksum
from pilotlib.transfer.errors import (
    AuthenticationError,
    ChecksumCalculationError,
    ChecksumMismatchError,
    CopytoolUnavailableError,
    EscapingPathError,
    FileExistsTransferError,
    MissingFileError,
    NoSpaceError,
    NoUsableCopytoolError,
    StorageUnavailableError,
    TransferError,
    TransferTimeoutError,
    UnknownChecksumTypeError,
    UnknownCopytoolError,
    XrdcpError,
)
from pilotlib.transfer.registry import ENTRY_POINT_GROUP, CopytoolRegistry, default_registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "AuthenticationError",
    "ChecksumCalculationError",
    "ChecksumMismatchError",
    "Copytool",
    "CopytoolRegistry",
    "CopytoolUnavailableError",
    "Direction",
    "EscapingPathError",
    "FileExistsTransferError",
    "MissingFileError",
    "NoSpaceError",
    "NoUsableCopytoolError",
    "StorageUnavailableError",
    "TransferError",
    "TransferRequest",
    "TransferResult",
    "TransferTimeoutError",
    "UnknownChecksumTypeError",
    "UnknownCopytoolError",
    "XrdcpError",
    "calculate_checksum",
    "default_registry",
    "failed_result",
    "local_path",
    "normalize_checksum_type",
    "transfer_timeout",
    "url_scheme",
    "verify_checksum",
]
