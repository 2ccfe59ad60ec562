"""Containers: the payload in a container, chosen with the job's set-up, run by a runtime behind one interface.

- :mod:`~pilotlib.containers.choice`: which image and runtime a job's payload uses (the job's, else the queue's).
- :mod:`~pilotlib.containers.base`: :class:`ContainerRuntime` (a command in, a wrapped command out, a check that the
  runtime is usable, its failures recognised), :class:`ContainerSpec`, :class:`ContainerWrapper`.
- runtimes, plug-ins under the ``pilotlib.containers`` entry-point group (:class:`RuntimeRegistry`): ``apptainer``,
  ``singularity`` (:mod:`~pilotlib.containers.apptainer`), ``bubblewrap``, ``podman``.
"""

from pilotlib.containers.apptainer import ApptainerRuntime, SingularityRuntime
from pilotlib.containers.base import Bind, ContainerRuntime, ContainerSpec, ContainerWrapper
from pilotlib.containers.bubblewrap import BubblewrapRuntime
from pilotlib.containers.choice import ContainerChoice, ContainerDefaults, choose_container, split_container_image
from pilotlib.containers.errors import (
    ContainerError,
    ImageNotFoundError,
    QueueNotSetUpForContainersError,
    RuntimeNotInstalledError,
)
from pilotlib.containers.podman import PodmanRuntime
from pilotlib.containers.registry import RuntimeRegistry

__all__ = [
    "ApptainerRuntime",
    "Bind",
    "BubblewrapRuntime",
    "ContainerChoice",
    "ContainerDefaults",
    "ContainerError",
    "ContainerRuntime",
    "ContainerSpec",
    "ContainerWrapper",
    "ImageNotFoundError",
    "PodmanRuntime",
    "QueueNotSetUpForContainersError",
    "RuntimeNotInstalledError",
    "RuntimeRegistry",
    "SingularityRuntime",
    "choose_container",
    "split_container_image",
]
