"""Stage-out: copy a job's outputs (and its log tarball) to their storage and register them.

The flow follows PanDAWMS/pilot3 ``pilot/api/data.py`` (``StageOutClient``: compute the checksum before the
transfer, the destination URL on a deterministic storage from the scope and LFN, ``prepare_destinations``' alternative
storage) and ``pilot/control/data.py`` (``_do_stageout``: the next copytool is tried on failure, alternative stage-out
when allowed). Alternative stage-out is allowed by the queue (``allow_altstageout``: True/False wins) or else by the
job (``altStageOut`` ``on``/``force``), as in ``pilot/info/jobdata.py`` (``allow_altstageout``).

A copytool whose ``schemes`` include ``"rucio"`` gets ``scope:lfn`` and the RSE and registers the file itself; the
others get the deterministic URL through a protocol of the storage whose scheme they serve. Outputs without a GUID
get a new one, reported in the result.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from pilotlib.errors import Direction, ErrorCode, PilotError, TransferError
from pilotlib.job import FileSpec, Job
from pilotlib.stop import StopSignal
from pilotlib.transfer._staging import ToolChain, is_stopping, log_done, log_start, run_parallel, stopped_error
from pilotlib.transfer.base import (
    Copytool,
    CopytoolFallback,
    TransferRequest,
    TransferResult,
    local_path,
    transfer_timeout,
)
from pilotlib.transfer.checksum import calculate_checksum, normalize_checksum_value
from pilotlib.transfer.errors import ChecksumMismatchError, MissingFileError
from pilotlib.transfer.paths import StorageProtocol
from pilotlib.transfer.registry import CopytoolRegistry
from pilotlib.transfer.replicas import DID_SCHEME

__all__ = ["NoStorageError", "StageOut"]

log = logging.getLogger(__name__)

_OUT = Direction.STAGE_OUT


class NoStorageError(TransferError):
    """No storage (DDM endpoint) to write an output to (NOSTORAGE 1133)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (ErrorCode.NOSTORAGE, ErrorCode.NOSTORAGE)


@attrs.frozen
class _Local:
    path: Path
    size: int
    checksum: tuple[str, str]
    guid: str


def _failed(spec: FileSpec, error: PilotError, tool: str = "") -> TransferResult:
    return TransferResult(lfn=spec.lfn, direction=_OUT, tool=tool, url="", local_path=spec.lfn, error=error,
                          ddmendpoint=spec.ddmendpoint or "", guid=spec.guid or "")


