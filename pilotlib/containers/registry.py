"""The container runtimes installed: factories under the ``pilotlib.containers`` entry-point group, like copytools.

A package adds a runtime by declaring, in its own ``pyproject.toml``::

    [project.entry-points."pilotlib.containers"]
    myruntime = "mypackage.runtime:MyRuntime"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points

from pilotlib._factories import takes_keyword
from pilotlib.containers.base import ContainerRuntime
from pilotlib.containers.errors import RuntimeNotInstalledError
from pilotlib.errors import ErrorCode

__all__ = ["GROUP", "RuntimeRegistry"]

GROUP = "pilotlib.containers"

RuntimeFactory = Callable[..., ContainerRuntime]
"""Builds a runtime (the runtime class itself, usually); given ``base_env=`` when it takes that keyword."""


class RuntimeRegistry:
    """Container runtimes by name: the installed entry points (read when a runtime is first asked for, and only
    the one asked for loaded: a pilot without containers pays nothing, and a broken plug-in breaks only itself),
    and those registered here, which win.

    Args:
        load_entry_points: offer the installed ``pilotlib.containers`` entry points.
        base_env: the pilot's environment (the app's), given as ``base_env`` to each factory that takes it, so a
            runtime finds its executable on the pilot's ``PATH`` (None: none given; the process's ``PATH``).
    """

    def __init__(self, *, load_entry_points: bool = True, base_env: Mapping[str, str] | None = None) -> None:
        self._base_env = base_env
        self._registered: dict[str, RuntimeFactory] = {}
        self._installed: dict[str, EntryPoint] | None = None if load_entry_points else {}

    def register(self, name: str, factory: RuntimeFactory) -> None:
        """Add (or replace) runtime ``name``."""
        self._registered[name] = factory

    @property
    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._installed is None:
            self._installed = {point.name: point for point in entry_points(group=GROUP)}
        return self._installed

    @property
    def names(self) -> tuple[str, ...]:
        """The runtimes known, sorted."""
        return tuple(sorted({*self._entry_points, *self._registered}))

    def get(self, name: str) -> ContainerRuntime:
        """A new runtime ``name``.

        Raises:
            RuntimeNotInstalledError: no such runtime is installed, or its plug-in cannot be loaded (Apptainer 1372,
                Singularity 1325, others 1110).
        """
        code = {"apptainer": ErrorCode.APPTAINERNOTINSTALLED,
                "singularity": ErrorCode.SINGULARITYNOTINSTALLED}.get(name, ErrorCode.SETUPFAILURE)
        factory = self._registered.get(name)
        point = self._entry_points.get(name) if factory is None else None
        if point is not None:
            try:
                factory = point.load()
            except (ImportError, AttributeError) as exc:  # the plug-in's module or object is not there
                raise RuntimeNotInstalledError(code, f"container runtime {name!r} cannot be loaded: {exc}") from exc
        if factory is None:
            raise RuntimeNotInstalledError(code, f"no container runtime {name!r} (known: {', '.join(self.names)})")
        if self._base_env is not None and takes_keyword(factory, "base_env"):
            return factory(base_env=self._base_env)
        return factory()

