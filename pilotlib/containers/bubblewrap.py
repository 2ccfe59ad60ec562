"""bubblewrap (``bwrap``): the payload in an unpacked image directory, in its own namespaces, with nothing of the host
but what is bound.

The image is a root file system directory (an unpacked image, as on ``/cvmfs/unpacked.cern.ch``), bound read-only
at ``/``; the work directory is bound read-write at its own path and is the working directory; ``/cvmfs`` is bound
read-only when the host has it; the secrets (proxy, token file) are bound read-only at their own paths. The
container gets new user, PID, IPC, UTS and cgroup namespaces, the host's network (stage-in and stage-out are the
pilot's, but a payload may read conditions data over the network), and dies with ``bwrap``
(``--die-with-parent``), so stopping the payload's process group stops the container. The payload's environment is
``bwrap``'s, passed through unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pilotlib.containers._program import check_answers, find_program
from pilotlib.containers.base import ContainerSpec
from pilotlib.containers.errors import ContainerError, ImageNotFoundError
from pilotlib.errors import ErrorCode, PilotError

__all__ = ["BubblewrapRuntime"]

#: What bubblewrap says on stderr when it fails before the payload runs, and the code of each.
_FAILURES = (
    ("bwrap: execvp", ErrorCode.TRANSFORMNOTFOUND),
    ("bwrap: Can't find source path", ErrorCode.SINGULARITYBINDPOINTFAILURE),
    ("bwrap: No permissions to create new namespace", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("bwrap: Creating new namespace failed", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("bwrap: setting up uid map", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
)


class BubblewrapRuntime:
    """The ``bwrap`` runtime (entry point ``bubblewrap``).

    Args:
        executable: the ``bwrap`` program (a name on the pilot's ``PATH`` or a path).
        cvmfs: the host's CVMFS mount, bound read-only when it exists.
        base_env: the pilot's environment (the app's): the ``PATH`` the executable is looked up on (None: the
            process's).
    """

    name = "bubblewrap"

    def __init__(self, executable: str = "bwrap", cvmfs: Path = Path("/cvmfs"),
                 base_env: Mapping[str, str] | None = None) -> None:
        self.executable = executable
        self.cvmfs = cvmfs
        self._path = None if base_env is None else base_env.get("PATH", os.defpath)

    def check(self) -> None:
        """``bwrap --version`` answers.

        Raises:
            RuntimeNotInstalledError: it does not (SETUPFAILURE 1110: PanDA has no code for bubblewrap).
        """
        check_answers(self.executable, self._path, ["--version"], name="bubblewrap", code=ErrorCode.SETUPFAILURE,
                      timeout=10)

    def wrap(self, argv: tuple[str, ...], env: Mapping[str, str],
             spec: ContainerSpec) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """``bwrap <namespaces> --ro-bind IMAGE / ... --bind WORKDIR WORKDIR --chdir WORKDIR -- argv``.

        Raises:
            ImageNotFoundError: the image is not a directory (1360).
        """
        image = Path(spec.image)
        if not image.is_dir():
            raise ImageNotFoundError(f"bubblewrap needs an unpacked image directory: {spec.image} is none")
        args = [find_program(self.executable, self._path), "--unshare-user", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--ro-bind", str(image), "/",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a fresh tmpfs inside
        if self.cvmfs.is_dir():
            args += ["--ro-bind", str(self.cvmfs), str(self.cvmfs)]
        for bind in spec.binds:
            args += ["--ro-bind" if bind.read_only else "--bind", str(bind.source), str(bind.inside)]
        for secret in spec.secrets:
            args += ["--ro-bind", str(secret), str(secret)]
        args += ["--bind", str(spec.workdir), str(spec.workdir), "--chdir", str(spec.workdir), "--", *argv]
        return tuple(args), env

    def outside_sessions(self, spec: ContainerSpec) -> tuple[int, ...]:
        """None: the container's processes are the wrapped command's children, in its session."""
        return ()

    def failure(self, exit_code: int, stderr: str) -> PilotError | None:
        """bubblewrap's own failure (its ``bwrap:`` lines; it exits 1), None when the status is the payload's."""
        if exit_code != 1:
            return None
        for line in stderr.splitlines():
            for start, code in _FAILURES:
                if line.startswith(start):
                    return ContainerError(code, line)
        return None
