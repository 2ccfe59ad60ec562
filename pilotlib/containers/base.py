"""A container runtime behind one small interface, in the shape of a Parsl launcher: a command in, a wrapped command
out, and a check that the runtime is usable on this node.

A :class:`ContainerRuntime` is given a :class:`ContainerSpec` (the image, the work directory, what else to bind)
and the payload's argument list and environment, and returns the argument list and environment to execute
instead. Secrets (the X.509 proxy, a token file) are bound into the container as files and reach the payload as
paths in its environment, never on a command line. :meth:`ContainerRuntime.failure` recognises the runtime's own
failures from its exit status and output (an image not found, a bind mount refused, no user namespaces), kept
apart from the payload's exit status.

:class:`ContainerWrapper` is the payload runner's :class:`~pilotlib.payload.CommandWrapper` for one job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import attrs

from pilotlib.errors import PilotError

__all__ = ["CREDENTIAL_DIRS", "CREDENTIAL_FILES", "Bind", "ContainerRuntime", "ContainerSpec", "ContainerWrapper",
           "credential_binds", "link_binds"]


@attrs.frozen
class Bind:
    """A host path seen inside the container at ``target`` (default: the same path)."""

    source: Path = attrs.field(converter=Path)
    target: Path | None = None
    read_only: bool = False

    @property
    def inside(self) -> Path:
        """Where the path is seen inside the container."""
        return self.target if self.target is not None else self.source


@attrs.frozen
class ContainerSpec:
    """What one payload's container is.

    Attributes:
        image: a registry reference (``docker://...``), an image file (``.sif``) or an unpacked directory
            (``/cvmfs/unpacked.cern.ch/...``), as the runtime takes it.
        workdir: the job's work directory on the host; bound read-write at the same path and the command's
            working directory inside.
        binds: further binds (``/cvmfs`` when present, the queue's).
        secrets: files bound read-only at their own paths (the proxy, a token file): the payload gets their paths.
        options: the queue's ``container_options`` (runtime-specific, e.g. Apptainer's ``-B /scratch``).
    """

    image: str
    workdir: Path = attrs.field(converter=Path)
    binds: tuple[Bind, ...] = ()
    secrets: tuple[Path, ...] = ()
    options: str = ""


#: The variables that name credential files (bound read-only into a container at their own paths).
CREDENTIAL_FILES = ("X509_USER_PROXY", "BEARER_TOKEN_FILE")
#: The variables that name credential directories (the CA certificates), bound read-only likewise.
CREDENTIAL_DIRS = ("X509_CERT_DIR",)


def credential_binds(env: Mapping[str, str]) -> tuple[tuple[Path, ...], tuple[Bind, ...]]:
    """The credential files and directories ``env`` names (``--proxy``, or the site's ``X509_USER_PROXY``; the CA
    directory), as a :class:`ContainerSpec`'s ``secrets`` and ``binds``: inside, they are at the same paths."""
    files = tuple(Path(env[name]) for name in CREDENTIAL_FILES if env.get(name) and Path(env[name]).is_file())
    dirs = tuple(Bind(env[name], read_only=True) for name in CREDENTIAL_DIRS
                 if env.get(name) and Path(env[name]).is_dir())
    return files, dirs


def link_binds(workdir: Path, names: Iterable[str]) -> tuple[Bind, ...]:
    """The files of ``workdir`` named ``names`` (a job's inputs) that are symbolic links to a place outside it
    (Harvester's links into the access point, the ``symlink`` copytool), as read-only binds of what they finally
    point to, at the path each link names: inside the container the link then works as on the host, and nothing
    else of the access point is seen. A link that does not resolve to a file is left alone (the payload finds it
    broken, as on the host)."""
    binds = []
    for name in names:
        link = workdir / name
        if not link.is_symlink():
            continue
        named = Path(os.path.normpath(link.parent / os.readlink(link)))
        real = link.resolve()
        if real.is_file() and workdir.resolve() not in named.parents:
            binds.append(Bind(real, named, read_only=True))
    return tuple(binds)


class ContainerRuntime(Protocol):
    """A container runtime (Apptainer, Singularity, Podman, bubblewrap); plug-ins register a factory under the
    ``pilotlib.containers`` entry-point group."""

    name: str

    def check(self) -> None:
        """Make sure the runtime is usable on this node (its executable is there and answers).

        Raises:
            RuntimeNotInstalledError: it is not (its NOTINSTALLED code).
        """
        ...

    def wrap(self, argv: tuple[str, ...], env: Mapping[str, str],
             spec: ContainerSpec) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """The argument list and environment that run ``argv`` with ``env`` inside the container of ``spec``.

        Raises:
            ImageNotFoundError: the image is a local path that does not exist (1360).
        """
        ...

    def outside_sessions(self, spec: ContainerSpec) -> tuple[int, ...]:
        """The sessions outside the wrapped command's own in which the container of ``spec`` runs, while it runs
        (Podman's, under ``conmon``); none for a runtime whose container is the command's child."""
        ...

    def failure(self, exit_code: int, stderr: str) -> PilotError | None:
        """The runtime's own failure shown by the wrapped command's exit status and the tail of its stderr, None when
        the status is the payload's."""
        ...


@attrs.frozen
class ContainerWrapper:
    """Runs one job's payload in its container (a :class:`~pilotlib.payload.CommandWrapper`)."""

    runtime: ContainerRuntime
    spec: ContainerSpec

    def wrap(self, argv: tuple[str, ...], env: Mapping[str, str],
             workdir: Path) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """The runtime's wrapped command (``workdir`` is the spec's)."""
        return self.runtime.wrap(argv, env, self.spec)

    def outside_sessions(self) -> tuple[int, ...]:
        """The runtime's sessions of this job's container (sampled by the monitors)."""
        return self.runtime.outside_sessions(self.spec)
