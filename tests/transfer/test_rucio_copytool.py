"""The rucio copytool against a real Rucio server: upload with registration, download by DID, failures as values."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from fixtures.rucio import DOWN_RSE, LOCAL_RSE, REMOTE_RSE, RucioServer
from fixtures.xrootd import XRootDServer

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer.base import TransferRequest
from pilotlib.transfer.copytools.rucio import RucioCopytool
from pilotlib.transfer.errors import (
    ChecksumMismatchError,
    EscapingPathError,
    MissingFileError,
    StorageUnavailableError,
    TransferTimeoutError,
)
from pilotlib.transfer.paths import deterministic_path

pytestmark = pytest.mark.integration


def _upload(server: RucioServer, tmp_path: Path, rse: str, content: bytes) -> str:
    name = f"ct.{uuid.uuid4().hex[:10]}.root"
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    (outdir / name).write_bytes(content)
    tool = RucioCopytool(client_factory=server.client)
    request = TransferRequest(lfn=name, direction=Direction.STAGE_OUT, source=name,
                              destination=f"{server.scope}:{name}", scope=server.scope, ddmendpoint=rse,
                              guid=str(uuid.uuid4()))
    (result,) = tool.transfer([request], outdir)
    assert result.ok, result.error
    return name


def test_upload_registers_and_lands_on_hash_path(rucio_server: RucioServer, tmp_path: Path) -> None:
    """An upload puts the file at the RSE's deterministic hash path and registers it with its GUID and adler32."""
    name = f"ct.{uuid.uuid4().hex[:10]}.root"
    (tmp_path / name).write_bytes(b"payload output\n" * 100)
    guid = str(uuid.uuid4())
    request = TransferRequest(lfn=name, direction=Direction.STAGE_OUT, source=name, destination="",
                              scope=rucio_server.scope, ddmendpoint=LOCAL_RSE, guid=guid)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path)
    assert result.ok, result.error
    on_disk = rucio_server.path_of(LOCAL_RSE, rucio_server.scope, name)
    assert on_disk.read_bytes() == b"payload output\n" * 100
    assert result.url.endswith(str(on_disk))
    assert result.size == 1500
    meta = rucio_server.client().get_metadata(rucio_server.scope, name)
    assert meta["guid"].replace("-", "").lower() == guid.replace("-", "").lower()


def test_download_by_did_from_chosen_rse(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A download by DID restricted to one RSE writes the file under the requested local name."""
    name = _upload(rucio_server, tmp_path, REMOTE_RSE, b"input data\n")
    work = tmp_path / "work"
    work.mkdir()
    request = TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:{name}",
                              destination=name, scope=rucio_server.scope, ddmendpoint=REMOTE_RSE)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], work)
    assert result.ok, result.error
    assert (work / name).read_bytes() == b"input data\n"
    assert result.tool == "rucio" and result.size == 11


def test_download_onto_a_directory_is_a_value(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A local name taken by a directory gives a failed result (STAGEINFAILED 1099), not a bare OSError; the
    scratch folder is removed."""
    name = _upload(rucio_server, tmp_path, LOCAL_RSE, b"data")
    work = tmp_path / "work"
    (work / name).mkdir(parents=True)
    (work / name / "keep").write_text("x")
    request = TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:{name}",
                              destination=name, scope=rucio_server.scope, ddmendpoint=LOCAL_RSE)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], work)
    assert result.error_code is ErrorCode.STAGEINFAILED and name in str(result.error)
    assert sorted(p.name for p in work.iterdir()) == [name]


def test_download_missing_file(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A DID Rucio does not know gives MissingFileError with MISSINGINPUTFILE (1331)."""
    request = TransferRequest(lfn="nosuch.file", direction=Direction.STAGE_IN,
                              source=f"{rucio_server.scope}:nosuch.file", destination="nosuch.file",
                              scope=rucio_server.scope)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path)
    assert isinstance(result.error, MissingFileError)
    assert result.error_code is ErrorCode.MISSINGINPUTFILE


@pytest.mark.reliability("faults", "storage", "a corrupted replica (rucio copytool): GETADMISMATCH, no file left")
def test_download_corrupted_replica(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A replica whose bytes changed on the storage fails Rucio's checksum check: GETADMISMATCH (1171)."""
    name = _upload(rucio_server, tmp_path, LOCAL_RSE, b"good bytes\n")
    rucio_server.path_of(LOCAL_RSE, rucio_server.scope, name).write_bytes(b"evil bytes\n")
    work = tmp_path / "work"
    work.mkdir()
    request = TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:{name}",
                              destination=name, scope=rucio_server.scope, ddmendpoint=LOCAL_RSE)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], work)
    assert isinstance(result.error, ChecksumMismatchError)
    assert result.error_code is ErrorCode.GETADMISMATCH
    assert not (work / name).exists()


