"""Stage-in orchestration with fake copytools: replica order, retries, failover, checksums, space, names."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from _fakes import FakeTool, registry_of
from fixtures.ledger import Ledger

from pilotlib.errors import Direction, ErrorCode
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.transfer.errors import (
    ChecksumMismatchError,
    EscapingPathError,
    NoSpaceError,
    StorageUnavailableError,
    TransferTimeoutError,
)
from pilotlib.transfer.replicas import NoReplicasError, Replica, StaticReplicaSource
from pilotlib.transfer.stagein import DirectAccess, StageIn


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def _storage(tmp_path: Path, rse: str, lfn: str, data: bytes) -> Replica:
    path = tmp_path / "storage" / rse / lfn
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Replica(ddmendpoint=rse, url=f"file://{path}")


def _job(*specs: FileSpec, transfer_type: str = "") -> Job:
    return Job(panda_id=42, inputs=specs, transfer_type=transfer_type)


def _spec(lfn: str, data: bytes, **kw: object) -> FileSpec:
    return FileSpec(lfn=lfn, kind=FileKind.INPUT, scope="mc23", filesize=len(data), adler32=_adler(data), **kw)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_lan_replica_preferred_and_verified(tmp_path: Path, workdir: Path) -> None:
    """The replica on the queue's own storage is read first; the copy's adler32 and size are in the result."""
    data = b"event data\n" * 10
    wan = _storage(tmp_path, "FAR_DATADISK", "in.root", data)
    lan = _storage(tmp_path, "NEAR_DATADISK", "in.root", data)
    tool = FakeTool("cp")
    stage = StageIn(registry_of(tool), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:in.root": (wan, lan)}),
                    local_storages={"NEAR_DATADISK"})
    (result,) = stage.run(_job(_spec("in.root", data)))
    assert result.ok and result.ddmendpoint == "NEAR_DATADISK"
    assert tool.requests[0].source == lan.url
    assert (workdir / "in.root").read_bytes() == data
    assert result.checksum == ("adler32", _adler(data)) and result.size == len(data)


@pytest.mark.reliability("faults", "storage", "storage down for the first copytool: next copytool tried")
def test_failover_to_next_tool(tmp_path: Path, workdir: Path, ledger: Ledger) -> None:
    """When the first copytool fails every attempt, the next one in the activity's list stages the file in."""
    data = b"abc"
    replica = _storage(tmp_path, "NEAR_DATADISK", "f1", data)
    broken = FakeTool("broken", lambda r, w: StorageUnavailableError("door closed", Direction.STAGE_IN))
    good = FakeTool("cp")
    stage = StageIn(registry_of(broken, good), ["broken", "cp"], workdir,
                    replicas=StaticReplicaSource({"mc23:f1": (replica,)}), attempts=2)
    (result,) = stage.run(_job(_spec("f1", data)))
    assert result.ok and result.tool == "cp"
    assert len(broken.requests) == 2 and len(good.requests) == 1
    ledger.add(faults_injected=2)


@pytest.mark.reliability("faults", "storage", "a corrupted replica (adler32 mismatch): retried, then GETADMISMATCH")
def test_corrupted_replica_retried_then_getadmismatch(tmp_path: Path, workdir: Path) -> None:
    """A copy whose adler32 differs is deleted and retried; after the last attempt the error is GETADMISMATCH."""
    replica = _storage(tmp_path, "NEAR_DATADISK", "f2", b"corrupted")
    tool = FakeTool("cp")
    stage = StageIn(registry_of(tool), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:f2": (replica,)}),
                    attempts=2)
    (result,) = stage.run(_job(_spec("f2", b"original!")))
    assert isinstance(result.error, ChecksumMismatchError)
    assert result.error_code is ErrorCode.GETADMISMATCH == 1171
    assert len(tool.requests) == 2
    assert not (workdir / "f2").exists()


