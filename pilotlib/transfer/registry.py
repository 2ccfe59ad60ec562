"""Find copytools by name through the ``pilotlib.copytools`` entry-point group, and pick a usable one.

A site or an experiment adds its own copytool by declaring, in its own package::

    [project.entry-points."pilotlib.copytools"]
    mytool = "mysite.transfer:MyCopytool"

The value is a callable (usually the class) that returns a :class:`~pilotlib.transfer.base.Copytool`; keyword
options given to :meth:`CopytoolRegistry.create` are passed to it. Entry points are loaded lazily, on first use of
that name, so a copytool whose library is missing (or whose module is broken) never stops the pilot from importing
or starting: it is reported as unusable, with the reason.

The library reads no environment: a registry given the app's ``base_env`` (the environment the app read once)
passes it to every copytool whose factory takes a ``base_env`` option (those that run commands: ``lsm``,
``xrdcp``), unless the options give one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata

from pilotlib._factories import takes_keyword
from pilotlib.errors import Direction
from pilotlib.transfer.base import Copytool
from pilotlib.transfer.errors import CopytoolUnavailableError, NoUsableCopytoolError, UnknownCopytoolError

__all__ = ["ENTRY_POINT_GROUP", "CopytoolFactory", "CopytoolRegistry", "default_registry"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pilotlib.copytools"

CopytoolFactory = Callable[..., Copytool]
"""Builds a copytool from keyword options (the copytool class itself, usually)."""


class CopytoolRegistry:
    """Copytool factories by name: from entry points (loaded lazily) and from :meth:`register`.

    Args:
        entry_points: the entry points to offer; default: the installed ``pilotlib.copytools`` group.
        factories: extra factories by name (they win over entry points of the same name).
        base_env: the environment the app read, given as ``base_env`` to each factory that takes it (None: none
            given; the copytools' commands then start from the process environment).
    """

    def __init__(
        self,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        factories: Mapping[str, CopytoolFactory] | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self._base_env = base_env
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        self._entry_points: dict[str, metadata.EntryPoint] = {ep.name: ep for ep in eps}
        self._factories: dict[str, CopytoolFactory] = dict(factories or {})
        self._broken: dict[str, str] = {}

    @property
    def base_env(self) -> Mapping[str, str] | None:
        """The environment the app read, given to the copytools that run commands (None: none given)."""
        return self._base_env

    def register(self, name: str, factory: CopytoolFactory) -> None:
        """Add (or replace) the factory for ``name``."""
        self._factories[name] = factory
        self._broken.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted."""
        return tuple(sorted(set(self._entry_points) | set(self._factories)))

    def factory(self, name: str, direction: Direction = Direction.STAGE_IN) -> CopytoolFactory:
        """The factory for ``name``, loading its entry point on first use.

        Raises:
            UnknownCopytoolError: no such name (UNKNOWNCOPYTOOL).
            CopytoolUnavailableError: its entry point can not be loaded; ``reason`` says why.
        """
        if name in self._factories:
            return self._factories[name]
        if name in self._broken:
            raise CopytoolUnavailableError(f"copytool {name} unusable: {self._broken[name]}", direction,
                                           self._broken[name])
        ep = self._entry_points.get(name)
        if ep is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownCopytoolError(f"unknown copytool {name!r} (registered: {known})", direction)
        try:
            loaded = ep.load()
        except Exception as exc:  # a plugin's import may fail in any way; it must not stop the pilot
            reason = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
            self._broken[name] = reason
            log.warning("copytool plugin broken name=%s reason=%s", name, reason)
            raise CopytoolUnavailableError(f"copytool {name} unusable: {reason}", direction, reason) from exc
        if not callable(loaded):
            reason = f"entry point {ep.value} is not callable"
            self._broken[name] = reason
            raise CopytoolUnavailableError(f"copytool {name} unusable: {reason}", direction, reason)
        self._factories[name] = loaded
        return self._factories[name]

    def create(self, name: str, direction: Direction = Direction.STAGE_IN, **options: object) -> Copytool:
        """A new instance of the copytool ``name``, built with ``options``.

        Raises:
            UnknownCopytoolError: no such name.
            CopytoolUnavailableError: the plugin can not be loaded or refuses the options.
        """
        factory = self.factory(name, direction)
        if self._base_env is not None and "base_env" not in options and takes_keyword(factory, "base_env"):
            options = {**options, "base_env": self._base_env}
        try:
            return factory(**options)
        except TypeError as exc:
            raise CopytoolUnavailableError(f"copytool {name} rejects its options: {exc}", direction, str(exc)) from exc

    def select(
        self,
        names: Sequence[str],
        direction: Direction,
        options: Mapping[str, Mapping[str, object]] | None = None,
        scheme: str | None = None,
    ) -> Copytool:
        """The first usable copytool of ``names`` (the activity's configured order).

        A name is skipped when it is unknown, its plugin can not be loaded, it says it is unusable here, or it
        does not serve ``scheme`` (when given).

        Args:
            names: copytool names in order of preference.
            direction: the transfer direction (picks error codes).
            options: keyword options per copytool name.
            scheme: a URL scheme the tool must serve (``"root"``); None accepts any.

        Raises:
            NoUsableCopytoolError: none is usable; ``skipped`` maps each name to why (UNKNOWNCOPYTOOL when every
                name was unknown, else STAGEINFAILED/STAGEOUTFAILED).
        """
        skipped: dict[str, str] = {}
        unknown = 0
        for name in names:
            try:
                tool = self.create(name, direction, **dict((options or {}).get(name, {})))
            except UnknownCopytoolError as exc:
                unknown += 1
                skipped[name] = exc.message
                continue
            except CopytoolUnavailableError as exc:
                skipped[name] = exc.reason or exc.message
                continue
            reason = tool.unusable_reason()
            if reason is None and scheme is not None and scheme not in tool.schemes:
                reason = f"does not serve {scheme}:// (serves {', '.join(tool.schemes)})"
            if reason is None:
                return tool
            log.info("copytool skipped name=%s reason=%s", name, reason)
            skipped[name] = reason
        raise NoUsableCopytoolError(direction, skipped, all_unknown=bool(names) and unknown == len(names))


def default_registry(base_env: Mapping[str, str] | None = None) -> CopytoolRegistry:
    """A registry of the installed ``pilotlib.copytools`` entry points (``base_env``: the app's environment, for
    the copytools that run commands)."""
    return CopytoolRegistry(base_env=base_env)

