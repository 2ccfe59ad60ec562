"""Stage-in against a real Rucio server: replicas by DID, LAN preferred, failover, corrupted and missing replicas."""

from __future__ import annotations

import uuid
import zlib
from pathlib import Path

import pytest
from _fakes import FakeTool
from fixtures.ledger import Ledger
from fixtures.rucio import LOCAL_RSE, REMOTE_RSE, RucioServer
from rucio.client.uploadclient import UploadClient

from pilotlib.errors import Direction, ErrorCode
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.transfer import CopytoolRegistry, RucioReplicaSource, StageIn
from pilotlib.transfer.copytools.rucio import RucioCopytool
from pilotlib.transfer.errors import ChecksumMismatchError, StorageUnavailableError
from pilotlib.transfer.replicas import NoReplicasError

pytestmark = pytest.mark.integration


def _put(server: RucioServer, tmp_path: Path, data: bytes, rses: tuple[str, ...]) -> FileSpec:
    name = f"in.{uuid.uuid4().hex[:10]}.root"
    (tmp_path / name).write_bytes(data)
    uploader = UploadClient(_client=server.client())
    for rse in rses:
        uploader.upload([{"path": str(tmp_path / name), "rse": rse, "did_scope": server.scope,
                          "register_after_upload": True}])
    return FileSpec(lfn=name, kind=FileKind.INPUT, scope=server.scope, filesize=len(data),
                    adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")


def _stage(server: RucioServer, work: Path, lan: str, tools: list[str], extra: dict[str, FakeTool] | None = None,
           attempts: int = 2) -> StageIn:
    factories = {"rucio": RucioCopytool, **{n: (lambda t=t: t) for n, t in (extra or {}).items()}}
    return StageIn(CopytoolRegistry(entry_points=[], factories=factories), tools, work,
                   replicas=RucioReplicaSource(server.client), local_storages={lan}, attempts=attempts,
                   tool_options={"rucio": {"client_factory": server.client}})


@pytest.mark.parametrize("lan", [LOCAL_RSE, REMOTE_RSE])
def test_stagein_by_did_lan_preferred(rucio_server: RucioServer, tmp_path: Path, lan: str) -> None:
    """A file on two RSEs is read by DID from the queue's own storage, and verified."""
    spec = _put(rucio_server, tmp_path, b"two copies\n" * 20, (LOCAL_RSE, REMOTE_RSE))
    work = tmp_path / "work"
    work.mkdir()
    (result,) = _stage(rucio_server, work, lan, ["rucio"]).run(Job(panda_id=1, inputs=(spec,)))
    assert result.ok, result.error
    assert result.ddmendpoint == lan and result.tool == "rucio"
    assert (work / spec.lfn).read_bytes() == b"two copies\n" * 20
    assert result.checksum == ("adler32", spec.adler32)


@pytest.mark.reliability("faults", "storage", "storage down for the first copytool: rucio tried next")
def test_failover_to_rucio(rucio_server: RucioServer, tmp_path: Path, ledger: Ledger) -> None:
    """A failing first copytool is tried, then rucio stages the file in."""
    spec = _put(rucio_server, tmp_path, b"failover", (LOCAL_RSE,))
    broken = FakeTool("broken", lambda r, w: StorageUnavailableError("door closed", Direction.STAGE_IN),
                      schemes=("file",))
    work = tmp_path / "work"
    work.mkdir()
    stage = _stage(rucio_server, work, LOCAL_RSE, ["broken", "rucio"], {"broken": broken})
    (result,) = stage.run(Job(panda_id=2, inputs=(spec,)))
    assert result.ok and result.tool == "rucio"
    assert len(broken.requests) == 2 and broken.requests[0].source.startswith("file://")
    assert (work / spec.lfn).read_bytes() == b"failover"
    ledger.add(faults_injected=2)


@pytest.mark.reliability("faults", "storage", "a corrupted replica (real Rucio): retried, then GETADMISMATCH")
def test_corrupted_replica(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A replica altered on the storage is retried, then fails with GETADMISMATCH (1171); no file is left."""
    spec = _put(rucio_server, tmp_path, b"pristine", (LOCAL_RSE,))
    rucio_server.path_of(LOCAL_RSE, rucio_server.scope, spec.lfn).write_bytes(b"tampered")
    work = tmp_path / "work"
    work.mkdir()
    (result,) = _stage(rucio_server, work, LOCAL_RSE, ["rucio"]).run(Job(panda_id=3, inputs=(spec,)))
    assert isinstance(result.error, ChecksumMismatchError)
    assert result.error_code is ErrorCode.GETADMISMATCH
    assert not (work / spec.lfn).exists()


def test_missing_file(rucio_server: RucioServer, tmp_path: Path) -> None:
    """An input Rucio has no replica of fails with REPLICANOTFOUND (1100)."""
    spec = FileSpec(lfn="never.uploaded", kind=FileKind.INPUT, scope=rucio_server.scope)
    (result,) = _stage(rucio_server, tmp_path, LOCAL_RSE, ["rucio"]).run(Job(panda_id=4, inputs=(spec,)))
    assert isinstance(result.error, NoReplicasError) and result.error_code is ErrorCode.REPLICANOTFOUND


@pytest.mark.reliability("faults", "storage", "replica registered but gone from the storage: STAGEINFAILED")
def test_replica_vanished_from_storage(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A registered replica whose file is gone from the storage fails as a stage-in failure, not an exception."""
    spec = _put(rucio_server, tmp_path, b"gone", (LOCAL_RSE,))
    rucio_server.path_of(LOCAL_RSE, rucio_server.scope, spec.lfn).unlink()
    work = tmp_path / "work"
    work.mkdir()
    (result,) = _stage(rucio_server, work, LOCAL_RSE, ["rucio"], attempts=1).run(Job(panda_id=5, inputs=(spec,)))
    assert isinstance(result.error, StorageUnavailableError) and result.error_code is ErrorCode.STAGEINFAILED
    assert not (work / spec.lfn).exists()
