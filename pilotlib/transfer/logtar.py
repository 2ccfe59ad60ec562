"""The log tarball: the job's work directory, without its inputs, as ``<logFile>`` (tgz), staged out last.

As PanDAWMS/pilot3 ``pilot/control/data.py`` (``create_log``, ``_stage_out_new``) does: the inputs are left out,
the tarball is made with ``tar`` under a timeout, and the log is staged out for failed jobs too. The files are
stored under a top folder named after the log file (without ``.tgz``/``.tar.gz``). The ``tar`` command gets an
argument list of the top-level entries (no shell, no wildcards) and runs with a timeout (R11).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from pilotlib.errors import Direction, ErrorCode, PilotError
from pilotlib.job import Job
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferResult
from pilotlib.transfer.copytools._common import run_command
from pilotlib.transfer.errors import TransferError, TransferTimeoutError
from pilotlib.transfer.stageout import StageOut

__all__ = ["LogCreationTimeoutError", "LogTarballError", "create_log_tarball", "stage_out_log"]

log = logging.getLogger(__name__)


class LogTarballError(PilotError):
    """The log tarball could not be made (LOGFILECREATIONFAILURE 1320)."""

    code = ErrorCode.LOGFILECREATIONFAILURE


class LogCreationTimeoutError(LogTarballError):
    """Making the log tarball took longer than its timeout (LOGCREATIONTIMEOUT 1376)."""

    code = ErrorCode.LOGCREATIONTIMEOUT


#: tar (and the gzip it starts) gets nothing of the pilot's environment: it holds the pilot's credentials
#: (``PANDA_AUTH_TOKEN``, ``BEARER_TOKEN``), which ``/proc/<pid>/environ`` of a process it starts would show.
_TAR_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}


def _base_name(lfn: str) -> str:
    for suffix in (".tgz", ".tar.gz"):
        if lfn.endswith(suffix):
            return lfn[: -len(suffix)]
    return lfn


def create_log_tarball(workdir: Path, job: Job, exclude: Collection[str] = (), timeout: float = 600.0,
                       stop: StopSignal | None = None) -> Path:
    """Pack the work directory into ``workdir/<job.log.lfn>``.

    Args:
        workdir: the job's work directory.
        job: the job (its ``log`` names the tarball; its inputs are always left out).
        exclude: more top-level names to leave out.
        timeout: seconds ``tar`` may take.
        stop: ends ``tar`` at once when set (LOGCREATIONTIMEOUT: the log's time is over).

    Returns:
        The tarball's path.

    Raises:
        LogTarballError: no log file in the job, or ``tar`` failed (LOGFILECREATIONFAILURE 1320).
        LogCreationTimeoutError: ``tar`` took too long (LOGCREATIONTIMEOUT 1376).
    """
    if job.log is None:
        raise LogTarballError(f"job {job.panda_id} has no log file")
    workdir = Path(workdir)
    tarball = workdir / job.log.lfn
    skip = {f.lfn for f in job.inputs} | set(exclude) | {tarball.name}
    try:
        entries = sorted(p.name for p in workdir.iterdir() if p.name not in skip)
    except OSError as exc:
        raise LogTarballError(f"cannot list the work directory {workdir}: {exc.strerror or exc}") from exc
    base = _base_name(job.log.lfn)
    command = ["tar", "-czf", str(tarball), "-C", str(workdir),
               "--transform", f"s,^,{base}/,", "--no-wildcards"]
    # an empty work directory (a job that failed before anything was written) still gives a valid, empty tarball
    command += ["--", *entries] if entries else ["--files-from", "/dev/null"]
    log.info("log tarball start lfn=%s entries=%d excluded=%d", tarball.name, len(entries), len(skip) - 1)
    try:
        done = run_command(command, timeout, Direction.STAGE_OUT, what=str(workdir), stop=stop, base_env=_TAR_ENV)
    except TransferTimeoutError as exc:
        tarball.unlink(missing_ok=True)
        raise LogCreationTimeoutError(f"tar of {workdir} exceeded {timeout:.0f} s") from exc
    except TransferError as exc:
        raise LogTarballError(f"cannot run tar: {exc}") from exc
    if stop is not None and stop.is_set():
        tarball.unlink(missing_ok=True)
        raise LogCreationTimeoutError(f"tar of {workdir} ended: the log's time once stopping is over")
    if done.returncode not in (0, 1):  # 1: a file changed while being read; the tarball is still complete
        tarball.unlink(missing_ok=True)
        detail = done.stderr.strip()[-300:]
        raise LogTarballError(f"tar of {workdir} failed rc={done.returncode}: {detail}")
    log.info("log tarball done lfn=%s size=%d", tarball.name, tarball.stat().st_size)
    return tarball


def stage_out_log(
    stage_out: StageOut, job: Job, exclude: Collection[str] = (), timeout: float = 600.0,
    stop: StopSignal | None = None,
) -> TransferResult:
    """Make the log tarball and stage it out; a tarball failure becomes the result's error.

    Call it last, whatever the job's outcome (failed jobs too). ``stop`` ends the tarball and cancels the copy (give
    it a stop set some time after the pilot's, :meth:`pilotlib.stop.Stop.later`, so that the log still goes out).

    Raises:
        LogTarballError: the job has no log file (nothing to report as a file outcome).
    """
    if job.log is None:
        raise LogTarballError(f"job {job.panda_id} has no log file")
    try:
        create_log_tarball(stage_out.workdir, job, exclude, timeout, stop)
    except LogTarballError as exc:
        log.error("log tarball failed lfn=%s code=%d error=%s", job.log.lfn, int(exc.code), exc)
        return TransferResult(lfn=job.log.lfn, direction=Direction.STAGE_OUT, tool="", url="",
                              local_path=job.log.lfn, error=exc, ddmendpoint=job.log.ddmendpoint or "")
    (result,) = stage_out.run(job, (job.log,), stop)
    return result

