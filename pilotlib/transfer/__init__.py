"""Transfers: the copytool interface and registry, checksums, transfer errors, and the built-in copytools.

Built-in copytools live in :mod:`pilotlib.transfer.copytools` and are found through the ``pilotlib.copytools``
entry-point group by :class:`CopytoolRegistry`; importing this package never imports a backend library.
"""

from pilotlib.transfer.base import (
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    Copytool,
    Direction,
    StopSignal,
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
from pilotlib.transfer.logtar import LogCreationTimeoutError, LogTarballError, create_log_tarball, stage_out_log
from pilotlib.transfer.paths import StorageProtocol, deterministic_path, deterministic_url
from pilotlib.transfer.registry import ENTRY_POINT_GROUP, CopytoolRegistry, default_registry
from pilotlib.transfer.replicas import (
    DID_SCHEME,
    NoReplicasError,
    Replica,
    ReplicaListError,
    ReplicaSource,
    RucioReplicaSource,
    StaticReplicaSource,
    sort_replicas,
)
from pilotlib.transfer.report import output_file_info, output_file_info_json
from pilotlib.transfer.stagein import DirectAccess, StageIn, expected_checksum
from pilotlib.transfer.stageout import NoStorageError, StageOut

__all__ = [
    # stage-in, stage-out, replicas, log tarball, file info
    "DID_SCHEME",
    "ENTRY_POINT_GROUP",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "AuthenticationError",
    "ChecksumCalculationError",
    "ChecksumMismatchError",
    "Copytool",
    "CopytoolRegistry",
    "CopytoolUnavailableError",
    "DirectAccess",
    "Direction",
    "EscapingPathError",
    "FileExistsTransferError",
    "LogCreationTimeoutError",
    "LogTarballError",
    "MissingFileError",
    "NoReplicasError",
    "NoSpaceError",
    "NoStorageError",
    "NoUsableCopytoolError",
    "Replica",
    "ReplicaListError",
    "ReplicaSource",
    "RucioReplicaSource",
    "StageIn",
    "StageOut",
    "StaticReplicaSource",
    "StopSignal",
    "StorageProtocol",
    "StorageUnavailableError",
    "TransferError",
    "TransferRequest",
    "TransferResult",
    "TransferTimeoutError",
    "UnknownChecksumTypeError",
    "UnknownCopytoolError",
    "XrdcpError",
    "calculate_checksum",
    "create_log_tarball",
    "default_registry",
    "deterministic_path",
    "deterministic_url",
    "expected_checksum",
    "failed_result",
    "local_path",
    "normalize_checksum_type",
    "output_file_info",
    "output_file_info_json",
    "sort_replicas",
    "stage_out_log",
    "transfer_timeout",
    "url_scheme",
    "verify_checksum",
]
