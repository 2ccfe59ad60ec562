"""Podman: the payload in an OCI image (a registry reference, an image in the node's Podman storage) or an unpacked
image directory (``--rootfs``), with the host's network and nothing of the host but what is bound.

The command is ``podman [--root R --runroot RR --tmpdir T] run --rm --name pilotlib-<workdir>-<random> --init
--network host --log-driver none [--userns keep-id] -v WORKDIR:WORKDIR -w WORKDIR -v SECRET:SECRET:ro ... --env KEY
... [the queue's container_options] IMAGE argv``:

- the environment reaches the payload as ``--env KEY`` for each variable, the name only: Podman takes the value
  from its own environment (the payload's, which the pilot gives it), so no value, secret or not, is on a command
  line; the secrets (proxy, token file) are files bound read-only at their own paths;
- ``--init``: a small init is PID 1 and passes signals on, so the runner's SIGTERM reaches the payload (a shell as
  PID 1 would ignore it);
- as a user other than root, ``--userns keep-id``: files written in the work directory are the pilot's user's;
- an image ``localhost/...`` is never pulled (``--pull never``): a missing one is IMAGENOTFOUND at once;
- the storage is the node's, shared by the pilot's jobs (an image is pulled or imported once, not per job): the
  ``storage`` directory given (``root``, ``run`` and ``tmp`` in it, e.g. from ``PILOTLIB_PODMAN_STORAGE``), else
  Podman's configured one (Podman refuses a ``run`` directory longer than 50 characters: keep the storage's path
  short); node settings (the OCI runtime, cgroups, ulimits) are Podman's own ``containers.conf``.

The container is not in the payload's session (it is a child of ``conmon``): a guard (:mod:`._guard`) outside the
session removes it (``podman rm --force --time 0``) as soon as ``podman run`` is gone, ended or killed, so a stopped
payload or a SIGKILLed pilot leaves no container running. Podman writes the container's host pid to a file beside the
work directory (``--pidfile``, out of the container's sight): the container's session is sampled with the
payload's, so the memory monitor and the job's CPU and memory figures see the processes inside.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from pilotlib._script import script_argv
from pilotlib.containers import _guard
from pilotlib.containers._program import check_answers, find_program
from pilotlib.containers.base import ContainerSpec
from pilotlib.containers.errors import ContainerError, ImageNotFoundError
from pilotlib.errors import ErrorCode, PilotError

__all__ = ["STORAGE_VARIABLE", "PodmanRuntime"]

#: The environment variable naming the node's Podman storage directory when none is given.
STORAGE_VARIABLE = "PILOTLIB_PODMAN_STORAGE"

#: Podman's own exit statuses (``podman-run(1)``): 125 Podman failed, 126 the command cannot be invoked, 127 it
#: cannot be found; a payload may exit with them too, so its stderr must also show Podman's ``Error:`` line.
PODMAN_STATUSES = (125, 126, 127)

#: Podman 4.3's ``Error:`` texts (checked against podman 4.3.1 with crun), the code of each; others are 1110.
_FAILURES = (
    ("image not known", ErrorCode.IMAGENOTFOUND),
    ("initializing source", ErrorCode.IMAGENOTFOUND),
    ("manifest unknown", ErrorCode.IMAGENOTFOUND),
    ("OCI runtime attempted to invoke a command that was not found", ErrorCode.TRANSFORMNOTFOUND),
    ("open executable: Permission denied", ErrorCode.TRANSFORMNOTFOUND),
    ("Error: statfs ", ErrorCode.SINGULARITYBINDPOINTFAILURE),
    ("running container create option: stat ", ErrorCode.IMAGENOTFOUND),
)

#: What ``--init``'s ``catatonit`` says (and exits 1) when it cannot execute the command: the transformation is not
#: in the image (``No such file or directory``) or not executable (``Permission denied``).
_INIT_EXEC_FAILED = "(catatonit:"
_INIT_EXEC_TEXT = "failed to exec pid1: "


class PodmanRuntime:
    """The ``podman`` runtime (entry point ``podman``).

    Args:
        executable: the ``podman`` program (a name on the pilot's ``PATH`` or a path).
        storage: the node's Podman storage (``root``, ``run`` and ``tmp`` are made in it); None: the directory in
            ``PILOTLIB_PODMAN_STORAGE`` of ``base_env``, else Podman's configured storage.
        python: the interpreter that runs the container's guard.
        base_env: the pilot's environment (the app's): the ``PATH`` the executable is looked up on, and the storage
            variable (None: the process's ``PATH``, no storage variable).
    """

    name = "podman"

    def __init__(self, executable: str = "podman", storage: Path | None = None, python: str = sys.executable,
                 base_env: Mapping[str, str] | None = None) -> None:
        self.executable = executable
        found = storage if storage is not None else (base_env or {}).get(STORAGE_VARIABLE)
        self.storage = Path(found) if found else None
        self.python = python
        self._path = None if base_env is None else base_env.get("PATH", os.defpath)

    @property
    def global_options(self) -> tuple[str, ...]:
        """``--root``, ``--runroot`` and ``--tmpdir`` of the storage (none for Podman's configured one)."""
        if self.storage is None:
            return ()
        return ("--root", str(self.storage / "root"), "--runroot", str(self.storage / "run"),
                "--tmpdir", str(self.storage / "tmp"))

    def check(self) -> None:
        """``podman info`` answers on the storage (Podman is there, its configuration and storage are usable; under
        a second, once per pilot).

        Raises:
            RuntimeNotInstalledError: it does not (SETUPFAILURE 1110: PanDA has no code for Podman), with Podman's
                last line.
        """
        check_answers(self.executable, self._path, [*self.global_options, "info", "--format", "{{.Version.Version}}"],
                      name="podman", code=ErrorCode.SETUPFAILURE, timeout=60)

    def wrap(self, argv: tuple[str, ...], env: Mapping[str, str],
             spec: ContainerSpec) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """The guarded ``podman run`` of ``argv`` (see the module); ``env`` is Podman's, passed on by name.

        Raises:
            ImageNotFoundError: the image is a path that is not a directory (1360).
            ContainerError: a path to bind holds a ``:`` (1308: ``-v`` cannot say it).
        """
        name = f"pilotlib-{spec.workdir.name}-{secrets.token_hex(4)}"
        podman = [find_program(self.executable, self._path), *self.global_options]
        pidfile = self.pidfile(spec)
        pidfile.unlink(missing_ok=True)  # a pid of an earlier container in this work directory is no one's now
        run = [*podman, "run", "--rm", "--name", name, "--init", "--network", "host", "--log-driver", "none",
               "--pidfile", str(pidfile)]
        if os.geteuid() != 0:
            run += ["--userns", "keep-id"]
        binds = [(spec.workdir, spec.workdir, False)]
        binds += [(bind.source, bind.inside, bind.read_only) for bind in spec.binds]
        binds += [(secret, secret, True) for secret in spec.secrets]
        for source, target, read_only in binds:
            if ":" in f"{source}{target}":
                raise ContainerError(ErrorCode.SINGULARITYBINDPOINTFAILURE, f"podman cannot bind {source}: a ':'")
            run += ["-v", f"{source}:{target}" + (":ro" if read_only else "")]
        run += ["-w", str(spec.workdir)]
        for key in env:
            run += ["--env", key]
        run += spec.options.split()
        run += self._image(spec.image)
        cleanup = [*podman, "rm", "--force", "--ignore", "--time", "0", name]
        guard = [*script_argv(self.python, _guard), json.dumps(cleanup)]
        return (*guard, *run, *argv), env

    @staticmethod
    def pidfile(spec: ContainerSpec) -> Path:
        """Where Podman writes the host pid of the container of ``spec``: beside its work directory, not in it."""
        return spec.workdir.with_name(f".{spec.workdir.name}.podman-pid")

    def outside_sessions(self, spec: ContainerSpec) -> tuple[int, ...]:
        """The session of the container's init (its pid from :meth:`pidfile`) while it runs; none before Podman wrote
        the file or after the container ended."""
        try:
            pid = int(self.pidfile(spec).read_text().strip())
            session = os.getsid(pid)
        except (OSError, ValueError):
            return ()
        return () if session == os.getsid(0) else (session,)

    @staticmethod
    def _image(image: str) -> list[str]:
        if image.startswith("/"):
            if not Path(image).is_dir():
                raise ImageNotFoundError(f"podman: no image directory {image}")
            return ["--rootfs", image]
        if image.startswith("localhost/"):
            return ["--pull", "never", image]
        return [image]

    def failure(self, exit_code: int, stderr: str) -> PilotError | None:
        """Podman's own failure: exit status 125, 126 or 127 with Podman's ``Error:`` line on stderr (its last), or
        exit status 1 with the init's "failed to exec pid1" (TRANSFORMNOTFOUND 1346); None when the status is the
        payload's."""
        if exit_code == 1:
            found = [line for line in stderr.splitlines() if _INIT_EXEC_FAILED in line and _INIT_EXEC_TEXT in line]
            return ContainerError(ErrorCode.TRANSFORMNOTFOUND, f"podman: {found[-1].strip()}") if found else None
        if exit_code not in PODMAN_STATUSES:
            return None
        errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
        if not errors:
            return None
        line = errors[-1]
        for text, code in _FAILURES:
            if text in line:
                return ContainerError(code, f"podman: {line}")
        return ContainerError(ErrorCode.SETUPFAILURE, f"podman: {line}")
