"""The middleware container's request and results files, and its entry point run in this process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotlib.errors import Direction, ErrorCode, TransferError
from pilotlib.transfer import TransferRequest, TransferResult
from pilotlib.transfer.errors import (
    ChecksumMismatchError,
    MissingFileError,
    NoUsableCopytoolError,
    TransferTimeoutError,
)
from pilotlib.transfer.incontainer import (
    ContainerBatch,
    error_from,
    main,
    read_request,
    read_results,
    request_text,
    results_text,
)

IN, OUT = Direction.STAGE_IN, Direction.STAGE_OUT


def _requests() -> tuple[TransferRequest, ...]:
    return (TransferRequest("a.root", IN, "root://host//data/a.root", "a.root", scope="mc23", filesize=12,
                            checksum=("adler32", "0a0b0c0d"), ddmendpoint="CERN", guid="G-1", timeout=412.0),
            TransferRequest("b.root", OUT, "b.root", "davs://host/b.root"))


def test_request_round_trip(tmp_path: Path) -> None:
    """Everything a TransferRequest holds, the copytool, its options and the work directory come back as written."""
    batch = ContainerBatch("xrdcp", tmp_path, _requests(), {"backend": "command", "parallel": 2})
    path = tmp_path / "request.json"
    path.write_text(request_text(batch))
    assert read_request(path) == batch


def test_request_never_carries_a_secret(tmp_path: Path) -> None:
    """A URL with a password or a token, or an option holding a token, is refused: nothing is written."""
    for url in ("root://user:pw@host//f", "https://host/f?access_token=abc.def", "root://host//f?authz=xyz"):
        request = TransferRequest("f", IN, url, "f")
        with pytest.raises(TransferError) as err:
            request_text(ContainerBatch("xrdcp", tmp_path, (request,)))
        assert err.value.code == ErrorCode.STAGEINFAILED
        assert "would carry a secret" in err.value.message
    with pytest.raises(TransferError, match="would carry a secret"):
        request_text(ContainerBatch("rucio", tmp_path, _requests()[1:], {"token": "s3cr3t"}))
    with pytest.raises(TransferError, match="options cannot go") as err:
        request_text(ContainerBatch("x", tmp_path, _requests()[1:], {"callback": object()}))
    assert err.value.code == ErrorCode.STAGEOUTFAILED


def test_results_round_trip_rebuilds_errors_with_their_codes(tmp_path: Path) -> None:
    """Sizes, checksums, URLs come back; each error as its type with its code (md5 mismatch 1145, a timeout
    1152), one whose type takes other arguments as a TransferError with its code."""
    requests = (*_requests(), TransferRequest("c", IN, "root://h//c", "c"), TransferRequest("d", IN, "root://h//d",
                                                                                              "d"))
    results = [
        TransferResult("a.root", IN, "xrdcp", "root://host//data/a.root", str(tmp_path / "a.root"), size=12,
                       checksum=("adler32", "0a0b0c0d"), seconds=1.5, ddmendpoint="CERN", guid="G-1"),
        TransferResult("b.root", OUT, "xrdcp", "davs://host/b.root", "b.root",
                       error=TransferTimeoutError("b.root exceeded 400 s", OUT)),
        TransferResult("c", IN, "xrdcp", "root://h//c", "c",
                       error=ChecksumMismatchError("md5 mismatch", IN, checksum_type="md5")),
        TransferResult("d", IN, "xrdcp", "root://h//d", "d", error=NoUsableCopytoolError(IN, {"xrdcp": "gone"},
                                                                                          all_unknown=True)),
    ]
    path = tmp_path / "results.json"
    path.write_text(results_text(results))
    back = read_results(path, requests)
    assert back == results  # errors are not compared by ==: checked below
    assert [r.error_code for r in back] == [None, ErrorCode.STAGEOUTTIMEOUT, ErrorCode.GETMD5MISMATCH,
                                            ErrorCode.UNKNOWNCOPYTOOL]
    assert type(back[1].error) is TransferTimeoutError and back[1].error.message == "b.root exceeded 400 s"
    assert type(back[2].error) is ChecksumMismatchError
    assert type(back[3].error) is TransferError and "xrdcp: gone" in back[3].error.message


def test_results_must_answer_the_requests(tmp_path: Path) -> None:
    """Results for other files, another format or broken JSON are refused."""
    path = tmp_path / "results.json"
    path.write_text(results_text([TransferResult("zz", IN, "x", "u", "zz")]))
    with pytest.raises(ValueError, match="asked for"):
        read_results(path, _requests())
    path.write_text(json.dumps({"format": 99, "results": []}))
    with pytest.raises(ValueError, match="not a format 1 file"):
        read_results(path, ())
    path.write_text('{"format": 1, "results": [')
    with pytest.raises(ValueError):
        read_results(path, ())


def test_unknown_error_type_and_code() -> None:
    """An unknown type is a TransferError; a number PanDA does not know leaves the type's own code."""
    error = error_from({"type": "SomethingElse", "code": 1331, "message": "m"}, IN)
    assert type(error) is TransferError and error.code == ErrorCode.MISSINGINPUTFILE
    error = error_from({"type": "MissingFileError", "code": 99999, "message": "m"}, OUT)
    assert type(error) is MissingFileError and error.code == ErrorCode.MISSINGOUTPUTFILE


def test_entry_point_runs_the_named_copytool(tmp_path: Path) -> None:
    """``main`` copies with the named copytool and writes one result per request: a copy with its size, a missing
    source with MISSINGINPUTFILE; an unknown copytool fails every file with 1323."""
    source = tmp_path / "storage" / "in.dat"
    source.parent.mkdir()
    source.write_bytes(b"data for the entry point")
    workdir = tmp_path / "work"
    workdir.mkdir()
    requests = (TransferRequest("in.dat", IN, f"file://{source}", "in.dat"),
                TransferRequest("none.dat", IN, f"file://{tmp_path}/none.dat", "none.dat"))
    request, results = workdir / "req.json", workdir / "res.json"
    request.write_text(request_text(ContainerBatch("cp", workdir, requests)))
    assert main([str(request), str(results)], {"PATH": "/usr/bin:/bin"}) == 0
    good, missing = read_results(results, requests)
    assert (good.ok, good.tool, good.size, good.local_path) == (True, "cp", 24, str(workdir / "in.dat"))
    assert (workdir / "in.dat").read_bytes() == b"data for the entry point"
    assert missing.error_code == ErrorCode.MISSINGINPUTFILE
    request.write_text(request_text(ContainerBatch("no-such-tool", workdir, requests)))
    assert main([str(request), str(results)], {}) == 0
    assert [r.error_code for r in read_results(results, requests)] == [ErrorCode.UNKNOWNCOPYTOOL] * 2


def test_entry_point_without_a_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or broken request file, or bad arguments, exit 2 and write no results."""
    results = tmp_path / "res.json"
    assert main([str(tmp_path / "nothing.json"), str(results)], {}) == 2
    (tmp_path / "bad.json").write_text('{"format": 1}')
    assert main([str(tmp_path / "bad.json"), str(results)], {}) == 2
    assert main([], {}) == 2
    assert not results.exists()
    assert "usage: python -m pilotlib.transfer.incontainer" in capsys.readouterr().err
