"""Stage-out: deterministic paths on disk, GUIDs, checksums, alternative storage, file info; fakes and real Rucio."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest
from _fakes import FakeTool, registry_of
from fixtures.rucio import DOWN_RSE, LOCAL_RSE, RucioServer

from pilotlib.errors import Direction, ErrorCode
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.transfer import CopytoolRegistry, output_file_info, output_file_info_json
from pilotlib.transfer.copytools.rucio import RucioCopytool
from pilotlib.transfer.errors import EscapingPathError, MissingFileError, StorageUnavailableError
from pilotlib.transfer.paths import StorageProtocol, deterministic_path
from pilotlib.transfer.stageout import NoStorageError, StageOut


def _out(lfn: str, rse: str = "SITE_DATADISK", scope: str = "user.jdoe") -> FileSpec:
    return FileSpec(lfn=lfn, kind=FileKind.OUTPUT, scope=scope, ddmendpoint=rse)


def _work(tmp_path: Path, **files: bytes) -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for name, data in files.items():
        (work / name).write_bytes(data)
    return work


def test_deterministic_path_as_panda_builds_it() -> None:
    """Scope dots become folders, then md5("scope:lfn")[0:2] and [2:4], then the LFN."""
    digest = hashlib.md5(b"user.jdoe:out.root").hexdigest()
    assert deterministic_path("user.jdoe", "out.root") == f"user/jdoe/{digest[:2]}/{digest[2:4]}/out.root"
    proto = StorageProtocol("root://se.example.org:1094", "/atlas/rucio/")
    assert proto.url_for("user.jdoe", "out.root") == (
        f"root://se.example.org:1094//atlas/rucio/user/jdoe/{digest[:2]}/{digest[2:4]}/out.root")


def test_stageout_to_deterministic_path_on_disk(tmp_path: Path) -> None:
    """A URL copytool writes the output at the deterministic path under the storage's path; checksum and GUID set."""
    data = b"histograms" * 50
    work = _work(tmp_path, **{"out.root": data})
    storage = tmp_path / "se"
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], work,
                     storages={"SITE_DATADISK": (StorageProtocol("file://", str(storage)),)})
    (result,) = stage.run(Job(panda_id=7, outputs=(_out("out.root"),)))
    assert result.ok, result.error
    on_disk = storage / deterministic_path("user.jdoe", "out.root")
    assert on_disk.read_bytes() == data
    assert result.url == f"file://{on_disk}"
    assert result.checksum == ("adler32", f"{zlib.adler32(data) & 0xFFFFFFFF:08x}") and result.size == len(data)
    assert len(result.guid) == 36 and result.ddmendpoint == "SITE_DATADISK"


def test_missing_output(tmp_path: Path) -> None:
    """An output the payload did not produce fails with MISSINGOUTPUTFILE (1165) before any transfer."""
    tool = FakeTool("cp")
    stage = StageOut(registry_of(tool), ["cp"], _work(tmp_path), storages={})
    (result,) = stage.run(Job(panda_id=7, outputs=(_out("absent.root"),)))
    assert isinstance(result.error, MissingFileError) and result.error_code is ErrorCode.MISSINGOUTPUTFILE
    assert tool.requests == []


def test_allow_no_output_leaves_out_a_missing_listed_output(tmp_path: Path) -> None:
    """An output listed in allowNoOutput that the payload did not produce is left out (no result, no transfer); a
    listed output that was produced is staged out; an unlisted missing one still fails with MISSINGOUTPUTFILE."""
    storage = tmp_path / "se"
    tool = FakeTool("cp")
    stage = StageOut(registry_of(tool), ["cp"], _work(tmp_path, **{"made.root": b"x"}),
                     storages={"SITE_DATADISK": (StorageProtocol("file://", str(storage)),)})
    job = Job(panda_id=7, outputs=(_out("made.root"), _out("optional.root"), _out("needed.root")),
              allow_no_output=("made.root", "optional.root"))
    results = stage.run(job)
    assert [r.lfn for r in results] == ["made.root", "needed.root"]
    assert results[0].ok and results[1].error_code is ErrorCode.MISSINGOUTPUTFILE
    assert [r.lfn for r in tool.requests] == ["made.root"]


@pytest.mark.reliability("bad input", "file names",
                         "output name with '..' leaving the work directory: BADOUTPUTFILENAME")
def test_escaping_output_name(tmp_path: Path) -> None:
    """An output name leaving the work directory is refused with BADOUTPUTFILENAME (1371)."""
    (tmp_path / "secret").write_bytes(b"s")
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], _work(tmp_path))
    (result,) = stage.run(Job(panda_id=7, outputs=(_out("../secret"),)))
    assert isinstance(result.error, EscapingPathError) and result.error_code is ErrorCode.BADOUTPUTFILENAME


def test_no_storage(tmp_path: Path) -> None:
    """An output without ddmEndPointOut and no default storage fails with NOSTORAGE (1133)."""
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], _work(tmp_path, o=b"x"))
    (result,) = stage.run(Job(panda_id=7, outputs=(_out("o", rse=""),)))
    assert isinstance(result.error, NoStorageError) and result.error_code is ErrorCode.NOSTORAGE


