"""The container runtimes installed: factories under the ``pilotlib.containers`` entry-point group, like copytools.

A package adds a runtime by declaring, in its own ``pyproject.toml``::

    [project.entry-points."pilotlib.containers"]
    myruntime = "mypackage.runtime:MyRuntime"
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from pilotlib.containers.base import ContainerRuntime
from pilotlib.containers.errors import RuntimeNotInstalledError
from pilotlib.errors import ErrorCode

__all__ = ["GROUP", "RuntimeRegistry"]

GROUP = "pilotlib.containers"

RuntimeFactory = Callable[[], ContainerRuntime]


class RuntimeRegistry:
    """Container runtimes by name: the installed entry points (read when a runtime is first asked for: a pilot
    without containers pays nothing), and those registered here, which win."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._registered: dict[str, RuntimeFactory] = {}
        self._installed: dict[str, RuntimeFactory] | None = None if load_entry_points else {}

    def register(self, name: str, factory: RuntimeFactory) -> None:
        """Add (or replace) runtime ``name``."""
        self._registered[name] = factory

    @property
    def _factories(self) -> dict[str, RuntimeFactory]:
        if self._installed is None:
            self._installed = {point.name: point.load() for point in entry_points(group=GROUP)}
        return {**self._installed, **self._registered}

    @property
    def names(self) -> tuple[str, ...]:
        """The runtimes known, sorted."""
        return tuple(sorted(self._factories))

    def get(self, name: str) -> ContainerRuntime:
        """A new runtime ``name``.

        Raises:
            RuntimeNotInstalledError: no such runtime is installed (Apptainer 1372, Singularity 1325, others 1110).
        """
        factory = self._factories.get(name)
        if factory is None:
            code = {"apptainer": ErrorCode.APPTAINERNOTINSTALLED,
                    "singularity": ErrorCode.SINGULARITYNOTINSTALLED}.get(name, ErrorCode.SETUPFAILURE)
            raise RuntimeNotInstalledError(code, f"no container runtime {name!r} (known: {', '.join(self.names)})")
        return factory()
