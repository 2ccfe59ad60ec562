"""Transfer activities and their fallbacks.

A queue lists copytools (``acopytools``) and storages (``astorages``) per activity; a storage lists protocols per
activity (``arprotocols``). Two naming schemes are in use: the short pilot names (``pr`` read, ``pw`` write, ``pl``
log) and the DDM names (``read_lan``, ``write_lan``, ``read_wan``, ``write_wan``), plus the event-service ones
(``es_events``, ``es_failover``, ``es_events_read``) and the unified-queue analysis ones (``read_lan_analysis``,
``write_lan_analysis``). The chains below follow how PanDAWMS/pilot3 asks for them: stage-in uses ``read_lan``
(``pilot/control/data.py``), outputs ``write_lan`` then ``w``, the log ``pl`` first, event-service outputs
``es_events`` then ``pw`` and their failover ``es_failover`` then ``pw``
(``pilot/eventservice/workexecutor/plugins/genericexecutor.py``), and copytools fall back to ``default``
(``pilot/api/data.py``). Each chain also accepts the other scheme's name for the same thing.

A caller may always pass its own ordered list of activity names instead of one name.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

__all__ = ["Activity", "copytool_chain", "protocol_chain", "storage_chain"]


class Activity(enum.StrEnum):
    """The activities a pilot transfers files for (their values are the wire names)."""

    READ = "read_lan"
    READ_WAN = "read_wan"
    WRITE = "write_lan"
    WRITE_WAN = "write_wan"
    LOG = "pl"
    ES_EVENTS = "es_events"
    ES_FAILOVER = "es_failover"
    ES_EVENTS_READ = "es_events_read"


_READ = ("read_lan", "pr")
_WRITE = ("write_lan", "pw", "w")

_CHAINS: dict[str, tuple[str, ...]] = {
    "read_lan": _READ,
    "pr": ("pr", "read_lan"),
    "read_wan": ("read_wan", *_READ),
    "read_lan_analysis": ("read_lan_analysis", *_READ),
    "write_lan": _WRITE,
    "pw": ("pw", "write_lan", "w"),
    "w": ("w", "write_lan", "pw"),
    "write_wan": ("write_wan", *_WRITE),
    "write_lan_analysis": ("write_lan_analysis", *_WRITE),
    "pl": ("pl", *_WRITE),
    "es_events": ("es_events", "pw", "write_lan", "w"),
    "es_failover": ("es_failover", "pw", "write_lan", "w"),
    "es_events_read": ("es_events_read", *_READ),
}

_READ_PROTOCOLS = ("read_lan", "read_wan")
_WRITE_PROTOCOLS = ("write_lan", "write_wan")
_PROTOCOL_CHAINS: dict[str, tuple[str, ...]] = {
    "read_wan": ("read_wan",),
    "write_wan": ("write_wan",),
    **{name: _READ_PROTOCOLS for name in ("read_lan", "pr", "read_lan_analysis", "es_events_read")},
    **{name: _WRITE_PROTOCOLS for name in ("write_lan", "pw", "w", "pl", "write_lan_analysis", "es_events")},
    "es_failover": _WRITE_PROTOCOLS,
}


def _dedup(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(name) for name in names))


def storage_chain(activity: str | Sequence[str]) -> tuple[str, ...]:
    """The ``astorages`` keys to try, in order, for an activity (or the given list itself)."""
    if isinstance(activity, str):
        return _CHAINS.get(str(activity), (str(activity),))
    return _dedup(activity)


def copytool_chain(activity: str | Sequence[str]) -> tuple[str, ...]:
    """The ``acopytools`` keys to try, in order, for an activity: its storage chain, then ``default``."""
    return _dedup((*storage_chain(activity), "default"))


def protocol_chain(activity: str | Sequence[str]) -> tuple[str, ...]:
    """The ``arprotocols`` keys of a storage to try, in order: LAN first, then WAN, for reads or for writes."""
    if isinstance(activity, str):
        return _PROTOCOL_CHAINS.get(str(activity), (str(activity),))
    return _dedup(activity)