@pytest.mark.reliability("faults", "storage", "RSE down at stage-out (rucio copytool): STAGEOUTFAILED as a value")
def test_upload_to_storage_that_is_down(rucio_server: RucioServer, tmp_path: Path) -> None:
    """An upload to an RSE whose storage can not be written fails with STAGEOUTFAILED (1137), not an exception."""
    (tmp_path / "x.out").write_bytes(b"x")
    request = TransferRequest(lfn="x.out", direction=Direction.STAGE_OUT, source="x.out", destination="",
                              scope=rucio_server.scope, ddmendpoint=DOWN_RSE)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path)
    assert isinstance(result.error, StorageUnavailableError)
    assert result.error_code is ErrorCode.STAGEOUTFAILED


@pytest.mark.reliability("faults", "storage",
                         "download that can not finish in time (rucio copytool): STAGEINTIMEOUT, scratch removed")
def test_download_timeout(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A download that can not finish within its timeout gives STAGEINTIMEOUT (1151)."""
    name = _upload(rucio_server, tmp_path, LOCAL_RSE, b"slow\n")
    request = TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:{name}",
                              destination=name, scope=rucio_server.scope, timeout=0.001)
    (tmp_path / "in").mkdir()
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path / "in")
    assert isinstance(result.error, TransferTimeoutError)
    assert result.error_code is ErrorCode.STAGEINTIMEOUT
    deadline = time.monotonic() + 60  # the abandoned download removes its scratch folder when it ends
    while list((tmp_path / "in").glob(".rucio-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((tmp_path / "in").iterdir()) == []


def test_download_into_missing_workdir(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A work directory that does not exist gives a failed result (STAGEINFAILED), not an exception."""
    request = TransferRequest(lfn="f", direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:f",
                              destination="f", scope=rucio_server.scope)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path / "absent")
    assert result.error_code is ErrorCode.STAGEINFAILED


@pytest.mark.reliability("bad input", "file names",
                         "local name with '..' (rucio copytool): refused before any transfer")
def test_download_escaping_name_refused(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A local name that leaves the work directory is refused before any transfer (EscapingPathError, 1099)."""
    request = TransferRequest(lfn="a", direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:a",
                              destination="../escaped", scope=rucio_server.scope)
    (result,) = RucioCopytool(client_factory=rucio_server.client).transfer([request], tmp_path)
    assert isinstance(result.error, EscapingPathError)
    assert result.error_code is ErrorCode.STAGEINFAILED
    assert not (tmp_path.parent / "escaped").exists()


def test_xrootd_rse_roundtrip(rucio_server: RucioServer, rucio_xrootd_rse: str, xrootd_server: XRootDServer,
                              tmp_path: Path) -> None:
    """Upload to and download from an RSE on the real XRootD server: the file lies at its hash path there."""
    name = f"xrd.{uuid.uuid4().hex[:10]}.root"
    (tmp_path / name).write_bytes(b"over xrootd\n" * 50)
    tool = RucioCopytool(client_factory=rucio_server.client)
    up = TransferRequest(lfn=name, direction=Direction.STAGE_OUT, source=name, destination="",
                         scope=rucio_server.scope, ddmendpoint=rucio_xrootd_rse)
    (uploaded,) = tool.transfer([up], tmp_path)
    assert uploaded.ok, uploaded.error
    assert uploaded.url.startswith(f"root://127.0.0.1:{xrootd_server.port}/")
    relative = "rucio/" + deterministic_path(rucio_server.scope, name)
    assert xrootd_server.local(relative).read_bytes() == b"over xrootd\n" * 50
    work = tmp_path / "work"
    work.mkdir()
    down = TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=f"{rucio_server.scope}:{name}",
                           destination=name, scope=rucio_server.scope, ddmendpoint=rucio_xrootd_rse)
    (downloaded,) = tool.transfer([down], work)
    assert downloaded.ok, downloaded.error
    assert (work / name).read_bytes() == b"over xrootd\n" * 50
