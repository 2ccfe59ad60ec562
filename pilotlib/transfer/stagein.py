"""Stage-in: bring a job's input files into its work directory, or hand the payload their URLs (direct access).

The flow follows PanDAWMS/pilot3 ``pilot/api/data.py`` (``StageInClient``: list the replicas, sort them, check the
local space, transfer with the activity's copytools in order, verify the checksum) and ``pilot/control/data.py``
(``_stage_in``: the next copytool is tried when one fails). Every file's outcome is a
:class:`~pilotlib.transfer.base.TransferResult`; :meth:`StageIn.run` never raises for a file's failure.

- Space: the inputs' total size must fit in the work directory's free space (NOLOCALSPACE 1098).
- Replicas: from a :class:`~pilotlib.transfer.replicas.ReplicaSource`, disk only, the queue's storages (LAN) first.
  A copytool whose ``schemes`` include ``"rucio"`` gets the DID and the chosen RSE; the others get a replica URL of a
  scheme they serve.
- Direct access: when the job asks for it and the queue allows it for the replica's network (LAN/WAN), the result
  carries the replica URL, tool ``"direct"``, and nothing is copied.
- Checksums: the copy is verified against the job's adler32 (or md5) and deleted on a mismatch; every failure is
  retried (``attempts`` per copytool, the next replica each time), then the next copytool is tried.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib.errors import Direction, PilotError, TransferError
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
from pilotlib.transfer.checksum import calculate_checksum, verify_checksum
from pilotlib.transfer.errors import NoSpaceError
from pilotlib.transfer.registry import CopytoolRegistry
from pilotlib.transfer.replicas import DID_SCHEME, NoReplicasError, Replica, ReplicaSource, sort_replicas

__all__ = ["DirectAccess", "StageIn", "expected_checksum"]

_IN = Direction.STAGE_IN


@attrs.frozen
class DirectAccess:
    """Where the queue allows direct access (``direct_access_lan``/``direct_access_wan``) and through which schemes."""

    lan: bool = False
    wan: bool = False
    schemes: tuple[str, ...] = ("root", "davs", "https")

    def allows(self, replica: Replica, is_lan: bool) -> bool:
        """Whether the payload may open ``replica`` directly."""
        return (self.lan if is_lan else self.wan) and replica.scheme in self.schemes


def expected_checksum(spec: FileSpec) -> tuple[str, str] | None:
    """The job's checksum of a file as ``(type, value)``: adler32 preferred, else md5, else None."""
    if spec.adler32:
        return ("adler32", spec.adler32)
    if spec.md5:
        return ("md5", spec.md5)
    return None


def _failed(spec: FileSpec, error: PilotError, tool: str = "") -> TransferResult:
    return TransferResult(lfn=spec.lfn, direction=_IN, tool=tool, url=spec.did, local_path="", size=spec.filesize,
                          error=error, ddmendpoint=spec.ddmendpoint or "", guid=spec.guid or "")


