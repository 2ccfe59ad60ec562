"""The description of a storage (DDM endpoint) as a frozen value, and its parser.

Fields follow PanDAWMS/pilot3 ``pilot/info/storagedata.py`` (``StorageData``: ``pk`` from ``id``, ``name``,
``type``, ``token``, ``is_deterministic``, ``state``, ``site``, ``arprotocols``). ``arprotocols`` maps a DDM
activity (``read_lan``, ``write_wan``, ...) to a list of protocol objects ``{endpoint, path, flavour, id}``, where
``endpoint`` is ``scheme://host[:port]``; pilot3 (``pilot/api/data.py``, ``resolve_protocols``/``resolve_surl``)
takes the first protocol of the first activity that has one, filtered by allowed schemes, and builds a file's
URL as ``endpoint + path + ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from urllib.parse import urlsplit

import attrs

from pilotlib.info import _values as v
from pilotlib.info.activities import protocol_chain
from pilotlib.info.errors import BadQueuedataError, NoStorageProtocolError

__all__ = ["StorageDescription", "StorageProtocol", "parse_storage", "parse_storages"]


@attrs.frozen
class StorageProtocol:
    """One way to reach a storage.

    Attributes:
        endpoint: ``scheme://host[:port]`` as given.
        scheme: ``root``, ``davs``, ``https``, ``srm``, ``file``, ...
        host: the host name (empty for ``file``).
        port: the port, ``None`` when the endpoint names none.
        path: the path prefix on the storage (``/eos/atlas/atlasdatadisk/rucio/``).
        flavour: CRIC's protocol flavour (``XROOTD``, ``WEBDAV``, ...).
        id: CRIC's protocol id, ``None`` when absent.
    """

    endpoint: str
    scheme: str
    host: str
    port: int | None
    path: str
    flavour: str = ""
    id: int | None = None

    @property
    def url(self) -> str:
        """The base URL of the storage area: ``endpoint`` followed by ``path``."""
        return self.endpoint + self.path


@attrs.frozen
class StorageDescription:
    """How a storage (DDM endpoint) is configured.

    Attributes:
        name: the DDM endpoint name (``CERN-PROD_DATADISK``).
        type: the storage type (``DATADISK``, ``SCRATCHDISK``, ``OS_ES``, ...).
        is_deterministic: file paths follow the deterministic Rucio layout; ``None`` when not given.
        state: the CRIC state, ``ACTIVE`` for a usable storage.
        site: the experiment site.
        token: the space token.
        pk: CRIC's numeric id (``id``), 0 when absent.
        arprotocols: protocols per DDM activity.
        extra: every other field, unchanged (deep-frozen), e.g. ``rprotocols``, ``resource``.
    """

    name: str
    type: str = ""
    is_deterministic: bool | None = None
    state: str = ""
    site: str = ""
    token: str = ""
    pk: int = 0
    arprotocols: Mapping[str, tuple[StorageProtocol, ...]] = attrs.field(factory=lambda: MappingProxyType({}))
    extra: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    def is_active(self) -> bool:
        """The storage's state is ``ACTIVE`` (or not given)."""
        return self.state in ("", "ACTIVE")

    def protocols_for(self, activity: str | Sequence[str]) -> tuple[StorageProtocol, ...]:
        """The protocols of the first activity in the activity's chain that has any (empty if none)."""
        for name in protocol_chain(activity):
            protocols = self.arprotocols.get(name)
            if protocols:
                return protocols
        return ()

    def protocol_for(self, activity: str | Sequence[str], schemes: Sequence[str] | None = None) -> StorageProtocol:
        """The protocol to use for an activity, optionally limited to some schemes (in order of preference).

        The activities of the chain are tried in order (LAN before WAN); within one, the schemes in order. Unlike
        pilot3, which filters only the first activity that has protocols, a scheme missing on the LAN protocols is
        looked for on the WAN ones before giving up.

        Raises:
            NoStorageProtocolError: none fits (NOSTORAGEPROTOCOL).
        """
        activities = protocol_chain(activity)
        for name in activities:
            protocols = self.arprotocols.get(name, ())
            for scheme in schemes or (None,):
                for protocol in protocols:
                    if scheme is None or protocol.scheme == scheme:
                        return protocol
        chain = "/".join(activities)
        offered = sorted({p.scheme for name in activities for p in self.arprotocols.get(name, ())})
        raise NoStorageProtocolError(
            f"storage {self.name}: no protocol for activity {chain}"
            + (f" with scheme in {list(schemes)} (has {offered})" if schemes else "")
        )


