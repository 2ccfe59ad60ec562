"""Stage-in, stage-out and the log for the grid pilot: :mod:`pilotlib.transfer` behind the pipeline's interfaces.

Without a replica catalogue or storage descriptions, the pilot reads inputs from one place (``--input-dir``: a
directory or a ``root://`` URL, each file at ``<input>/<lfn>``) and writes outputs and the log under one place
(``--output-dir``) in the deterministic layout ``<scope as path>/<md5[0:2]>/<md5[2:4]>/<lfn>``, whatever the
job's ``ddmEndPointOut`` says.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pilotlib.job import FileSpec, Job
from pilotlib.transfer.base import TransferResult
from pilotlib.transfer.logtar import stage_out_log
from pilotlib.transfer.paths import StorageProtocol
from pilotlib.transfer.registry import CopytoolRegistry
from pilotlib.transfer.replicas import Replica
from pilotlib.transfer.stagein import StageIn
from pilotlib.transfer.stageout import StageOut

__all__ = ["LOCAL_STORAGE", "PlaceReplicas", "TransferStages", "as_url"]

LOCAL_STORAGE = "LOCAL"
PILOT_LOG_IN_TARBALL = "pilotlog.txt"


def as_url(place: str) -> str:
    """A directory path as a ``file://`` URL; URLs are kept."""
    return place if "://" in place else "file://" + str(Path(place).absolute())


class PlaceReplicas:
    """Every input has one replica: ``<base>/<lfn>`` (a :class:`~pilotlib.transfer.replicas.ReplicaSource`)."""

    def __init__(self, base: str) -> None:
        self._base = as_url(base).rstrip("/")

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """One replica per file, on the job's input storage (or ``LOCAL``)."""
        sep = "//" if self._base.startswith("root://") and self._base.count("/") == 2 else "/"
        return {f.did: (Replica(f.ddmendpoint or LOCAL_STORAGE, f"{self._base}{sep}{f.lfn}"),) for f in files}


class TransferStages:
    """Stage-in, stage-out and log stage-out of one pilot (the pipeline's ``StageIn``/``StageOut``/``LogStageOut``)."""

    def __init__(
        self,
        registry: CopytoolRegistry,
        tools_in: Sequence[str],
        tools_out: Sequence[str],
        input_url: str,
        output_url: str,
        *,
        job_log_of: Callable[[int], Path] | None = None,
    ) -> None:
        self._job_log_of = job_log_of
        self._registry = registry
        self._tools_in = tuple(tools_in)
        self._tools_out = tuple(tools_out)
        self._replicas = PlaceReplicas(input_url) if input_url else None
        endpoint, _, path = as_url(output_url).partition("://")
        host, _, rest = path.partition("/")
        self._protocol = StorageProtocol(f"{endpoint}://{host}", "/" + rest)

    def stage_in(self, job: Job, workdir: Path) -> Sequence[TransferResult]:
        """Copy the inputs into ``workdir``, checksums verified."""
        local = {f.ddmendpoint or LOCAL_STORAGE for f in job.inputs}
        stage = StageIn(self._registry, self._tools_in, workdir, replicas=self._replicas, local_storages=local)
        return stage.run(job)

    def _stage_out(self, job: Job, workdir: Path) -> StageOut:
        names = {f.ddmendpoint or LOCAL_STORAGE for f in job.outputs + ((job.log,) if job.log else ())}
        storages = {name: (self._protocol,) for name in names | {LOCAL_STORAGE}}
        return StageOut(self._registry, self._tools_out, workdir, storages=storages, default_storage=LOCAL_STORAGE)

    def stage_out(self, job: Job, workdir: Path) -> Sequence[TransferResult]:
        """Send the outputs (not the log) to the output place."""
        return self._stage_out(job, workdir).run(job)

    def stage_out_log(self, job: Job, workdir: Path) -> TransferResult:
        """Pack the work directory (without inputs, with the job's own pilot log) as the log tarball and send it.

        The job's pilot log lives beside the work directory while the job runs (a log written inside it would keep
        the looping-job check from ever firing) and is copied in just before the tarball is made.
        """
        if self._job_log_of is not None:
            job_log = self._job_log_of(job.panda_id)
            with contextlib.suppress(OSError):  # no log yet, or no work directory: the tarball is made regardless
                shutil.copyfile(job_log, workdir / PILOT_LOG_IN_TARBALL)
        return stage_out_log(self._stage_out(job, workdir), job)