@pytest.mark.reliability("faults", "storage", "destination storage down at stage-out: alternative storage used")
def test_alt_storage_with_fake_tool(tmp_path: Path) -> None:
    """When the first storage fails and the job allows alternative stage-out, the alternative storage is used."""
    def fail_primary(request, workdir):  # type: ignore[no-untyped-def]
        if request.ddmendpoint == "SITE_DATADISK":
            return StorageUnavailableError("primary down", Direction.STAGE_OUT)
        return None

    tool = FakeTool("cp", fail_primary)
    protocols = {"SITE_DATADISK": (StorageProtocol("file://", str(tmp_path / "a")),),
                 "ALT_DATADISK": (StorageProtocol("file://", str(tmp_path / "b")),)}
    job = Job(panda_id=7, outputs=(_out("o.root"),), alt_stage_out="on")
    stage = StageOut(registry_of(tool), ["cp"], _work(tmp_path, **{"o.root": b"x"}), storages=protocols,
                     alt_storage="ALT_DATADISK", attempts=2)
    (result,) = stage.run(job)
    assert result.ok and result.ddmendpoint == "ALT_DATADISK"
    assert [r.ddmendpoint for r in tool.requests] == ["SITE_DATADISK", "SITE_DATADISK", "ALT_DATADISK"]
    assert (tmp_path / "b" / deterministic_path("user.jdoe", "o.root")).read_bytes() == b"x"
    # the queue's setting wins over the job's
    stage_off = StageOut(registry_of(FakeTool("cp", fail_primary)), ["cp"], stage.workdir, storages=protocols,
                         alt_storage="ALT_DATADISK", allow_alt=False)
    (refused,) = stage_off.run(job)
    assert refused.error_code is ErrorCode.STAGEOUTFAILED


def test_file_info_for_final_update(tmp_path: Path) -> None:
    """The final update's file info has guid, fsize, adler32, surl and endpoint per transferred file only."""
    work = _work(tmp_path, **{"ok.root": b"1234"})
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], work,
                     storages={"SITE_DATADISK": (StorageProtocol("file://", str(tmp_path / "se")),)})
    results = stage.run(Job(panda_id=7, outputs=(_out("ok.root"), _out("missing.root"))))
    info = output_file_info(results)
    assert set(info) == {"ok.root"}
    ok = results[0]
    assert info["ok.root"] == {"guid": ok.guid, "fsize": 4, "adler32": f"{zlib.adler32(b'1234'):08x}",
                               "surl": ok.url, "endpoint": "SITE_DATADISK"}
    assert json.loads(output_file_info_json(results)) == info


@pytest.mark.integration
@pytest.mark.reliability("faults", "storage", "RSE down at stage-out (real Rucio): alternative RSE used")
def test_rucio_stageout_alt_storage(rucio_server: RucioServer, tmp_path: Path) -> None:
    """Real Rucio: the upload to a storage that is down fails, the alternative RSE gets the file at its hash path."""
    registry = CopytoolRegistry(entry_points=[], factories={"rucio": RucioCopytool})
    work = _work(tmp_path, **{"alt.out.1": b"alt bytes"})
    spec = _out("alt.out.1", rse=DOWN_RSE, scope=rucio_server.scope)
    stage = StageOut(registry, ["rucio"], work, alt_storage=LOCAL_RSE, attempts=1,
                     tool_options={"rucio": {"client_factory": rucio_server.client}})
    (result,) = stage.run(Job(panda_id=8, outputs=(spec,), alt_stage_out="on"))
    assert result.ok, result.error
    assert result.ddmendpoint == LOCAL_RSE and result.tool == "rucio"
    assert rucio_server.path_of(LOCAL_RSE, rucio_server.scope, "alt.out.1").read_bytes() == b"alt bytes"
    replicas = list(rucio_server.client().list_replicas([{"scope": rucio_server.scope, "name": "alt.out.1"}]))
    assert list(replicas[0]["rses"]) == [LOCAL_RSE]
    assert replicas[0]["adler32"] == result.checksum[1] if result.checksum else False


@pytest.mark.integration
@pytest.mark.reliability("faults", "storage", "RSE down at stage-out, no alternative (real Rucio): STAGEOUTFAILED")
def test_rucio_stageout_storage_down_without_alt(rucio_server: RucioServer, tmp_path: Path) -> None:
    """Real Rucio: without alternative stage-out a storage that is down gives STAGEOUTFAILED (1137)."""
    registry = CopytoolRegistry(entry_points=[], factories={"rucio": RucioCopytool})
    work = _work(tmp_path, **{"down.out.1": b"x"})
    stage = StageOut(registry, ["rucio"], work, alt_storage=LOCAL_RSE, attempts=1,
                     tool_options={"rucio": {"client_factory": rucio_server.client}})
    (result,) = stage.run(Job(panda_id=9, outputs=(_out("down.out.1", rse=DOWN_RSE, scope=rucio_server.scope),)))
    assert isinstance(result.error, StorageUnavailableError) and result.error_code is ErrorCode.STAGEOUTFAILED
