"""The errors of containers: each carries the PanDA code of what went wrong (pilot3 ``pilot/common/errorcodes.py``)."""

from __future__ import annotations

from pilotlib.errors import ErrorCode, PilotError

__all__ = ["ContainerError", "ImageNotFoundError", "QueueNotSetUpForContainersError", "RuntimeNotInstalledError"]


class ContainerError(PilotError):
    """A container runtime failed; the code is the one its output or exit status shows (e.g. 1308 a bind point)."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        self.code = code
        super().__init__(message or code.message)


class RuntimeNotInstalledError(ContainerError):
    """The runtime the job needs is not usable on this node: Apptainer 1372, Singularity 1325; a runtime PanDA has no
    code for (Podman, bubblewrap) is a set-up failure (1110)."""


class ImageNotFoundError(ContainerError):
    """The container image does not exist (1360)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(ErrorCode.IMAGENOTFOUND, message)


class QueueNotSetUpForContainersError(ContainerError):
    """The job asks for a container on a queue whose description names no container runtime for the payload
    (1384)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(ErrorCode.QUEUENOTSETUPFORCONTAINERS, message)
