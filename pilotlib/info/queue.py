"""The description of a PanDA queue (schedconfig / CRIC "queuedata") as a frozen value, and its parser.

Field names, external aliases and defaults follow PanDAWMS/pilot3 ``pilot/info/queuedata.py`` (``QueueData``:
``name`` from ``nickname``, ``resource`` from ``panda_resource``, ``site`` from ``atlas_site``/``gstat``,
``es_stageout_gap`` from ``zip_time_gap``, ``corecount`` 0 means 1, ``timefloor`` given in minutes,
``container_type`` as ``"singularity:pilot;container:middleware"``, ``container_options`` taken from
``singularity_options=``/``apptainer_options=`` in ``catchall`` when unset). PanDA's cache writes the queue's
``siteid`` too (PanDAWMS/panda-server ``pandaserver/daemons/scripts/cache_schedconfig.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import attrs

from pilotlib.info import _values as v
from pilotlib.info.activities import copytool_chain, storage_chain
from pilotlib.info.errors import BadQueuedataError, NoCopytoolError, NoStorageError

__all__ = ["ACTIVE", "QueueDescription", "parse_queue"]

ACTIVE = "ACTIVE"
"""The ``state`` of a queue a pilot may run on (pilot3 ``pilot.py`` refuses any other)."""

_NAME_KEYS = ("nickname", "name", "siteid")
_SITE_KEYS = ("atlas_site", "site", "gstat")
_CONTAINER_OPTION = re.compile(r"""(?:singularity|apptainer)_options=['"]?([^'"]+)['"]?""")


@attrs.frozen
class QueueDescription:
    """How a PanDA queue is configured.

    Attributes:
        name: the queue (``nickname``, else ``name``).
        resource: the PanDA resource (``panda_resource``).
        site: the experiment site (``atlas_site``, else ``site``, else ``gstat``).
        state: the CRIC state, ``ACTIVE`` for a usable queue.
        status: the PanDA status (``online``, ``offline``, ``test``, ``brokeroff``).
        type: the queue type (``production``, ``analysis``, ``unified``).
        resource_type: ``grid``, ``hpc``, ...
        copytools: copytool settings by copytool name (``{"rucio": {"setup": ""}}``).
        acopytools: copytool names per activity (``{"pr": ("rucio",), "pw": ("gfal",)}``).
        astorages: storage (DDM endpoint) names per activity.
        aprotocols: protocol settings per activity, as given.
        direct_access_lan: the payload may open LAN replicas directly (no copy).
        direct_access_wan: the payload may open WAN replicas directly.
        allow_lan: LAN replicas may be used for stage-in.
        allow_wan: WAN replicas may be used for stage-in.
        maxwdir: the largest work directory in MB (0: no limit given).
        maxrss: the memory limit in MB (0: none given).
        maxinputsize: the largest total input in MB (0: none given).
        maxtime: the longest pilot lifetime in seconds (0: none given).
        timefloor: minutes during which a multi-job pilot keeps asking for jobs.
        corecount: cores per job (at least 1).
        pledgedcpu: pledged CPU (-1 for opportunistic resources).
        container_type: container technology per user (``{"pilot": "singularity", "middleware": "container"}``).
        container_options: options for the container command.
        catchall: the free-form ``catchall`` string.
        params: the ``params`` object.
        environ: ``key=value`` pairs exported to the payload.
        is_cvmfs: CVMFS is installed.
        use_pcache: pcache is used.
        es_stageout_gap: seconds between event-service stage-outs (``zip_time_gap``; 0: not given).
        extra: every field of the description not listed above, unchanged (deep-frozen).
    """

    name: str
    resource: str = ""
    site: str = ""
    state: str = ""
    status: str = ""
    type: str = ""
    resource_type: str = ""
    copytools: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))
    acopytools: Mapping[str, tuple[str, ...]] = attrs.field(factory=lambda: MappingProxyType({}))
    astorages: Mapping[str, tuple[str, ...]] = attrs.field(factory=lambda: MappingProxyType({}))
    aprotocols: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))
    direct_access_lan: bool = False
    direct_access_wan: bool = False
    allow_lan: bool = True
    allow_wan: bool = False
    maxwdir: int = 0
    maxrss: int = 0
    maxinputsize: int = 0
    maxtime: int = 0
    timefloor: int = 0
    corecount: int = 1
    pledgedcpu: int = 0
    container_type: Mapping[str, str] = attrs.field(factory=lambda: MappingProxyType({}))
    container_options: str = ""
    catchall: str = ""
    params: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))
    environ: str = ""
    is_cvmfs: bool = True
    use_pcache: bool = False
    es_stageout_gap: int = 0
    extra: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    def is_active(self) -> bool:
        """The queue's ``state`` is ``ACTIVE``."""
        return self.state == ACTIVE

    @property
    def is_offline(self) -> bool:
        """The queue's ``status`` is ``offline``."""
        return self.status.lower() == "offline"

    @property
    def timefloor_seconds(self) -> int:
        """``timefloor`` in seconds."""
        return self.timefloor * 60

    def copytools_for(self, activity: str | Sequence[str]) -> tuple[str, ...]:
        """The copytools to try, in order, for an activity.

        The activity's fallback chain (see :mod:`pilotlib.info.activities`) is looked up in ``acopytools``; the
        first activity with a non-empty list wins; then ``acopytools["default"]``; then the names in ``copytools``.

        Raises:
            NoCopytoolError: nothing is configured (UNKNOWNCOPYTOOL).
        """
        chain = copytool_chain(activity)
        for name in chain:
            tools = self.acopytools.get(name)
            if tools:
                return tools
        if self.copytools:
            return tuple(self.copytools)
        raise NoCopytoolError(
            f"queue {self.name}: no copytool for activity {'/'.join(chain)} "
            f"(acopytools has {sorted(self.acopytools) or 'nothing'}, copytools is empty)"
        )

    def storages_for(self, activity: str | Sequence[str]) -> tuple[str, ...]:
        """The storages (DDM endpoints) for an activity, first choice first, from ``astorages``.

        Raises:
            NoStorageError: no storage is defined for the activity or its fallbacks (NOSTORAGE).
        """
        chain = storage_chain(activity)
        for name in chain:
            storages = self.astorages.get(name)
            if storages:
                return storages
        raise NoStorageError(
            f"queue {self.name}: no storage for activity {'/'.join(chain)} "
            f"(astorages has {sorted(self.astorages) or 'nothing'})"
        )


