"""The information service: how the pilot's PanDA queue and its storages are configured.

Build an :class:`InfoService` from sources in priority order and ask it::

    from pilotlib.info import CachedSource, FileSource, InfoService, UrlSource

    info = InfoService(
        queue_sources=[
            CachedSource(UrlSource("https://panda:25085/cache/schedconfig/{pandaqueue}.all.json"),
                         cache_dir / "queuedata.{pandaqueue}.json"),
            FileSource(shipped_dir / "queues.json"),
        ],
        storage_sources=[CachedSource(UrlSource(cric + "/cache/ddmendpoints.json"), cache_dir / "ddm.json")],
        pandaqueue="CERN-PROD",
    )
    info.copytools(Activity.READ)                   # ("rucio",)
    ddm = info.storages(Activity.WRITE)[0]
    info.protocol(ddm, Activity.WRITE).url          # "root://eos.cern.ch:1094/eos/atlas/..."
"""

from pilotlib.info.activities import Activity, copytool_chain, protocol_chain, storage_chain
from pilotlib.info.errors import (
    BadQueuedataError,
    InfoSourceError,
    NoCopytoolError,
    NoStorageError,
    NoStorageProtocolError,
    QueuedataUnavailableError,
    QueueNotActiveError,
    QueueOfflineError,
    SourceFailure,
)
from pilotlib.info.overrides import JobOverrides, extract_overrides
from pilotlib.info.queue import ACTIVE, QueueDescription, parse_queue
from pilotlib.info.service import InfoService, merge_descriptions
from pilotlib.info.sources import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TTL,
    CachedSource,
    Clock,
    FileSource,
    Source,
    StaleSource,
    UrlSource,
    redact_url,
)
from pilotlib.info.storage import StorageDescription, StorageProtocol, parse_storage, parse_storages

__all__ = [
    "ACTIVE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TTL",
    "Activity",
    "BadQueuedataError",
    "CachedSource",
    "Clock",
    "FileSource",
    "InfoService",
    "InfoSourceError",
    "JobOverrides",
    "NoCopytoolError",
    "NoStorageError",
    "NoStorageProtocolError",
    "QueueDescription",
    "QueueNotActiveError",
    "QueueOfflineError",
    "QueuedataUnavailableError",
    "Source",
    "SourceFailure",
    "StaleSource",
    "StorageDescription",
    "StorageProtocol",
    "UrlSource",
    "copytool_chain",
    "extract_overrides",
    "merge_descriptions",
    "parse_queue",
    "parse_storage",
    "parse_storages",
    "protocol_chain",
    "redact_url",
    "storage_chain",
]
