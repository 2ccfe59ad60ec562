"""Stage-in and stage-out while the pilot stops: no new transfer starts; the log's copies get a timeout cap."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from _fakes import FakeTool, registry_of

from pilotlib.errors import Direction, ErrorCode, PilotError, TransferError, error_for_signal
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.stop import Stop
from pilotlib.transfer.base import TransferRequest
from pilotlib.transfer.paths import StorageProtocol
from pilotlib.transfer.replicas import Replica, StaticReplicaSource
from pilotlib.transfer.stagein import StageIn
from pilotlib.transfer.stageout import StageOut


def _inputs(tmp_path: Path, count: int) -> tuple[Job, StaticReplicaSource]:
    specs, replicas = [], {}
    for i in range(count):
        data = f"file {i}\n".encode()
        path = tmp_path / "se" / f"in{i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        specs.append(FileSpec(lfn=f"in{i}.dat", kind=FileKind.INPUT, scope="s", filesize=len(data),
                              adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"))
        replicas[f"s:in{i}.dat"] = (Replica("SE", f"file://{path}"),)
    return Job(panda_id=5, inputs=tuple(specs)), StaticReplicaSource(replicas)


def _stopping(stop: Stop) -> Callable[[TransferRequest, Path], PilotError | None]:
    """A fake tool's behaviour: SIGTERM arrives during the first copy, which still completes."""
    def behaviour(request: TransferRequest, workdir: Path) -> None:
        stop.set(error_for_signal(15))
    return behaviour


def test_stage_in_starts_no_new_transfer_once_stopping(tmp_path: Path) -> None:
    """After the stop, the remaining inputs are not copied: they fail with STAGEINFAILED (1099), the first is done."""
    job, replicas = _inputs(tmp_path, 4)
    stop = Stop()
    tool = FakeTool("cp", _stopping(stop))
    (tmp_path / "work").mkdir()
    stage = StageIn(registry_of(tool), ["cp"], tmp_path / "work", replicas=replicas, parallel=1)
    results = stage.run(job, stop)
    assert [r.ok for r in results] == [True, False, False, False]
    assert [r.lfn for r in tool.requests] == ["in0.dat"]
    for result in results[1:]:
        assert type(result.error) is TransferError and result.error.code == ErrorCode.STAGEINFAILED
        assert "the pilot is stopping" in result.error.message
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["in0.dat"]


def test_stage_in_retries_stop_too(tmp_path: Path) -> None:
    """A failed try is not retried once stopping (the retry is a new transfer)."""
    job, replicas = _inputs(tmp_path, 1)
    stop = Stop()

    def fail(request: TransferRequest, workdir: Path) -> TransferError:
        stop.set(error_for_signal(15))
        return TransferError("storage busy", Direction.STAGE_IN)

    tool = FakeTool("cp", fail)
    (tmp_path / "work").mkdir()
    stage = StageIn(registry_of(tool), ["cp"], tmp_path / "work", replicas=replicas, attempts=3)
    (result,) = stage.run(job, stop)
    assert len(tool.requests) == 1 and result.error is not None and "stopping" in result.error.message


def test_stage_out_starts_no_new_transfer_once_stopping(tmp_path: Path) -> None:
    """After the stop, the remaining outputs are not sent: they fail with STAGEOUTFAILED (1137)."""
    work = tmp_path / "work"
    work.mkdir()
    outs = []
    for i in range(3):
        (work / f"out{i}.dat").write_bytes(b"x" * (i + 1))
        outs.append(FileSpec(lfn=f"out{i}.dat", kind=FileKind.OUTPUT, scope="s", ddmendpoint="SE"))
    stop = Stop()
    tool = FakeTool("cp", _stopping(stop))
    stage = StageOut(registry_of(tool), ["cp"], work, storages={"SE": (StorageProtocol("file://", str(tmp_path)),)},
                     parallel=1)
    results = stage.run(Job(panda_id=6, outputs=tuple(outs)), stop=stop)
    assert [r.ok for r in results] == [True, False, False] and len(tool.requests) == 1
    assert all(r.error is not None and r.error.code == ErrorCode.STAGEOUTFAILED for r in results[1:])


def test_timeout_cap_bounds_each_copy(tmp_path: Path) -> None:
    """``timeout_cap`` lowers the per-copy timeout (400 s at least, by size) to the cap; without it the size
    decides."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "big.dat").write_bytes(b"x" * 1000)
    spec = FileSpec(lfn="big.dat", kind=FileKind.OUTPUT, scope="s", ddmendpoint="SE")

    def refuse(request: TransferRequest, workdir: Path) -> TransferError:
        return TransferError("no", Direction.STAGE_OUT)

    storages = {"SE": (StorageProtocol("file://", str(tmp_path)),)}
    capped, free = FakeTool("cp", refuse), FakeTool("cp", refuse)
    job = Job(panda_id=7, outputs=(spec,))
    StageOut(registry_of(capped), ["cp"], work, storages=storages, attempts=1, timeout_cap=60.0).run(job)
    StageOut(registry_of(free), ["cp"], work, storages=storages, attempts=1).run(job)
    assert capped.requests[0].timeout == 60.0 and free.requests[0].timeout >= 400