def parse_queue(data: object) -> QueueDescription:
    """Build a :class:`QueueDescription` from a decoded queue description.

    Args:
        data: the JSON object of one queue (as CRIC or PanDA's cache serve it).

    Raises:
        BadQueuedataError: ``data`` is not an object, has no name, or a field has the wrong type (QUEUEDATANOTOK).
    """
    if not isinstance(data, Mapping):
        raise BadQueuedataError(f"a queue description must be a JSON object, not {type(data).__name__}")
    raw = {str(k): val for k, val in data.items()}
    name_key, name = v.first_present(raw, _NAME_KEYS)
    name_text = v.to_str(name, name_key or "nickname")
    if not name_text:
        raise BadQueuedataError(f"a queue description needs a name ({'/'.join(_NAME_KEYS)}); fields: {sorted(raw)}")
    site_key, site = v.first_present(raw, _SITE_KEYS)
    fields = {
        "name": name_text,
        "resource": v.to_str(raw.get("panda_resource"), "panda_resource"),
        "site": v.to_str(site, site_key or "site"),
        **_strings(raw),
        **_integers(raw),
        **_flags(raw),
        **_structures(raw),
        **_containers(raw),
    }
    used = set(fields) | set(_NAME_KEYS) | set(_SITE_KEYS) | {"panda_resource", "zip_time_gap"}
    extra = {key: val for key, val in raw.items() if key not in used}
    return QueueDescription(**fields, extra=v.frozen_mapping(extra, "queue"))  # type: ignore[arg-type]


def _strings(raw: Mapping[str, object]) -> dict[str, str]:
    names = ("state", "status", "type", "resource_type", "catchall", "environ")
    return {name: v.to_str(raw.get(name), name) for name in names}


def _integers(raw: Mapping[str, object]) -> dict[str, int]:
    names = ("maxwdir", "maxrss", "maxinputsize", "maxtime", "timefloor", "pledgedcpu")
    values = {name: v.to_int(raw.get(name), name) for name in names}
    values["corecount"] = v.to_int(raw.get("corecount"), "corecount") or 1
    values["es_stageout_gap"] = v.to_int(raw.get("zip_time_gap"), "zip_time_gap")
    return values


def _flags(raw: Mapping[str, object]) -> dict[str, bool]:
    defaults = {
        "direct_access_lan": False,
        "direct_access_wan": False,
        "allow_lan": True,
        "allow_wan": False,
        "is_cvmfs": True,
        "use_pcache": False,
    }
    return {name: v.to_bool(raw.get(name), name, default) for name, default in defaults.items()}


def _structures(raw: Mapping[str, object]) -> dict[str, object]:
    return {
        "copytools": v.frozen_mapping(raw.get("copytools"), "copytools"),
        "acopytools": v.to_names_by_key(raw.get("acopytools"), "acopytools"),
        "astorages": v.to_names_by_key(raw.get("astorages"), "astorages"),
        "aprotocols": v.frozen_mapping(raw.get("aprotocols"), "aprotocols"),
        "params": v.frozen_mapping(raw.get("params"), "params"),
    }


def _containers(raw: Mapping[str, object]) -> dict[str, object]:
    types: dict[str, str] = {}
    for entry in v.to_str(raw.get("container_type"), "container_type").split(";"):
        parts = entry.split(":")
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            types[parts[1].strip()] = parts[0].strip()
    options = v.to_str(raw.get("container_options"), "container_options")
    if options.lower() == "none":
        options = ""
    if not options:
        found = _CONTAINER_OPTION.search(v.to_str(raw.get("catchall"), "catchall"))
        options = found.group(1) if found else ""
    return {"container_type": MappingProxyType(types), "container_options": options}