def parse_storage(data: object, name: str | None = None) -> StorageDescription:
    """Build a :class:`StorageDescription` from a decoded storage description.

    Args:
        data: the JSON object of one storage.
        name: its name when the object does not carry one (the key in ``ddmendpoints.json``).

    Raises:
        BadQueuedataError: not an object, no name, or a field of the wrong type (QUEUEDATANOTOK).
    """
    if not isinstance(data, Mapping):
        raise BadQueuedataError(f"storage {name}: a description must be a JSON object, not {type(data).__name__}")
    raw = {str(k): val for k, val in data.items()}
    label = v.to_str(raw.get("name"), "name") or (name or "")
    if not label:
        raise BadQueuedataError(f"a storage description needs a name; fields: {sorted(raw)}")
    known = {"name", "type", "is_deterministic", "state", "site", "token", "id", "arprotocols"}
    extra = {key: val for key, val in raw.items() if key not in known}
    return StorageDescription(
        name=label,
        type=v.to_str(raw.get("type"), f"{label}.type"),
        is_deterministic=_optional_bool(raw.get("is_deterministic"), f"{label}.is_deterministic"),
        state=v.to_str(raw.get("state"), f"{label}.state"),
        site=v.to_str(raw.get("site"), f"{label}.site"),
        token=v.to_str(raw.get("token"), f"{label}.token"),
        pk=v.to_int(raw.get("id"), f"{label}.id"),
        arprotocols=_arprotocols(raw.get("arprotocols"), f"{label}.arprotocols"),
        extra=v.frozen_mapping(extra, label),
    )


def parse_storages(data: object) -> dict[str, StorageDescription]:
    """Parse a ``ddmendpoints.json`` document: an object of storage descriptions by name.

    Raises:
        BadQueuedataError: not an object of objects, or one description is bad (QUEUEDATANOTOK).
    """
    if not isinstance(data, Mapping):
        raise BadQueuedataError(f"storage descriptions must be a JSON object by name, not {type(data).__name__}")
    return {str(key): parse_storage(value, str(key)) for key, value in data.items()}


def _optional_bool(raw: object, field: str) -> bool | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "null", "none")):
        return None
    return v.to_bool(raw, field, False)


def _arprotocols(raw: object, field: str) -> Mapping[str, tuple[StorageProtocol, ...]]:
    result: dict[str, tuple[StorageProtocol, ...]] = {}
    for activity, entries in v.to_mapping(raw, field).items():
        if entries is None:
            continue
        if not isinstance(entries, list | tuple):
            raise BadQueuedataError(f"field {field}.{activity}: expected a list of protocol objects")
        result[activity] = tuple(_protocol(entry, f"{field}.{activity}") for entry in entries)
    return MappingProxyType(result)


def _protocol(raw: object, field: str) -> StorageProtocol:
    if not isinstance(raw, Mapping):
        raise BadQueuedataError(f"field {field}: a protocol must be an object, not {type(raw).__name__}")
    endpoint = v.to_str(raw.get("endpoint"), f"{field}.endpoint")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:  # a bad port, or "[" in the host ("Invalid IPv6 URL"): found by tests/fuzz
        raise BadQueuedataError(f"field {field}.endpoint={endpoint!r}: bad port or host ({exc})") from exc
    if not parts.scheme:
        raise BadQueuedataError(f"field {field}.endpoint={endpoint!r}: expected scheme://host[:port]")
    return StorageProtocol(
        endpoint=endpoint,
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=port,
        path=v.to_str(raw.get("path"), f"{field}.path"),
        flavour=v.to_str(raw.get("flavour"), f"{field}.flavour"),
        id=None if raw.get("id") is None else v.to_int(raw.get("id"), f"{field}.id"),
    )
