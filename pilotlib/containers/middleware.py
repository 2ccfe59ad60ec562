"""The middleware container: a copytool not usable on the node runs inside the queue's middleware image.

As pilot3 (``pilot/user/atlas/container.py`` ``get_middleware_type``, ``pilot/control/data.py``): the queue's
``container_type`` names the middleware's place (``"container:middleware"``; here also a runtime,
``"bubblewrap:middleware"``); ``container`` means the payload's runtime (the queue's ``<runtime>:pilot``, else the
pilot's), ``workernode`` (or nothing) means none. The image is the pilot's
(:attr:`~pilotlib.containers.ContainerDefaults.middleware_image`, pilot3's ``middleware_container``).

:class:`ContainerCopytool` stands for the unusable copytool: it writes the request file in the work directory,
runs ``python -m pilotlib.transfer.incontainer`` in the image through a
:class:`~pilotlib.containers.ContainerRuntime` (the work directory bound at its own path, the proxy and the token
file bound read-only and named in the environment), bounded by the copies' timeouts and ended at once by the stop,
and reads back the results as if it had run the copy itself. The image must have a Python with pilotlib (and the
copytool's library or command); :class:`MiddlewareLauncher` says which Python and what else to bind.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib.containers.base import Bind, ContainerRuntime, ContainerSpec, credential_binds
from pilotlib.containers.choice import PAYLOAD_KEYS, ContainerChoice, ContainerDefaults, _frozen
from pilotlib.containers.registry import RuntimeRegistry
from pilotlib.errors import Direction, PilotError
from pilotlib.info import QueueDescription
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import Copytool, CopytoolFallback, TransferRequest, TransferResult
from pilotlib.transfer.copytools._common import (
    command_url,
    discard_partial,
    failure,
    local_of,
    run_command,
)
from pilotlib.transfer.errors import TransferError
from pilotlib.transfer.incontainer import ContainerBatch, read_results, request_text

__all__ = ["MIDDLEWARE_KEY", "PASSED_VARIABLES", "ContainerCopytool", "MiddlewareLauncher", "choose_middleware"]

log = logging.getLogger(__name__)

#: The ``container_type`` key of the middleware's place.
MIDDLEWARE_KEY = "middleware"
#: ``container_type`` values that mean the middleware is on the node (pilot3's default ``workernode``; ``bash``:
#: pilot3's script without a container).
_ON_NODE = ("", "workernode", "bash")
#: The variables of the pilot's environment the container gets: where the secrets are (never their contents, but
#: ``BEARER_TOKEN``, which is a variable already) and the client settings of the grid tools.
PASSED_VARIABLES = ("X509_USER_PROXY", "X509_CERT_DIR", "X509_VOMS_DIR", "BEARER_TOKEN_FILE", "BEARER_TOKEN",
                    "XrdSecGSISRVNAMES", "RUCIO_ACCOUNT", "RUCIO_HOME")


def choose_middleware(queue: QueueDescription | None, defaults: ContainerDefaults) -> ContainerChoice | None:
    """The middleware container of a job on ``queue``: the runtime its ``container_type`` names for the middleware
    (``container``: the payload's) and the pilot's middleware image; None when the queue names none or the pilot
    has no image."""
    types = queue.container_type if queue is not None else {}
    runtime = types.get(MIDDLEWARE_KEY, "")
    if runtime in _ON_NODE or not defaults.middleware_image:
        return None
    if runtime == "container":
        runtime = next((types[key] for key in PAYLOAD_KEYS if types.get(key)), "") or defaults.runtime
        if not runtime:
            log.warning("middleware container asked for but no runtime named (container_type %s)", dict(types))
            return None
    return ContainerChoice(runtime, defaults.middleware_image, queue.container_options if queue else "")


@attrs.frozen
class MiddlewareLauncher:
    """How the pilot runs transfers in a middleware image (the pilot's, same for every job).

    Attributes:
        runtimes: the container runtimes.
        python: the Python inside the image that has pilotlib.
        binds: further binds (e.g. a pilotlib and Python of the host for an image without them).
        env: variables set inside (e.g. ``PYTHONPATH``).
        path: ``PATH`` inside.
        startup: seconds the container is given, on top of the copies' timeouts, to start and end.
    """

    runtimes: RuntimeRegistry = attrs.field(factory=RuntimeRegistry, eq=False)
    python: str = "python3"
    binds: tuple[Bind, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    path: str = "/usr/local/bin:/usr/bin:/bin"
    startup: float = 120.0

    def fallback(self, choice: ContainerChoice | None,
                 base_env: Mapping[str, str] | None) -> CopytoolFallback | None:
        """The stagers' fallback for a job whose middleware container is ``choice`` (None: none, so no fallback);
        ``base_env`` is the pilot's environment (where the proxy and the token are)."""
        if choice is None:
            return None

        def instead(tool: Copytool, options: Mapping[str, object]) -> Copytool:
            return ContainerCopytool(tool, options, choice, self, base_env or {})

        return instead


class ContainerCopytool:
    """``tool`` (not usable here) run inside the middleware container: same name and schemes, same results.

    Args:
        tool: the copytool not usable on the node.
        options: its options (given to it inside; JSON only).
        choice: the middleware container (runtime and image).
        launcher: the pilot's way to run the image.
        base_env: the pilot's environment (only :data:`PASSED_VARIABLES` reach the container).
    """

    def __init__(self, tool: Copytool, options: Mapping[str, object], choice: ContainerChoice,
                 launcher: MiddlewareLauncher, base_env: Mapping[str, str]) -> None:
        self.name = tool.name
        self.schemes = tool.schemes
        self.options = dict(options)
        self.choice = choice
        self.launcher = launcher
        self.base_env = dict(base_env)
        self._runtime: ContainerRuntime | None = None

    def unusable_reason(self) -> str | None:
        """Why the container cannot run here (its runtime missing or not answering), or None."""
        try:
            runtime = self.launcher.runtimes.get(self.choice.runtime)
            runtime.check()
        except PilotError as exc:
            return f"{self.choice.runtime}: {exc}"
        self._runtime = runtime
        return None

    def transfer(self, requests: Sequence[TransferRequest], workdir: Path,
                 stop: StopSignal | None = None) -> list[TransferResult]:
        """Run the copies in the container; one result per request, in order. ``stop`` ends the container at once
        (the copies fail with its reason, no partial file is left)."""
        started = time.monotonic()
        if not requests:
            return []
        if self._runtime is None and (reason := self.unusable_reason()) is not None:
            return self._failed(requests, workdir, TransferError(reason, requests[0].direction), started)
        assert self._runtime is not None
        workdir = Path(workdir).absolute()  # bound at its own path: the request's paths hold inside
        files = _Files(workdir)
        try:
            return self._run(self._runtime, requests, workdir, files, started=started, stop=stop)
        except PilotError as exc:  # a timeout, a secret refused, the runtime's (an image not found: 1360)
            return self._failed(requests, workdir, exc, started, stop)
        except OSError as exc:  # the request file cannot be written
            error = TransferError(f"middleware request not written in {workdir}: {exc}", requests[0].direction)
            return self._failed(requests, workdir, error, started, stop)
        finally:
            files.remove()

    def _run(self, runtime: ContainerRuntime, requests: Sequence[TransferRequest], workdir: Path, files: _Files, *,
             started: float, stop: StopSignal | None) -> list[TransferResult]:
        direction = requests[0].direction
        bare, token = _without_tokens(requests)
        files.request.write_text(request_text(ContainerBatch(self.name, workdir, bare, self.options)),
                                 encoding="utf-8")
        argv, env = runtime.wrap((self.launcher.python, "-m", "pilotlib.transfer.incontainer", str(files.request),
                                  str(files.results)), self._environment(workdir, token), self._spec(workdir))
        program = argv[0]  # the runtime found it on the pilot's PATH
        timeout = sum(r.timeout for r in requests) + self.launcher.startup
        log.info("middleware container start tool=%s runtime=%s image=%s files=%d", self.name, runtime.name,
                 self.choice.image, len(requests))
        done = run_command((program, *argv[1:]), timeout, direction, base_env=env, what=f"{self.name} transfers",
                           stop=stop)
        if stop is not None and stop.is_set():
            return self._failed(requests, workdir, TransferError("stopped", direction), started, stop)
        try:
            results = read_results(files.results, bare)
        except (OSError, ValueError) as exc:
            tail = done.stderr.strip()[-600:]
            error = runtime.failure(done.returncode, tail) or TransferError(
                f"the middleware container ({runtime.name} {self.choice.image}) gave no results "
                f"(exit {done.returncode}: {exc}): {tail}", direction)
            return self._failed(requests, workdir, error, started)
        for line in done.stderr.splitlines()[-20:]:
            log.debug("middleware container said: %s", line)
        return [attrs.evolve(result, url=request.source if request.direction is Direction.STAGE_IN
                             else request.destination) for result, request in zip(results, requests, strict=True)]

    def _environment(self, workdir: Path, token: str) -> dict[str, str]:
        env = {key: self.base_env[key] for key in PASSED_VARIABLES if key in self.base_env}
        if token:
            env["BEARER_TOKEN"] = token
        return {"PATH": self.launcher.path, "HOME": str(workdir), **env, **self.launcher.env}

    def _spec(self, workdir: Path) -> ContainerSpec:
        secrets, certs = credential_binds(self.base_env)
        return ContainerSpec(self.choice.image, workdir, binds=self.launcher.binds + certs, secrets=secrets,
                             options=self.choice.options)

    def _failed(self, requests: Sequence[TransferRequest], workdir: Path, error: PilotError, started: float,
                stop: StopSignal | None = None) -> list[TransferResult]:
        results = []
        for request in requests:
            target = local_of(request, workdir)
            if target is not None and request.direction is Direction.STAGE_IN:
                discard_partial(target)
            own = error
            if not isinstance(error, TransferError) or error.direction is not request.direction:
                own = TransferError(error.message, request.direction)
                own.code = error.code  # a container's own failure keeps its code (e.g. a bind point, 1308)
            results.append(failure(request, self.name, own, started, stop=stop, local=target))
        return results


def _without_tokens(requests: Sequence[TransferRequest]) -> tuple[tuple[TransferRequest, ...], str]:
    """The requests with the bearer tokens taken out of their URLs, and the token (one for all, "" for none).

    Raises:
        TransferError: a URL carries another secret, or two URLs different tokens.
    """
    tokens: set[str] = set()
    bare = []
    for request in requests:
        remote = request.source if request.direction is Direction.STAGE_IN else request.destination
        found = command_url(remote, request.direction)
        tokens.update(found.env.values())
        if request.direction is Direction.STAGE_IN:
            bare.append(attrs.evolve(request, source=found.url))
        else:
            bare.append(attrs.evolve(request, destination=found.url))
    if len(tokens) > 1:
        raise TransferError("the files of one middleware transfer carry different tokens", requests[0].direction)
    return tuple(bare), next(iter(tokens), "")


class _Files:
    """The request and results files of one container run, in the work directory (seen inside at the same path)."""

    def __init__(self, workdir: Path) -> None:
        stem = f".pilotlib-middleware-{uuid.uuid4().hex[:12]}"
        self.request = workdir / f"{stem}.request.json"
        self.results = workdir / f"{stem}.results.json"

    def remove(self) -> None:
        for path in (self.request, self.results):
            with contextlib.suppress(OSError):
                path.unlink()
