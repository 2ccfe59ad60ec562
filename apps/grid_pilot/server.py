"""Server mode: the dispatcher client as job source and reporter."""

from __future__ import annotations

from apps.grid_pilot.settings import Settings
from pilotlib.panda.base import JobReporter, JobSource

__all__ = ["server_parts"]


def server_parts(settings: Settings) -> tuple[JobSource, JobReporter]:
    """The dispatcher client for ``settings.url`` in ``settings.api`` dialect, as source and reporter."""
    raise NotImplementedError("the dispatcher client (pilotlib.panda.client) has not landed yet")