@pytest.mark.reliability("faults", "storage", "a corrupted replica (md5 mismatch): GETMD5MISMATCH")
def test_md5_mismatch_code(tmp_path: Path, workdir: Path) -> None:
    """With only an md5 in the job definition a mismatch is GETMD5MISMATCH (1145)."""
    replica = _storage(tmp_path, "NEAR_DATADISK", "f3", b"bytes")
    spec = FileSpec(lfn="f3", kind=FileKind.INPUT, scope="mc23", filesize=5, md5="0" * 32)
    stage = StageIn(registry_of(FakeTool("cp")), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:f3": (replica,)}))
    (result,) = stage.run(_job(spec))
    assert result.error_code is ErrorCode.GETMD5MISMATCH


@pytest.mark.reliability("faults", "storage", "work directory too full for the inputs: NOLOCALSPACE, nothing copied")
def test_no_space(tmp_path: Path, workdir: Path) -> None:
    """Inputs larger than the free space fail every file with NOLOCALSPACE (1098), naming both sizes."""
    tool = FakeTool("cp")
    stage = StageIn(registry_of(tool), ["cp"], workdir, replicas=StaticReplicaSource({}), free_space=lambda p: 100)
    spec = FileSpec(lfn="big", kind=FileKind.INPUT, scope="mc23", filesize=1000)
    (result,) = stage.run(_job(spec))
    assert isinstance(result.error, NoSpaceError) and result.error_code is ErrorCode.NOLOCALSPACE
    assert "1000 B" in str(result.error) and "100 B" in str(result.error)
    assert tool.requests == []


def test_no_replica(workdir: Path) -> None:
    """An input without any disk replica fails with REPLICANOTFOUND (1100); tape replicas do not count."""
    tape = Replica(ddmendpoint="CERN_TAPE", url="root://tape//f", is_tape=True)
    stage = StageIn(registry_of(FakeTool("cp")), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:f": (tape,)}))
    (result,) = stage.run(_job(FileSpec(lfn="f", kind=FileKind.INPUT, scope="mc23")))
    assert isinstance(result.error, NoReplicasError) and result.error_code is ErrorCode.REPLICANOTFOUND


@pytest.mark.reliability("faults", "storage", "stage-in that never finishes: STAGEINTIMEOUT")
def test_timeout_given_and_reported(tmp_path: Path, workdir: Path) -> None:
    """Each request carries 400 s + size at 1 MB/s; a tool's timeout becomes STAGEINTIMEOUT (1151)."""
    replica = _storage(tmp_path, "NEAR_DATADISK", "f4", b"x")
    spec = FileSpec(lfn="f4", kind=FileKind.INPUT, scope="mc23", filesize=50_000_000)
    slow = FakeTool("slow", lambda r, w: TransferTimeoutError("took too long", Direction.STAGE_IN))
    stage = StageIn(registry_of(slow), ["slow"], workdir, replicas=StaticReplicaSource({"mc23:f4": (replica,)}))
    (result,) = stage.run(_job(spec))
    assert slow.requests[0].timeout == 450.0
    assert isinstance(result.error, TransferTimeoutError) and result.error_code is ErrorCode.STAGEINTIMEOUT


@pytest.mark.reliability("bad input", "file names",
                         "input name with '..' leaving the work directory: refused, no tool called")
def test_escaping_name_refused(tmp_path: Path, workdir: Path) -> None:
    """An input name that would leave the work directory is refused (STAGEINFAILED) without calling a tool."""
    replica = _storage(tmp_path, "NEAR_DATADISK", "x", b"x")
    tool = FakeTool("cp")
    stage = StageIn(registry_of(tool), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:../x": (replica,)}))
    (result,) = stage.run(_job(FileSpec(lfn="../x", kind=FileKind.INPUT, scope="mc23")))
    assert isinstance(result.error, EscapingPathError) and result.error_code is ErrorCode.STAGEINFAILED
    assert tool.requests == [] and not (tmp_path / "x").exists()


def test_direct_access_gives_url_without_copy(workdir: Path) -> None:
    """With direct access allowed on the LAN and asked by the job, the result is the root:// URL; nothing is copied."""
    replica = Replica(ddmendpoint="NEAR_DATADISK", url="root://se.example.org:1094//data/f5")
    tool = FakeTool("cp")
    stage = StageIn(registry_of(tool), ["cp"], workdir, replicas=StaticReplicaSource({"mc23:f5": (replica,)}),
                    local_storages={"NEAR_DATADISK"}, direct_access=DirectAccess(lan=True))
    (result,) = stage.run(_job(FileSpec(lfn="f5", kind=FileKind.INPUT, scope="mc23"), transfer_type="direct"))
    assert result.ok and result.tool == "direct" and result.url == replica.url
    assert tool.requests == [] and not (workdir / "f5").exists()


def test_parallel_all_files(tmp_path: Path, workdir: Path) -> None:
    """Several files are staged in with bounded parallelism; results keep the job's order."""
    specs, replicas = [], {}
    for i in range(6):
        data = f"file {i}".encode()
        replicas[f"mc23:p{i}"] = (_storage(tmp_path, "NEAR_DATADISK", f"p{i}", data),)
        specs.append(_spec(f"p{i}", data))
    stage = StageIn(registry_of(FakeTool("cp")), ["cp"], workdir, replicas=StaticReplicaSource(replicas), parallel=3)
    results = stage.run(_job(*specs))
    assert [r.lfn for r in results] == [f"p{i}" for i in range(6)] and all(r.ok for r in results)
    assert (workdir / "p5").read_bytes() == b"file 5"


def test_unknown_tools(workdir: Path) -> None:
    """Only unknown copytool names: every file fails with UNKNOWNCOPYTOOL (1323)."""
    stage = StageIn(registry_of(), ["nosuch"], workdir)
    (result,) = stage.run(_job(FileSpec(lfn="f", kind=FileKind.INPUT, scope="mc23")))
    assert result.error_code is ErrorCode.UNKNOWNCOPYTOOL
