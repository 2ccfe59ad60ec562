"""``lsm``: a site's own ``lsm-get``/``lsm-put`` commands.

The calling convention is PanDAWMS/pilot3 ``pilot/copytool/lsm.py``'s: ``lsm-get [options] SOURCE DESTINATION``
and ``lsm-put --size N --checksum adler32:VALUE --guid GUID [-t TOKEN] SOURCE DESTINATION``; a non-zero exit
status is a failure, classified from the command's output as pilot3 ``pilot/copytool/common.py``
(``resolve_common_transfer_errors``) does. After ``lsm-get`` the expected checksum is verified on the local file.
Each command runs with the request's timeout (its process group is killed then), ``parallel`` at once. A bearer token
in the URL (``?authz=``, ``?access_token=``, ``?bearer_token=``) is not put on the command line, which any user of
the node can read: the command gets the URL without it and the token in ``BEARER_TOKEN`` (WLCG bearer token
discovery); a URL with another secret (a password, a presigned signature) is not given to the command at all.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pilotlib.errors import Direction
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult
from pilotlib.transfer.checksum import calculate_checksum, verify_checksum
from pilotlib.transfer.copytools._common import (
    Endpoints,
    TimeoutHandlers,
    command_url,
    endpoints,
    failure,
    local_of,
    parallel_map,
    run_command,
    success,
)
from pilotlib.transfer.errors import (
    ChecksumMismatchError,
    FileExistsTransferError,
    MissingFileError,
    NoSpaceError,
    StorageUnavailableError,
    TransferError,
    TransferTimeoutError,
)

__all__ = ["LsmCopytool", "classify_command_output"]

log = logging.getLogger(__name__)


def classify_command_output(  # noqa: PLR0911  (a flat decision table)
    output: str, direction: Direction, what: str
) -> TransferError:
    """Translate a failed copy command's output into a transfer error (pilot3's common cases)."""
    text = f"{what}: {output.strip()[-400:]}"
    lowered = output.lower()
    if "checksum" in lowered and ("mismatch" in lowered or "does not match" in lowered):
        return ChecksumMismatchError(text, direction)
    if "timeout" in lowered or "timed out" in lowered:
        return TransferTimeoutError(text, direction)
    if "file exists" in lowered or "already exists" in lowered:
        return FileExistsTransferError(text, direction)
    if "no space left" in lowered:
        return NoSpaceError(text, direction)
    if "no such file" in lowered:
        return MissingFileError(text, direction)
    if "connection refused" in lowered or "network is unreachable" in lowered or "connection error" in lowered:
        return StorageUnavailableError(text, direction)
    return TransferError(text, direction)


class LsmCopytool:
    """Copy files with the site's ``lsm-get``/``lsm-put``.

    Args:
        get_command: the stage-in command (name on PATH or a path).
        put_command: the stage-out command.
        token: a space token given to ``lsm-put`` as ``-t`` (none by default).
        parallel: commands run at once.
        base_env: the commands' base environment, as the app read it (None: the process's; see
            :func:`~pilotlib.transfer.copytools._common.command_environment`).
    """

    name = "lsm"
    schemes: tuple[str, ...] = ("file", "root", "xroot", "http", "https", "dav", "davs", "srm", "gsiftp", "lsm")

    def __init__(
        self, get_command: str = "lsm-get", put_command: str = "lsm-put", token: str = "", parallel: int = 4,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_env = base_env
        self.get_command = get_command
        self.put_command = put_command
        self.token = token
        self.parallel = parallel

    def unusable_reason(self) -> str | None:
        """None when both commands are found on the base environment's ``PATH`` (the process's without one), else
        which is missing."""
        path = self.base_env.get("PATH", "") if self.base_env is not None else None  # where the commands run
        missing = [c for c in (self.get_command, self.put_command) if shutil.which(c, path=path) is None]
        return f"command not found: {', '.join(missing)}" if missing else None

    def transfer(
        self, requests: Sequence[TransferRequest], workdir: Path, stop: StopSignal | None = None
    ) -> list[TransferResult]:
        """Run one command per file, ``parallel`` at once; one result per request, in order. ``stop`` kills the
        commands under way (their process groups) and starts no other."""

        handlers = TimeoutHandlers("lsm", requests, workdir, stop)
        return parallel_map(lambda i: self._one(requests[i], workdir, stop), [r.timeout + 5.0 for r in requests],
                            self.parallel, handlers.timed_out, stop=stop, discard=handlers.discard)

    def _one(self, request: TransferRequest, workdir: Path, stop: StopSignal | None) -> TransferResult:
        started = time.monotonic()
        local = local_of(request, workdir)
        try:
            ends = endpoints(request, workdir)
            inbound = request.direction is Direction.STAGE_IN
            checksum = self._get(request, ends, stop) if inbound else self._put(request, ends, stop)
        except TransferError as exc:
            log.warning("transfer failed tool=lsm lfn=%s code=%d error=%s", request.lfn, exc.code, exc)
            return failure(request, self.name, exc, started, stop=stop, local=local)
        return success(request, self.name, ends, checksum, started)

    def _run(self, args: list[str], request: TransferRequest, env: Mapping[str, str], stop: StopSignal | None) -> None:
        done = run_command(args, request.timeout, request.direction, env=env, base_env=self.base_env,
                           what=request.lfn, stop=stop)
        if done.returncode != 0:
            output = "\n".join(x for x in (done.stdout, done.stderr) if x)
            raise classify_command_output(output or f"exit status {done.returncode}", request.direction,
                                          f"{args[0]} {request.lfn} failed")

    def _get(self, request: TransferRequest, ends: Endpoints, stop: StopSignal | None) -> tuple[str, str]:
        ends.local.parent.mkdir(parents=True, exist_ok=True)
        remote = command_url(ends.remote, request.direction)
        self._run([self.get_command, remote.url, str(ends.local)], request, remote.env, stop)
        if not ends.local.is_file():
            raise TransferError(f"{self.get_command} left no file at {ends.local}", request.direction)
        if request.checksum is not None:
            return verify_checksum(ends.local, request.checksum, request.direction)
        return ("adler32", calculate_checksum(ends.local, "adler32", request.direction))

    def _put(self, request: TransferRequest, ends: Endpoints, stop: StopSignal | None) -> tuple[str, str]:
        if not ends.local.is_file():
            raise MissingFileError(f"output {request.lfn} not found at {ends.local}", request.direction)
        if request.checksum is not None:
            checksum = verify_checksum(ends.local, request.checksum, request.direction)
        else:
            checksum = ("adler32", calculate_checksum(ends.local, "adler32", request.direction))
        args = [self.put_command, "--size", str(ends.local.stat().st_size),
                "--checksum", f"{checksum[0]}:{checksum[1]}"]
        if request.guid:
            args += ["--guid", request.guid]
        if self.token:
            args += ["-t", self.token]
        remote = command_url(ends.remote, request.direction)
        self._run([*args, str(ends.local), remote.url], request, remote.env, stop)
        return checksum