class StageIn:
    """Stage in a job's inputs.

    Args:
        registry: the copytool registry.
        tools: copytool names for the read activity (``pr``), in priority order.
        workdir: the job's work directory.
        replicas: where replicas come from (None: only DID copytools can work, reading ``ddmEndPointIn``).
        local_storages: the queue's own storages for reading (LAN).
        direct_access: the queue's direct-access settings.
        parallel: files transferred at the same time.
        attempts: tries per copytool and file.
        tool_options: keyword options per copytool name.
        fallback: what runs a copytool that is not usable here (the queue's middleware container); None: such a
            copytool is skipped.
        free_space: bytes free under a directory (default: :func:`shutil.disk_usage`).
    """

    def __init__(
        self,
        registry: CopytoolRegistry,
        tools: Sequence[str],
        workdir: Path,
        *,
        replicas: ReplicaSource | None = None,
        local_storages: Collection[str] = (),
        direct_access: DirectAccess | None = None,
        parallel: int = 2,
        attempts: int = 2,
        tool_options: Mapping[str, Mapping[str, object]] | None = None,
        free_space: Callable[[Path], int] | None = None,
        fallback: CopytoolFallback | None = None,
    ) -> None:
        self.registry = registry
        self.tools = tuple(tools)
        self.workdir = Path(workdir)
        self.replicas = replicas
        self.local_storages = frozenset(local_storages)
        self.direct_access = direct_access or DirectAccess()
        self.parallel = max(1, parallel)
        self.attempts = max(1, attempts)
        self.tool_options = tool_options
        self.fallback = fallback
        self.free_space = free_space or (lambda path: shutil.disk_usage(path).free)

    def run(self, job: Job, stop: StopSignal | None = None) -> tuple[TransferResult, ...]:
        """Stage in ``job.inputs``; one result per input, in order.

        Once ``stop`` is set (the pilot is stopping: a signal, the server's kill) no new transfer (or retry) starts,
        and the files not started fail with STAGEINFAILED; the copies under way are cancelled by their copytool
        within seconds, fail with the stop's reason and leave no partial file.
        """
        files = job.inputs
        if not files:
            return ()
        try:
            self._check_space(files)
            found = self._list(files)
        except TransferError as exc:
            return tuple(_failed(f, exc) for f in files)
        chain = ToolChain(self.registry, self.tools, _IN, self.tool_options, self.fallback)
        direct = job.direct_access_requested
        return tuple(run_parallel(lambda f: self._one(chain, f, found.get(f.did), direct, stop), files,
                                  self.parallel))

    def _check_space(self, files: Sequence[FileSpec]) -> None:
        need = sum(f.filesize or 0 for f in files)
        free = self.free_space(self.workdir)
        if need > free:
            raise NoSpaceError(f"inputs need {need} B, only {free} B free in {self.workdir} ({len(files)} files)", _IN)

    def _list(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        return {} if self.replicas is None else self.replicas.list_replicas(files)

    def _one(  # noqa: PLR0911  (a flat sequence of outcomes)
        self, chain: ToolChain, spec: FileSpec, replicas: tuple[Replica, ...] | None, direct: bool,
        stop: StopSignal | None,
    ) -> TransferResult:
        try:
            target = local_path(self.workdir, spec.lfn, _IN)
        except TransferError as exc:
            return _failed(spec, exc)
        ordered = sort_replicas(replicas or (), self.local_storages)
        if self.replicas is not None and not ordered:
            return _failed(spec, NoReplicasError(f"no disk replica of {spec.did}", _IN))
        if direct:
            for replica in ordered:
                if self.direct_access.allows(replica, replica.ddmendpoint in self.local_storages):
                    return self._direct(spec, replica)
        if not chain.tools:
            return _failed(spec, chain.error())
        last = _failed(spec, NoReplicasError(f"no replica of {spec.did} readable by {', '.join(self.tools)}", _IN))
        for tool in chain.tools:
            for source, rse in self._rotation(tool, spec, ordered):
                if is_stopping(stop):
                    return _failed(spec, stopped_error(spec.lfn, _IN), tool.name)
                result = self._attempt(tool, spec, source, rse, target, stop=stop)
                if result.ok:
                    return result
                last = result
        return last

    def _rotation(self, tool: Copytool, spec: FileSpec, ordered: tuple[Replica, ...]) -> list[tuple[str, str]]:
        """``attempts`` sources for ``tool``, cycling through the ordered replicas."""
        sources = self._sources(tool, spec, ordered)
        return [sources[i % len(sources)] for i in range(self.attempts)] if sources else []

    def _sources(self, tool: Copytool, spec: FileSpec, ordered: tuple[Replica, ...]) -> list[tuple[str, str]]:
        if DID_SCHEME in tool.schemes:
            if self.replicas is None:
                return [(spec.did, spec.ddmendpoint or "")]
            return [(spec.did, r.ddmendpoint) for r in ordered]
        return [(r.url, r.ddmendpoint) for r in ordered if r.scheme in tool.schemes]

    def _attempt(
        self, tool: Copytool, spec: FileSpec, source: str, rse: str, target: Path, *, stop: StopSignal | None
    ) -> TransferResult:
        expected = expected_checksum(spec)
        request = TransferRequest(lfn=spec.lfn, direction=_IN, source=source, destination=spec.lfn,
                                  scope=spec.scope or "", filesize=spec.filesize, checksum=expected,
                                  ddmendpoint=rse, guid=spec.guid or "", timeout=transfer_timeout(spec.filesize))
        log_start(_IN, spec.lfn, tool.name, spec.filesize, source)
        (result,) = tool.transfer([request], self.workdir, stop)
        if result.ok:
            result = _verified(result, target, expected)
        log_done(result)
        return result

    def _direct(self, spec: FileSpec, replica: Replica) -> TransferResult:
        result = TransferResult(lfn=spec.lfn, direction=_IN, tool="direct", url=replica.url, local_path="",
                                size=spec.filesize, checksum=expected_checksum(spec),
                                ddmendpoint=replica.ddmendpoint, guid=spec.guid or "")
        log_done(result)
        return result


def _verified(result: TransferResult, target: Path, expected: tuple[str, str] | None) -> TransferResult:
    """The result with the local copy's checksum and size; a mismatch deletes the copy and becomes the error."""
    try:
        checksum = verify_checksum(target, expected, _IN) if expected else ("adler32", calculate_checksum(target))
    except TransferError as exc:
        target.unlink(missing_ok=True)
        return attrs.evolve(result, error=exc)
    return attrs.evolve(result, checksum=checksum, size=target.stat().st_size, local_path=str(target))
