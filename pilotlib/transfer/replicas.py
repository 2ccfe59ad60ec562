"""Input replicas: where each input file can be read, LAN before WAN, disk only.

PanDAWMS/pilot3 ``pilot/api/data.py`` (``list_replicas``/``sort_replicas``) asks Rucio's ``list_replicas`` for the
job's input DIDs and orders each file's replicas so that the queue's own storages (its input ``astorages``: LAN)
come first and the rest (WAN) after; tape replicas are not read. :class:`RucioReplicaSource` does the Rucio call;
:func:`sort_replicas` the ordering. ``rucio`` is imported only when a source is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from pilotlib.errors import Direction, ErrorCode, TransferError
from pilotlib.job import FileSpec

__all__ = [
    "DID_SCHEME",
    "NoReplicasError",
    "Replica",
    "ReplicaListError",
    "ReplicaSource",
    "RucioReplicaSource",
    "StaticReplicaSource",
    "sort_replicas",
]

log = logging.getLogger(__name__)
_E = ErrorCode

DID_SCHEME = "rucio"
"""The pseudo-scheme a copytool lists in ``schemes`` to say that it takes DIDs (``scope:lfn``) and an RSE rather
than URLs."""


class ReplicaListError(TransferError):
    """Rucio's ``list_replicas`` failed (RUCIOLISTREPLICASFAILED 1322)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (_E.RUCIOLISTREPLICASFAILED, _E.RUCIOLISTREPLICASFAILED)


class NoReplicasError(TransferError):
    """No usable (disk) replica of an input file (REPLICANOTFOUND 1100)."""

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (ErrorCode.REPLICANOTFOUND, ErrorCode.REPLICANOTFOUND)


@attrs.frozen
class Replica:
    """One copy of a file: the storage (RSE) it lies on and a URL to read it."""

    ddmendpoint: str
    url: str
    is_tape: bool = False
    priority: int = 0

    @property
    def scheme(self) -> str:
        """The URL's scheme (``root``, ``davs``, ``file``)."""
        return self.url.partition("://")[0].lower()


class ReplicaSource(Protocol):
    """Finds the replicas of input files."""

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """Replicas per DID (``scope:lfn``); a file without replicas maps to ``()`` or is absent.

        Raises:
            ReplicaListError: the catalogue could not be asked.
        """
        ...


@attrs.frozen
class StaticReplicaSource:
    """Replicas known in advance (tests, pre-placed inputs): ``{did: (Replica, ...)}``."""

    replicas: Mapping[str, tuple[Replica, ...]]

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """The known replicas of ``files``."""
        return {f.did: self.replicas.get(f.did, ()) for f in files}


def sort_replicas(replicas: Iterable[Replica], local_storages: Collection[str]) -> tuple[Replica, ...]:
    """Disk replicas only, the queue's own storages (LAN) first, each group by priority then as listed."""
    disk = [r for r in replicas if not r.is_tape]
    lan = [r for r in disk if r.ddmendpoint in local_storages]
    wan = [r for r in disk if r.ddmendpoint not in local_storages]
    return tuple(sorted(lan, key=lambda r: r.priority) + sorted(wan, key=lambda r: r.priority))


class RucioReplicaSource:
    """Replicas from Rucio's ``list_replicas``.

    Args:
        client_factory: builds a ``rucio.client.Client``.
        schemes: URL schemes to ask for (None: all).
    """

    def __init__(self, client_factory: Callable[[], object], schemes: Sequence[str] | None = None) -> None:
        self._client_factory = client_factory
        self._schemes = list(schemes) if schemes else None

    def list_replicas(self, files: Sequence[FileSpec]) -> Mapping[str, tuple[Replica, ...]]:
        """One bulk call for all ``files``.

        Raises:
            ReplicaListError: Rucio could not be asked (RUCIOLISTREPLICASFAILED).
        """
        dids = [{"scope": f.scope, "name": f.lfn} for f in files]
        try:
            client: Any = self._client_factory()
            answer = list(client.list_replicas(dids, schemes=self._schemes, ignore_availability=False))
            found = {f"{item['scope']}:{item['name']}": _replicas_of(item) for item in answer}
        except Exception as exc:  # any rucio/requests failure or a malformed answer: translated once, here
            raise ReplicaListError(
                f"list_replicas failed for {len(dids)} files: {type(exc).__name__}: {exc}", Direction.STAGE_IN
            ) from exc
        log.info("replicas listed files=%d found=%d", len(dids), sum(1 for v in found.values() if v))
        return found


def _replicas_of(item: Mapping[str, Any]) -> tuple[Replica, ...]:
    out = []
    for url, meta in (item.get("pfns") or {}).items():
        out.append(
            Replica(
                ddmendpoint=str(meta.get("rse", "")),
                url=str(url),
                is_tape=str(meta.get("type", "DISK")).upper() == "TAPE",
                priority=int(meta.get("priority") or 0),
            )
        )
    return tuple(out)
