"""Backend failures (XRootD statuses, gfal2 errors, command output) become the right transfer error and code."""

from __future__ import annotations

import errno

import pytest

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer.copytools.gfal import classify_gfal_failure
from pilotlib.transfer.copytools.lsm import classify_command_output
from pilotlib.transfer.copytools.xrdcp import classify_xrootd_failure

IN, OUT = Direction.STAGE_IN, Direction.STAGE_OUT


@pytest.mark.parametrize(
    ("code", "err", "message", "direction", "expected"),
    [
        (305, 0, "[ERROR] CheckSum error", IN, ErrorCode.GETADMISMATCH),
        (305, 0, "[ERROR] CheckSum error", OUT, ErrorCode.PUTADMISMATCH),
        (206, 0, "[ERROR] Operation expired", IN, ErrorCode.STAGEINTIMEOUT),
        (103, 0, "[FATAL] Socket timeout", OUT, ErrorCode.STAGEOUTTIMEOUT),
        (400, 3011, "[ERROR] Server responded with an error: [3011] no such file or directory", IN,
         ErrorCode.MISSINGINPUTFILE),
        (400, 3010, "[ERROR] Server responded with an error: [3010] permission denied", OUT,
         ErrorCode.STAGEOUTAUTHENTICATIONFAILURE),
        (400, 3009, "[ERROR] Server responded with an error: [3009] out of space", OUT, ErrorCode.NOREMOTESPACE),
        (108, 0, "[FATAL] Connection error", IN, ErrorCode.STAGEINFAILED),
        (400, 3012, "[ERROR] Server responded with an error: [3012] internal error", IN, ErrorCode.XRDCPERROR),
        (1, 0, "[ERROR] something else", OUT, ErrorCode.STAGEOUTFAILED),
    ],
)
def test_xrootd_statuses(code: int, err: int, message: str, direction: Direction, expected: ErrorCode) -> None:
    """XrdCl status codes and server errnos map to pilot3's codes (XRDCPERROR for other server errors)."""
    error = classify_xrootd_failure(code, err, message, direction, "f")
    assert error.code == expected
    assert str(error).startswith("f: ")


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (5, "SOURCE CHECKSUM MISMATCH Source checksum and user-specified checksum do not match",
         ErrorCode.GETADMISMATCH),
        (errno.ENOENT, "Could not get the source checksum: HTTP 404 : File not found", ErrorCode.MISSINGINPUTFILE),
        (errno.ETIMEDOUT, "Connection timed out", ErrorCode.STAGEINTIMEOUT),
        (112, "Could not connect to server", ErrorCode.STAGEINFAILED),
        (errno.EACCES, "HTTP 403 : Permission refused", ErrorCode.STAGEINAUTHENTICATIONFAILURE),
        (errno.ENOSPC, "No space left on device", ErrorCode.NOLOCALSPACE),
        (errno.EEXIST, "Destination exists", ErrorCode.FILEEXISTS),
    ],
)
def test_gfal_errors(code: int, message: str, expected: ErrorCode) -> None:
    """gfal2 errnos and messages map to the stage-in codes."""
    assert classify_gfal_failure(code, message, IN, "f").code == expected


@pytest.mark.parametrize(
    ("output", "direction", "expected"),
    [
        ("checksum mismatch: adler32 deadbeef != 0a0b0c0d", OUT, ErrorCode.PUTADMISMATCH),
        ("copy timed out after 600 s", IN, ErrorCode.STAGEINTIMEOUT),
        ("cp: cannot stat '/se/x': No such file or directory", IN, ErrorCode.MISSINGINPUTFILE),
        ("File exists", OUT, ErrorCode.FILEEXISTS),
        ("write failed: No space left on device", OUT, ErrorCode.NOREMOTESPACE),
        ("connect: Connection refused", IN, ErrorCode.STAGEINFAILED),
        ("exit status 7", OUT, ErrorCode.STAGEOUTFAILED),
    ],
)
def test_command_output(output: str, direction: Direction, expected: ErrorCode) -> None:
    """A site command's output maps to pilot3's common transfer codes."""
    assert classify_command_output(output, direction, "lsm-get f").code == expected