class StageOut:
    """Stage out a job's outputs or its log.

    Args:
        registry: the copytool registry.
        tools: copytool names for the write activity (``pw``, or ``pl`` for the log), in priority order.
        workdir: the job's work directory (the outputs lie in it under their LFN).
        storages: protocols per storage name, used by URL copytools (``{"CERN_SCRATCHDISK": (StorageProtocol,)}``).
        default_storage: the storage for files whose ``ddmEndPointOut`` is empty.
        alt_storage: the alternative storage, tried after the first one failed (when allowed).
        allow_alt: the queue's ``allow_altstageout`` (None: the job decides).
        parallel: files transferred at the same time.
        attempts: tries per copytool, file and storage.
        tool_options: keyword options per copytool name.
        fallback: what runs a copytool that is not usable here (the queue's middleware container); None: such a
            copytool is skipped.
        checksum_type: ``adler32`` (default) or ``md5``.
        timeout_cap: at most this many seconds per copy (None: by size only); e.g. the log after a signal, which
            must be out within the pilot's two-minute shutdown.
    """

    def __init__(
        self,
        registry: CopytoolRegistry,
        tools: Sequence[str],
        workdir: Path,
        *,
        storages: Mapping[str, Sequence[StorageProtocol]] | None = None,
        default_storage: str = "",
        alt_storage: str = "",
        allow_alt: bool | None = None,
        parallel: int = 2,
        attempts: int = 2,
        tool_options: Mapping[str, Mapping[str, object]] | None = None,
        checksum_type: str = "adler32",
        timeout_cap: float | None = None,
        fallback: CopytoolFallback | None = None,
    ) -> None:
        self.registry = registry
        self.tools = tuple(tools)
        self.workdir = Path(workdir)
        self.storages = {name: tuple(protocols) for name, protocols in (storages or {}).items()}
        self.default_storage = default_storage
        self.alt_storage = alt_storage
        self.allow_alt = allow_alt
        self.parallel = max(1, parallel)
        self.attempts = max(1, attempts)
        self.tool_options = tool_options
        self.fallback = fallback
        self.checksum_type = checksum_type
        self.timeout_cap = timeout_cap

    def run(self, job: Job, files: Sequence[FileSpec] | None = None,
            stop: StopSignal | None = None) -> tuple[TransferResult, ...]:
        """Stage out ``files`` (default: ``job.outputs``); one result per file, in order.

        Once ``stop`` is set no new transfer (or retry) starts and the files not started fail with STAGEOUTFAILED;
        the copies under way are cancelled by their copytool within seconds and fail with the stop's reason.

        By default, an output the job lists in ``allowNoOutput`` and the payload did not produce is left out (no
        result), as pilot3 does (``pilot/user/atlas/common.py``); any other missing output fails with
        MISSINGOUTPUTFILE.
        """
        todo = tuple(job.outputs if files is None else files)
        if files is None and job.allow_no_output:
            todo = tuple(spec for spec in todo if not self._allowed_missing(job, spec))
        if not todo:
            return ()
        chain = ToolChain(self.registry, self.tools, _OUT, self.tool_options, self.fallback)
        destinations = self._destinations(job)
        return tuple(run_parallel(lambda f: self._one(chain, f, destinations, stop), todo, self.parallel))

    def _allowed_missing(self, job: Job, spec: FileSpec) -> bool:
        if spec.lfn not in job.allow_no_output or (self.workdir / spec.lfn).exists():
            return False
        log.info("output not produced and allowed (allowNoOutput) lfn=%s", spec.lfn)
        return True

    def _destinations(self, job: Job) -> tuple[str, ...]:
        allowed = self.allow_alt if self.allow_alt is not None else job.alt_stage_out in ("on", "force")
        return (self.alt_storage,) if allowed and self.alt_storage else ()

    def _one(
        self, chain: ToolChain, spec: FileSpec, alternatives: tuple[str, ...], stop: StopSignal | None
    ) -> TransferResult:
        try:
            local = self._prepare(spec)
        except TransferError as exc:
            return _failed(spec, exc)
        first = spec.ddmendpoint or self.default_storage
        if not first:
            return _failed(spec, NoStorageError(f"no storage for output {spec.lfn}", _OUT))
        if not chain.tools:
            return _failed(spec, chain.error())
        last = _failed(spec, NoStorageError(f"no protocol of {first} for {', '.join(self.tools)}", _OUT))
        for rse in dict.fromkeys((first, *alternatives)):
            for tool in chain.tools:
                for destination in self._targets(tool, spec, rse)[:1] * self.attempts:
                    if is_stopping(stop):
                        return _failed(spec, stopped_error(spec.lfn, _OUT), tool.name)
                    result = self._attempt(tool, spec, local, destination, rse, stop=stop)
                    if result.ok:
                        return result
                    last = result
        return last

    def _prepare(self, spec: FileSpec) -> _Local:
        path = local_path(self.workdir, spec.lfn, _OUT)
        if not path.is_file():
            raise MissingFileError(f"output file {spec.lfn} not found in {self.workdir}", _OUT)
        if not spec.scope:
            raise NoStorageError(f"output file {spec.lfn} has no scope", _OUT)
        checksum = (self.checksum_type, calculate_checksum(path, self.checksum_type, _OUT))
        return _Local(path, path.stat().st_size, checksum, spec.guid or str(uuid.uuid4()))

    def _targets(self, tool: Copytool, spec: FileSpec, rse: str) -> list[str]:
        if DID_SCHEME in tool.schemes:
            return [spec.did]
        protocols = self.storages.get(rse, ())
        return [p.url_for(spec.scope or "", spec.lfn) for p in protocols if p.scheme in tool.schemes]

    def _timeout(self, size: int) -> float:
        timeout = transfer_timeout(size)
        return timeout if self.timeout_cap is None else min(timeout, self.timeout_cap)

    def _attempt(
        self, tool: Copytool, spec: FileSpec, local: _Local, destination: str, rse: str, *, stop: StopSignal | None
    ) -> TransferResult:
        request = TransferRequest(lfn=spec.lfn, direction=_OUT, source=spec.lfn, destination=destination,
                                  scope=spec.scope or "", filesize=local.size, checksum=local.checksum,
                                  ddmendpoint=rse, guid=local.guid, timeout=self._timeout(local.size))
        log_start(_OUT, spec.lfn, tool.name, local.size, destination)
        (result,) = tool.transfer([request], self.workdir, stop)
        if result.ok:
            result = _checked(result, local, rse)
        log_done(result)
        return result


def _checked(result: TransferResult, local: _Local, rse: str) -> TransferResult:
    """The result with the local size and checksum; a different remote checksum becomes the error."""
    kind, want = local.checksum
    if result.checksum and result.checksum[0] == kind:
        got = normalize_checksum_value(kind, result.checksum[1])
        if got != want:
            error = ChecksumMismatchError(f"{kind} mismatch for {result.lfn} on {rse}: local {want}, remote {got}",
                                          _OUT, checksum_type=kind, expected=want, actual=got)
            return attrs.evolve(result, error=error)
    return attrs.evolve(result, size=local.size, checksum=local.checksum, guid=local.guid, ddmendpoint=rse,
                        local_path=str(local.path))
