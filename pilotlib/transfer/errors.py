"""Transfer errors: each a :class:`~pilotlib.errors.TransferError` with ``codes = (stage-in code, stage-out code)``.

Copytools translate their backend's failures into these once, at the plugin edge (``raise ... from exc``); the
stage-in/stage-out orchestration classifies them by type, never by message text.

The code choices follow PanDAWMS/pilot3 ``pilot/copytool/common.py`` (``resolve_common_transfer_errors``:
a missing source is MISSINGINPUTFILE on stage-in and NOSUCHFILE on stage-out; adler32 mismatches are
GETADMISMATCH/PUTADMISMATCH, other checksum mismatches GETMD5MISMATCH/PUTMD5MISMATCH; a timeout is
STAGEINTIMEOUT/STAGEOUTTIMEOUT; an xrdcp server error is XRDCPERROR) and ``pilot/api/data.py`` (authentication
failures are STAGEINAUTHENTICATIONFAILURE/STAGEOUTAUTHENTICATIONFAILURE).
"""

from __future__ import annotations

from typing import ClassVar

from pilotlib.errors import Direction, ErrorCode, TransferError

__all__ = [
    "AuthenticationError",
    "ChecksumCalculationError",
    "ChecksumMismatchError",
    "CopytoolUnavailableError",
    "Direction",
    "EscapingPathError",
    "FileExistsTransferError",
    "MissingFileError",
    "NoSpaceError",
    "NoUsableCopytoolError",
    "StorageUnavailableError",
    "TransferError",
    "TransferTimeoutError",
    "UnknownChecksumTypeError",
    "UnknownCopytoolError",
    "XrdcpError",
]

_E = ErrorCode


class ChecksumMismatchError(TransferError):
    """The transferred file's checksum differs from the expected one.

    ``checksum_type`` picks the code pair: adler32 gives GETADMISMATCH/PUTADMISMATCH (1171/1172), md5 gives
    GETMD5MISMATCH/PUTMD5MISMATCH (1145/1141).
    """

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.GETADMISMATCH, _E.PUTADMISMATCH)
    md5_codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.GETMD5MISMATCH, _E.PUTMD5MISMATCH)

    def __init__(
        self, message: str, direction: Direction, checksum_type: str = "adler32", expected: str = "", actual: str = ""
    ) -> None:
        self.checksum_type = checksum_type
        self.expected = expected
        self.actual = actual
        super().__init__(message, direction)
        if checksum_type != "adler32":
            self.code = self.md5_codes[0] if direction is Direction.STAGE_IN else self.md5_codes[1]


class TransferTimeoutError(TransferError):
    """The transfer took longer than its timeout (STAGEINTIMEOUT 1151 / STAGEOUTTIMEOUT 1152)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.STAGEINTIMEOUT, _E.STAGEOUTTIMEOUT)


class MissingFileError(TransferError):
    """The source file does not exist: the replica on stage-in (MISSINGINPUTFILE 1331), the local output on
    stage-out (MISSINGOUTPUTFILE 1165, as pilot3 ``pilot/api/data.py`` ``StageOutClient.prepare_destinations``)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.MISSINGINPUTFILE, _E.MISSINGOUTPUTFILE)


class AuthenticationError(TransferError):
    """The storage refused our credentials (STAGEINAUTHENTICATIONFAILURE 1338 / STAGEOUTAUTHENTICATIONFAILURE 1383)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.STAGEINAUTHENTICATIONFAILURE, _E.STAGEOUTAUTHENTICATIONFAILURE)


class StorageUnavailableError(TransferError):
    """The storage could not be reached (connection refused, host down): a plain STAGEINFAILED/STAGEOUTFAILED,
    as pilot3 reports an unclassified copy error."""


class XrdcpError(TransferError):
    """The XRootD server answered with an error pilot3 reports as XRDCPERROR (1362), in both directions."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.XRDCPERROR, _E.XRDCPERROR)


class FileExistsTransferError(TransferError):
    """The destination already exists and may not be overwritten (FILEEXISTS 1221)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.FILEEXISTS, _E.FILEEXISTS)


class NoSpaceError(TransferError):
    """No space left: local disk on stage-in (NOLOCALSPACE 1098), the storage on stage-out (NOREMOTESPACE 1333)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.NOLOCALSPACE, _E.NOREMOTESPACE)


class EscapingPathError(TransferError):
    """A local path from the job definition would leave the work directory.

    Stage-in: STAGEINFAILED (1099): the catalogue has no input-file-name code, and the file can not be staged in.
    Stage-out: BADOUTPUTFILENAME (1371), "Output file name contains illegal characters", the code the job model
    also uses for an unsafe LFN.
    """

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.STAGEINFAILED, _E.BADOUTPUTFILENAME)


class ChecksumCalculationError(TransferError):
    """The local checksum could not be computed (CHECKSUMCALCFAILURE 1366)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.CHECKSUMCALCFAILURE, _E.CHECKSUMCALCFAILURE)


class UnknownChecksumTypeError(TransferError):
    """A checksum type other than adler32 or md5 was asked for (UNKNOWNCHECKSUMTYPE 1314)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.UNKNOWNCHECKSUMTYPE, _E.UNKNOWNCHECKSUMTYPE)


class UnknownCopytoolError(TransferError):
    """A copytool name that no entry point registers (UNKNOWNCOPYTOOL 1323)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.UNKNOWNCOPYTOOL, _E.UNKNOWNCOPYTOOL)


class CopytoolUnavailableError(TransferError):
    """A copytool is registered but can not be used on this node (library missing, command absent, plugin broken).

    Carries the generic stage-in/stage-out code; ``reason`` says why.
    """

    def __init__(self, message: str, direction: Direction, reason: str = "") -> None:
        self.reason = reason
        super().__init__(message, direction)


class NoUsableCopytoolError(TransferError):
    """None of the configured copytools for an activity is usable; the message lists why each was skipped.

    ``skipped`` maps each tool name to its reason. Generic STAGEINFAILED/STAGEOUTFAILED; when every configured
    name was unknown the code is UNKNOWNCOPYTOOL (1323).
    """

    def __init__(self, direction: Direction, skipped: dict[str, str], all_unknown: bool = False) -> None:
        self.skipped = dict(skipped)
        detail = "; ".join(f"{name}: {why}" for name, why in skipped.items()) or "no copytool configured"
        super().__init__(f"no usable copytool ({detail})", direction)
        if all_unknown:
            self.code = ErrorCode.UNKNOWNCOPYTOOL
