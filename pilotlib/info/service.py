"""The information service: resolves queue and storage descriptions from prioritised sources.

Resolution of a queue, as PanDAWMS/pilot3 ``pilot/info/infoservice.py`` and ``dataloader.py`` do it:

1. the sources are tried in priority order; the first that delivers a valid description wins (with ``merge=True``
   every source that delivers one contributes, higher priority winning field by field);
2. when none delivers, the stale copies of cached sources are tried, with a warning (a stale cache beats no data);
3. the overrides (per job first, then the pilot's own) are merged on top, objects merged key by key, as pilot3's
   ``merge_dict_data`` and ``JobInfoProvider`` (``overwrite_queuedata``) do;
4. the result is parsed and, unless told otherwise, refused when the queue is not ``ACTIVE`` or is ``offline``
   (pilot3 ``pilot.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from pilotlib.info.errors import (
    BadQueuedataError,
    InfoSourceError,
    NoStorageError,
    QueuedataUnavailableError,
    QueueNotActiveError,
    QueueOfflineError,
    SourceFailure,
)
from pilotlib.info.overrides import JobOverrides
from pilotlib.info.queue import QueueDescription, parse_queue
from pilotlib.info.sources import Source, StaleSource
from pilotlib.info.storage import StorageDescription, StorageProtocol, parse_storage

__all__ = ["InfoService", "merge_descriptions"]

log = logging.getLogger(__name__)

Document = Mapping[str, object]
_NAME_KEYS = ("nickname", "name", "siteid")


def merge_descriptions(base: Document, top: Document) -> dict[str, object]:
    """Merge ``top`` over ``base``: objects present in both are merged key by key, anything else is replaced."""
    merged: dict[str, object] = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_descriptions(old, value)
        else:
            merged[key] = value
    return merged


def _select_queue(doc: object, name: str) -> Document:
    """The queue's object in a document: the document itself, or its member ``name`` (CRIC's layout)."""
    if not isinstance(doc, Mapping):
        raise InfoSourceError(f"expected a JSON object, got {type(doc).__name__}")
    named = [str(doc[key]) for key in _NAME_KEYS if doc.get(key) is not None]
    if named:
        if name in named:
            return doc
        raise InfoSourceError(f"describes queue {named[0]}, not {name}")
    entry = doc.get(name)
    if isinstance(entry, Mapping):
        return entry
    if entry is not None:
        raise BadQueuedataError(f"queue {name}: the description is a {type(entry).__name__}, not a JSON object")
    raise InfoSourceError(f"has no description of queue {name}")


class InfoService:
    """Queue and storage descriptions for a pilot, with the selection helpers transfers need.

    Thread-safe. Descriptions are resolved once and kept for the life of the service (or until :meth:`refresh`).
    """

    def __init__(
        self,
        queue_sources: Sequence[Source],
        storage_sources: Sequence[Source] = (),
        *,
        pandaqueue: str | None = None,
        queue_overrides: Sequence[Mapping[str, object]] = (),
        storage_overrides: Mapping[str, Mapping[str, object]] | None = None,
        merge: bool = False,
        require_active: bool = True,
    ) -> None:
        """Create the service.

        Args:
            queue_sources: where queue descriptions come from, highest priority first.
            storage_sources: where storage descriptions (``ddmendpoints.json``) come from, highest priority first.
            pandaqueue: the pilot's own queue, used when a method is not given one.
            queue_overrides: fields to set on top of the queue description, highest priority first (per-job
                overrides, then the pilot's own, e.g. ``{"acopytools": {"pr": ["xrdcp"]}}``).
            storage_overrides: fields to set on top of storage descriptions, by storage name.
            merge: merge every source that delivers instead of taking the first.
            require_active: refuse a queue that is not ``ACTIVE`` or is ``offline``.
        """
        self.queue_sources = tuple(queue_sources)
        self.storage_sources = tuple(storage_sources)
        self.pandaqueue = pandaqueue
        self.queue_overrides = tuple(queue_overrides)
        self.storage_overrides = dict(storage_overrides or {})
        self.merge = merge
        self.require_active = require_active
        self._lock = threading.RLock()
        self._queues: dict[str, QueueDescription] = {}
        self._storage_docs: dict[str, object] | None = None
        self._storages: dict[str, StorageDescription] = {}

    def with_overrides(
        self,
        queue_overrides: Sequence[Mapping[str, object]] = (),
        storage_overrides: Mapping[str, Mapping[str, object]] | None = None,
    ) -> InfoService:
        """A service with the same sources and extra overrides above the current ones (e.g. for one job)."""
        storages = dict(self.storage_overrides)
        for name, fields in (storage_overrides or {}).items():
            storages[name] = merge_descriptions(storages.get(name, {}), fields)
        return InfoService(
            self.queue_sources,
            self.storage_sources,
            pandaqueue=self.pandaqueue,
            queue_overrides=(*queue_overrides, *self.queue_overrides),
            storage_overrides=storages,
            merge=self.merge,
            require_active=self.require_active,
        )

    def for_job(self, overrides: JobOverrides) -> InfoService:
        """A service for one job: its ``--overwriteQueueData``/``--overwriteStorageData`` above everything else."""
        queue = [overrides.queue] if overrides.queue else []
        return self.with_overrides(queue, overrides.storages)

    def refresh(self) -> None:
        """Forget the resolved descriptions; the next call resolves them again (caches still apply)."""
        with self._lock:
            self._queues.clear()
            self._storage_docs = None
            self._storages.clear()

    # -- queues -----------------------------------------------------------------------------------------------

    def queue(self, name: str | None = None) -> QueueDescription:
        """The description of a queue (the pilot's own by default).

        Raises:
            QueuedataUnavailableError: no source delivered one (QUEUEDATA); lists each source and its failure.
            BadQueuedataError: the only descriptions found were malformed (QUEUEDATANOTOK).
            QueueNotActiveError: the queue is not ``ACTIVE`` (PANDAQUEUENOTACTIVE).
            QueueOfflineError: the queue is ``offline`` (PANDAQUEUENOTONLINE).
        """
        queue = self._queue_name(name)
        with self._lock:
            desc = self._queues.get(queue)
            if desc is None:
                desc = self._resolve_queue(queue)
                self._queues[queue] = desc
        if self.require_active:
            _check_active(desc)
        return desc

    def _queue_name(self, name: str | None) -> str:
        queue = name or self.pandaqueue
        if not queue:
            raise QueuedataUnavailableError("an unnamed queue", [("InfoService", "no queue name given")])
        return queue

    def _resolve_queue(self, name: str) -> QueueDescription:
        attempts: list[SourceFailure] = []
        found: list[Document] = []
        malformed = False
        for source in self.queue_sources:
            try:
                found.append(_valid_queue(source.fetch(name), name))
            except InfoSourceError as exc:
                attempts.append((source.label, str(exc)))
                continue
            except BadQueuedataError as exc:
                attempts.append((source.label, str(exc)))
                malformed = True
                continue
            log.info("queue description obtained queue=%s source=%s", name, source.label)
            if not self.merge:
                break
        if not found:
            found = self._stale_queue(name, attempts)
        if not found:
            if malformed:
                tried = "; ".join(f"{label}: {reason}" for label, reason in attempts)
                raise BadQueuedataError(f"no valid description of queue {name} (tried {tried})")
            raise QueuedataUnavailableError(f"queue {name}", attempts)
        merged: dict[str, object] = {}
        for doc in reversed(found):
            merged = merge_descriptions(merged, doc)
        for override in reversed(self.queue_overrides):
            merged = merge_descriptions(merged, override)
        return parse_queue(merged)

    def _stale_queue(self, name: str, attempts: list[SourceFailure]) -> list[Document]:
        for source in self.queue_sources:
            if not isinstance(source, StaleSource):
                continue
            copy = source.stale(name)
            if copy is None:
                continue
            doc, age = copy
            try:
                entry = _valid_queue(doc, name)
            except (InfoSourceError, BadQueuedataError) as exc:
                attempts.append((f"stale {source.label}", str(exc)))
                continue
            log.warning(
                "queue description from stale cache queue=%s source=%s age=%.0f failures=%s",
                name, source.label, age, "; ".join(f"{label}: {reason}" for label, reason in attempts),
            )
            return [entry]
        return []

    # -- storages ---------------------------------------------------------------------------------------------

    def storage(self, name: str) -> StorageDescription:
        """The description of a storage (DDM endpoint).

        Raises:
            QueuedataUnavailableError: no storage source delivered (QUEUEDATA).
            NoStorageError: the storage is not described (NOSTORAGE).
            BadQueuedataError: its description is malformed (QUEUEDATANOTOK).
        """
        with self._lock:
            desc = self._storages.get(name)
            if desc is not None:
                return desc
            docs = self._storage_documents()
            raw = docs.get(name)
            override = self.storage_overrides.get(name)
            if raw is None and override is None:
                raise NoStorageError(f"storage {name} is not described by {[s.label for s in self.storage_sources]}")
            if raw is not None and not isinstance(raw, Mapping):
                raise BadQueuedataError(f"storage {name}: the description is a {type(raw).__name__}, not an object")
            merged = merge_descriptions(raw or {}, override or {})
            desc = parse_storage(merged, name)
            self._storages[name] = desc
            return desc

    def storage_names(self) -> tuple[str, ...]:
        """The names of every described storage."""
        with self._lock:
            return tuple(dict.fromkeys((*self._storage_documents(), *self.storage_overrides)))

    def _storage_documents(self) -> dict[str, object]:
        if self._storage_docs is None:
            self._storage_docs = self._resolve_storage_documents()
        return self._storage_docs

    def _resolve_storage_documents(self) -> dict[str, object]:
        attempts: list[SourceFailure] = []
        found: list[Document] = []
        for source in self.storage_sources:
            try:
                doc = source.fetch(self.pandaqueue or "")
            except InfoSourceError as exc:
                attempts.append((source.label, str(exc)))
                continue
            if not isinstance(doc, Mapping):
                attempts.append((source.label, f"expected a JSON object, got {type(doc).__name__}"))
                continue
            found.append(doc)
            if not self.merge:
                break
        if not found:
            found = self._stale_storages(attempts)
        if not found and not self.storage_overrides:
            raise QueuedataUnavailableError("storage descriptions", attempts)
        merged: dict[str, object] = {}
        for doc in reversed(found):
            merged = merge_descriptions(merged, doc)
        return merged

    def _stale_storages(self, attempts: list[SourceFailure]) -> list[Document]:
        for source in self.storage_sources:
            copy = source.stale(self.pandaqueue or "") if isinstance(source, StaleSource) else None
            if copy is not None and isinstance(copy[0], Mapping):
                log.warning(
                    "storage descriptions from stale cache source=%s age=%.0f failures=%s",
                    source.label, copy[1], "; ".join(f"{label}: {reason}" for label, reason in attempts),
                )
                return [copy[0]]
        return []

    # -- selection helpers ------------------------------------------------------------------------------------

    def copytools(self, activity: str | Sequence[str], queue: str | None = None) -> tuple[str, ...]:
        """The copytools to try, in order, for an activity on a queue (see :meth:`QueueDescription.copytools_for`).

        Raises:
            NoCopytoolError: none configured (UNKNOWNCOPYTOOL).
        """
        return self.queue(queue).copytools_for(activity)

    def storages(self, activity: str | Sequence[str], queue: str | None = None) -> tuple[str, ...]:
        """The storages for an activity on a queue, first choice first (see :meth:`QueueDescription.storages_for`).

        Raises:
            NoStorageError: none defined (NOSTORAGE).
        """
        return self.queue(queue).storages_for(activity)

    def protocol(
        self, storage: str, activity: str | Sequence[str], schemes: Sequence[str] | None = None
    ) -> StorageProtocol:
        """The protocol to reach a storage for an activity, optionally limited to some URL schemes.

        Raises:
            NoStorageError: the storage is not described or not ``ACTIVE`` (NOSTORAGE).
            NoStorageProtocolError: it has no fitting protocol (NOSTORAGEPROTOCOL).
        """
        desc = self.storage(storage)
        if not desc.is_active:
            raise NoStorageError(f"storage {storage} is not usable: state={desc.state}")
        return desc.protocol_for(activity, schemes)


def _valid_queue(doc: object, name: str) -> Document:
    """The queue's object from a document, checked by parsing it once."""
    entry = _select_queue(doc, name)
    parse_queue(entry)
    return entry


def _check_active(desc: QueueDescription) -> None:
    if not desc.is_active:
        raise QueueNotActiveError(f"queue {desc.name} is not active: state={desc.state or '(none)'}")
    if desc.is_offline:
        raise QueueOfflineError(f"queue {desc.name} is offline: status={desc.status}")
