"""The log tarball: the work directory without its inputs, made under a timeout, staged out for failed jobs too."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from _fakes import FakeTool, registry_of

from pilotlib.errors import ErrorCode
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.transfer.logtar import LogCreationTimeoutError, LogTarballError, create_log_tarball, stage_out_log
from pilotlib.transfer.paths import StorageProtocol, deterministic_path
from pilotlib.transfer.stageout import StageOut

LOG = FileSpec(lfn="log.123.job.log.tgz", kind=FileKind.LOG, scope="mc23", ddmendpoint="SITE_DATADISK")
INPUT = FileSpec(lfn="EVNT.pool.root", kind=FileKind.INPUT, scope="mc23")


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "PanDA_Pilot-123"
    (work / "sub").mkdir(parents=True)
    (work / "payload.stdout").write_text("athena says hi\n")
    (work / "sub" / "jobReport.json").write_text("{}")
    (work / "EVNT.pool.root").write_bytes(b"big input" * 1000)
    return work


def test_tarball_excludes_inputs(tmp_path: Path) -> None:
    """The tarball holds the work directory's files under a folder named after the log, but not the inputs."""
    work = _workdir(tmp_path)
    job = Job(panda_id=123, inputs=(INPUT,), log=LOG)
    tarball = create_log_tarball(work, job, timeout=120)
    assert tarball == work / LOG.lfn
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        assert "log.123.job.log/payload.stdout" in names
        assert "log.123.job.log/sub/jobReport.json" in names
        assert not any("EVNT.pool.root" in n for n in names)
        assert not any(LOG.lfn in n for n in names)
        member = tar.extractfile("log.123.job.log/payload.stdout")
        assert member is not None and member.read() == b"athena says hi\n"


def test_tarball_of_a_work_directory_holding_only_inputs(tmp_path: Path) -> None:
    """A job that failed before writing anything still gets a valid (empty) log tarball, not a tar error."""
    work = tmp_path / "PanDA_Pilot-124"
    work.mkdir()
    (work / INPUT.lfn).write_bytes(b"input")
    tarball = create_log_tarball(work, Job(panda_id=124, inputs=(INPUT,), log=LOG), timeout=120)
    with tarfile.open(tarball) as tar:
        assert tar.getnames() == []


def test_tarball_timeout(tmp_path: Path) -> None:
    """tar exceeding its timeout gives LOGCREATIONTIMEOUT (1376) and leaves no partial tarball."""
    work = _workdir(tmp_path)
    job = Job(panda_id=123, inputs=(INPUT,), log=LOG)
    try:
        create_log_tarball(work, job, timeout=0)
    except LogCreationTimeoutError as exc:
        assert exc.code is ErrorCode.LOGCREATIONTIMEOUT
    else:
        raise AssertionError("no timeout")
    assert not (work / LOG.lfn).exists()


def test_no_log_file(tmp_path: Path) -> None:
    """A job without a log file: LogTarballError with LOGFILECREATIONFAILURE (1320)."""
    try:
        create_log_tarball(_workdir(tmp_path), Job(panda_id=1), timeout=60)
    except LogTarballError as exc:
        assert exc.code is ErrorCode.LOGFILECREATIONFAILURE and type(exc) is LogTarballError
    else:
        raise AssertionError("no error")


@pytest.mark.reliability("faults", "storage", "job failed without outputs: log still stored")
def test_log_staged_out_for_failed_job(tmp_path: Path) -> None:
    """The log of a failed job (no outputs produced) is tarred and staged out to its deterministic path."""
    work = _workdir(tmp_path)
    job = Job(panda_id=123, inputs=(INPUT,), outputs=(FileSpec(lfn="never.root", kind=FileKind.OUTPUT),), log=LOG)
    storage = tmp_path / "se"
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], work,
                     storages={"SITE_DATADISK": (StorageProtocol("file://", str(storage)),)})
    result = stage_out_log(stage, job, timeout=120)
    assert result.ok and result.lfn == LOG.lfn
    staged = storage / deterministic_path("mc23", LOG.lfn)
    with tarfile.open(staged) as tar:
        assert "log.123.job.log/payload.stdout" in tar.getnames()


def test_missing_work_directory(tmp_path: Path) -> None:
    """A work directory that does not exist gives LogTarballError (1320), not a bare OSError; stage_out_log turns it
    into the log's failed result."""
    job = Job(panda_id=125, log=LOG)
    try:
        create_log_tarball(tmp_path / "gone", job, timeout=60)
    except LogTarballError as exc:
        assert exc.code is ErrorCode.LOGFILECREATIONFAILURE and "gone" in str(exc)
    else:
        raise AssertionError("no error")
    stage = StageOut(registry_of(FakeTool("cp")), ["cp"], tmp_path / "gone")
    result = stage_out_log(stage, job, timeout=60)
    assert result.lfn == LOG.lfn and result.error_code is ErrorCode.LOGFILECREATIONFAILURE
