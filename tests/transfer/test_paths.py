"""Local paths from a job definition stay inside the work directory; error classes carry their codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer.base import local_path, url_scheme
from pilotlib.transfer.errors import (
    AuthenticationError,
    EscapingPathError,
    MissingFileError,
    TransferTimeoutError,
    XrdcpError,
)


def test_relative_name_resolves_inside(tmp_path: Path) -> None:
    """A plain file name lands in the work directory."""
    assert local_path(tmp_path, "EVNT.pool.root.1", Direction.STAGE_IN) == tmp_path.resolve() / "EVNT.pool.root.1"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", "", ".."])
@pytest.mark.parametrize(
    ("direction", "code"),
    [(Direction.STAGE_IN, ErrorCode.STAGEINFAILED), (Direction.STAGE_OUT, ErrorCode.BADOUTPUTFILENAME)],
)
@pytest.mark.reliability("bad input", "file names",
                         "a name with '..', absolute or empty leaving the work directory: EscapingPathError")
def test_escaping_names_are_refused(tmp_path: Path, name: str, direction: Direction, code: ErrorCode) -> None:
    """Names that leave the work directory raise EscapingPathError with the direction's code."""
    with pytest.raises(EscapingPathError) as err:
        local_path(tmp_path / "work", name, direction)
    assert err.value.code == code


@pytest.mark.reliability("bad input", "file names", "a name through a symlinked folder leading outside: refused")
def test_symlinked_folder_escape_is_refused(tmp_path: Path) -> None:
    """A sub-folder that is a symbolic link to outside does not let a name out."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(tmp_path)
    with pytest.raises(EscapingPathError):
        local_path(work, "link/x", Direction.STAGE_IN)


@pytest.mark.reliability("bad input", "file names",
                         "a name that is itself a symlink (symlink stage-in): kept, not followed")
def test_existing_symlink_file_is_kept(tmp_path: Path) -> None:
    """The last component may itself be a symbolic link (a symlink stage-in) and is not followed."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.root").symlink_to(tmp_path / "elsewhere")
    assert local_path(work, "in.root", Direction.STAGE_IN) == work.resolve() / "in.root"


def test_error_codes_by_direction() -> None:
    """Each transfer error picks the pilot3 code of its direction."""
    cases = [
        (MissingFileError, ErrorCode.MISSINGINPUTFILE, ErrorCode.MISSINGOUTPUTFILE),
        (TransferTimeoutError, ErrorCode.STAGEINTIMEOUT, ErrorCode.STAGEOUTTIMEOUT),
        (AuthenticationError, ErrorCode.STAGEINAUTHENTICATIONFAILURE, ErrorCode.STAGEOUTAUTHENTICATIONFAILURE),
        (XrdcpError, ErrorCode.XRDCPERROR, ErrorCode.XRDCPERROR),
    ]
    for cls, code_in, code_out in cases:
        assert cls("x", Direction.STAGE_IN).code == code_in
        assert cls("x", Direction.STAGE_OUT).code == code_out


def test_url_scheme() -> None:
    """The scheme of a URL, file for a bare path."""
    assert url_scheme("root://h:1//a") == "root"
    assert url_scheme("DAVS://h/a") == "davs"
    assert url_scheme("/data/x") == "file"
