"""The interfaces through which a pilot gets work and reports on it.

Three implementations exist, chosen once by the pilot (never by ``if mode:`` in the library; a
:class:`pilotlib.workflow.ModeParts` holds the choice): the dispatcher client (:mod:`pilotlib.panda.client`),
Harvester's shared files (:mod:`pilotlib.panda.harvester`) and the NorduGrid/ARC launch directory
(:mod:`pilotlib.panda.arc`).

Updates travel as :class:`JobUpdate` values whose ``fields`` use the legacy ``updateJob`` names (camelCase, as listed
in PANDA.md section 1); each implementation translates them to its own wire form once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import attrs

from pilotlib.job import Job

__all__ = [
    "EventRange",
    "EventRangeSource",
    "EventRangeUpdate",
    "JobReporter",
    "JobRequest",
    "JobSource",
    "JobUpdate",
    "ServerCommand",
    "UpdateAnswer",
    "ZipRecord",
]


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class JobRequest:
    """What a pilot tells the job source about itself when it asks for work (``getJob`` fields)."""

    site_name: str
    queue: str
    prod_source_label: str = "managed"
    node: str = ""
    mem_mb: int = 0
    disk_mb: int = 0
    cpu_mhz: int = 0
    working_group: str = ""
    resource_type: str = ""
    job_type: str = ""
    harvester_id: str = ""
    worker_id: str = ""
    n_jobs: int = 1
    task_id: int | None = None


class ServerCommand(enum.Enum):
    """The back-channel ``command`` the server may send in an update answer."""

    TOBEKILLED = "tobekilled"
    SOFTKILL = "softkill"
    DEBUG = "debug"
    DEBUGOFF = "debugoff"
    NOCLEANUP = "nocleanup"
    DEBUG_COMMAND = "debug_command"  # a restricted debug command: its text is UpdateAnswer.command_text


@attrs.frozen
class UpdateAnswer:
    """The server's answer to an update: accepted or not, and an optional back-channel command.

    ``possibly_applied`` is True when the server failed after receiving the update, so that it may well have applied
    it (panda-server 1.x answers every v1 ``event/update_event_ranges`` with HTTP 500 after applying it): the update
    is not to be counted as refused or lost, nor re-sent without end.
    """

    accepted: bool
    command: ServerCommand | None = None
    command_text: str = ""
    message: str = ""
    possibly_applied: bool = False


@attrs.frozen
class JobUpdate:
    """One update of one job: its server state (``starting``, ``running``, ``finished``, ...) and the fields.

    ``fields`` holds the ``updateJob`` fields by their legacy camelCase names (``cpuConsumptionTime``, ``xml``,
    ``pilotErrorCode``, ``jobMetrics``, ...), values already in wire form (strings or numbers).
    """

    panda_id: int
    state: str
    fields: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)
    final: bool = False


@attrs.frozen
class EventRange:
    """One event range handed out for an event-service job."""

    event_range_id: str
    start_event: int
    last_event: int
    lfn: str
    guid: str
    scope: str
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)


@attrs.frozen
class EventRangeUpdate:
    """The status of one event range (``finished``, ``failed``, ``running``, ...) with optional output info."""

    event_range_id: str
    status: str
    panda_id: int
    fields: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)


@attrs.frozen
class ZipRecord:
    """A file holding the outputs of several event ranges, stored: the ``zipFile`` of an ``updateEventRanges``
    version 1 group (pilot3 ``pilot/eventservice/workexecutor/plugins/genericexecutor.py``
    ``update_finished_event_ranges``; panda-server ``task_event_module.py`` gives it to each range of the group).

    Attributes:
        lfn: the file's name.
        fsize: its size in bytes.
        adler32: its adler32 checksum (8 hex digits).
        objstore_id: the storage's id (the storage description's ``id``; -1: not known).
        num_events: how many ranges' outputs it holds.
        path_convention: the storage's path convention (pilot3 sends 1000).
    """

    lfn: str
    fsize: int
    adler32: str
    objstore_id: int
    num_events: int
    path_convention: int = 1000


@runtime_checkable
class JobSource(Protocol):
    """Where jobs come from."""

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        """Return up to ``request.n_jobs`` jobs; an empty sequence when there is no work.

        Raises:
            pilotlib.errors.PilotError: a communication or definition error, with its code.
        """
        ...


@runtime_checkable
class JobReporter(Protocol):
    """Where job updates go."""

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        """Send one update (a heartbeat or the final state) and return the answer."""
        ...


@runtime_checkable
class EventRangeSource(Protocol):
    """Event ranges for event-service jobs."""

    def get_event_ranges(self, job: Job, n_ranges: int) -> Sequence[EventRange]:
        """Return up to ``n_ranges`` event ranges for ``job``; empty when there are none left."""
        ...

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Report the status of event ranges."""
        ...
