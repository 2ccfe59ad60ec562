"""InfoService and file/cache sources with fake inner sources and a fake clock (unit tests, no network)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotlib.errors import ErrorCode
from pilotlib.info import (
    Activity,
    BadQueuedataError,
    CachedSource,
    FileSource,
    InfoService,
    InfoSourceError,
    NoStorageError,
    QueuedataUnavailableError,
    QueueNotActiveError,
    QueueOfflineError,
)
from pilotlib.info.sources import decode_document

from .conftest import QUEUES, FakeClock


class FakeSource:
    """A source answering from a dict, or failing; counts calls."""

    def __init__(self, label: str, doc: object = None, error: str | None = None) -> None:
        self._label = label
        self.doc = doc
        self.error = error
        self.calls = 0

    @property
    def label(self) -> str:
        return self._label

    def fetch(self, queue: str) -> object:
        self.calls += 1
        if self.error is not None:
            raise InfoSourceError(self.error)
        return self.doc


def test_first_source_in_priority_order_wins(ucore: dict[str, Any]) -> None:
    """The first source that delivers wins; later ones are not asked."""
    first = FakeSource("first", {**ucore, "maxrss": 1})
    second = FakeSource("second", ucore)
    info = InfoService([first, second], pandaqueue="CERN-PROD_UCORE")
    assert info.queue().maxrss == 1
    assert (first.calls, second.calls) == (1, 0)
    info.queue()
    assert first.calls == 1, "a resolved description is kept in memory"


def test_failed_source_falls_through(ucore: dict[str, Any]) -> None:
    """A failing source is skipped and the next one used."""
    info = InfoService([FakeSource("down", error="HTTP 503"), FakeSource("file", ucore)], pandaqueue="CERN-PROD_UCORE")
    assert info.queue().name == "CERN-PROD_UCORE"


def test_merge_mode_combines_sources(ucore: dict[str, Any]) -> None:
    """With merge=True every source contributes; higher priority wins field by field, objects key by key."""
    panda = FakeSource("panda", {"nickname": "CERN-PROD_UCORE", "maxrss": 2000, "acopytools": {"pr": ["xrdcp"]}})
    cric = FakeSource("cric", {"CERN-PROD_UCORE": ucore})
    q = InfoService([panda, cric], pandaqueue="CERN-PROD_UCORE", merge=True).queue()
    assert q.maxrss == 2000 and q.maxwdir == 16384
    assert q.acopytools["pr"] == ("xrdcp",) and q.acopytools["pw"] == ("rucio",)


def test_overrides_on_top(ucore: dict[str, Any]) -> None:
    """Overrides are merged over the source's description; per-job overrides beat the pilot's own."""
    info = InfoService(
        [FakeSource("file", ucore)],
        pandaqueue="CERN-PROD_UCORE",
        queue_overrides=[{"acopytools": {"read_lan": ["mv"]}, "maxtime": 60}],
    )
    assert info.copytools(Activity.READ) == ("mv",)
    assert info.copytools(Activity.WRITE) == ("rucio", "gfal")
    job = info.with_overrides([{"maxtime": 120, "astorages": {"pl": ["X"]}}])
    assert job.queue().maxtime == 120 and job.copytools(Activity.READ) == ("mv",)
    assert job.storages(Activity.LOG) == ("X",)
    assert info.queue().maxtime == 60, "the original service is unchanged"


def test_document_keyed_by_queue_name(ucore: dict[str, Any]) -> None:
    """A CRIC document ``{queue: {...}, other: {...}}`` yields the named queue's object."""
    doc = {"OTHER": {"nickname": "OTHER"}, "CERN-PROD_UCORE": ucore}
    assert InfoService([FakeSource("cric", doc)]).queue("CERN-PROD_UCORE").site == "CERN-PROD"


def test_every_failure_is_reported() -> None:
    """When nothing delivers, QueuedataUnavailableError (QUEUEDATA) lists each source and its reason."""
    sources = [
        FakeSource("url", error="HTTP 500 Internal Server Error"),
        FakeSource("other-queue", {"nickname": "OTHER", "state": "ACTIVE"}),
        FakeSource("all-queues", {"A": {"nickname": "A"}}),
    ]
    with pytest.raises(QueuedataUnavailableError) as info:
        InfoService(sources).queue("Q")
    assert info.value.code == ErrorCode.QUEUEDATA == 1116
    assert info.value.attempts == (
        ("url", "HTTP 500 Internal Server Error"),
        ("other-queue", "describes queue OTHER, not Q"),
        ("all-queues", "has no description of queue Q"),
    )
    assert "url: HTTP 500" in str(info.value)


def test_no_queue_name() -> None:
    """Asking without a queue name, when the service has none, is a QUEUEDATA error, not a crash."""
    with pytest.raises(QueuedataUnavailableError, match="no queue name given"):
        InfoService([FakeSource("x", {})]).queue()


def test_malformed_description_is_queuedatanotok(ucore: dict[str, Any]) -> None:
    """If the only description found is malformed, the error is BadQueuedataError (QUEUEDATANOTOK)."""
    bad = FakeSource("bad", {**ucore, "maxwdir": "huge"})
    with pytest.raises(BadQueuedataError) as info:
        InfoService([FakeSource("down", error="timeout"), bad]).queue("CERN-PROD_UCORE")
    assert info.value.code == ErrorCode.QUEUEDATANOTOK
    assert "down: timeout" in str(info.value) and "maxwdir='huge'" in str(info.value)
    assert InfoService([bad, FakeSource("good", ucore)]).queue("CERN-PROD_UCORE").maxwdir == 16384


@pytest.mark.parametrize(
    ("fields", "error", "code"),
    [
        ({"state": "DISABLED"}, QueueNotActiveError, ErrorCode.PANDAQUEUENOTACTIVE),
        ({"state": None}, QueueNotActiveError, ErrorCode.PANDAQUEUENOTACTIVE),
        ({"status": "offline"}, QueueOfflineError, ErrorCode.PANDAQUEUENOTONLINE),
    ],
)
def test_inactive_queue_is_refused(ucore: dict[str, Any], fields: dict[str, Any], error: type, code: int) -> None:
    """A queue not ACTIVE (or offline) is refused with pilot3's codes, unless require_active=False."""
    source = FakeSource("file", {**ucore, **fields})
    with pytest.raises(error) as info:
        InfoService([source]).queue("CERN-PROD_UCORE")
    assert info.value.code == code
    assert InfoService([source], require_active=False).queue("CERN-PROD_UCORE").name == "CERN-PROD_UCORE"


def test_storages_and_protocols(ucore: dict[str, Any], ddmendpoints: dict[str, Any]) -> None:
    """Storage lookups: per-activity names from the queue, protocols from the storage, overrides per storage."""
    info = InfoService(
        [FakeSource("q", ucore)],
        [FakeSource("ddm", ddmendpoints)],
        pandaqueue="CERN-PROD_UCORE",
        storage_overrides={"CERN-PROD_ES": {"state": "DISABLED"}},
    )
    ddm = info.storages(Activity.WRITE)[0]
    assert info.protocol(ddm, Activity.WRITE).url == "root://eosatlas.cern.ch:1094/eos/atlas/atlasdatadisk/rucio/"
    assert info.storage("NERSC_DATADISK").site == "NERSC"
    assert "OLD-SITE_DATADISK" in info.storage_names()
    for name, fragment in [("OLD-SITE_DATADISK", "state=DISABLED"), ("CERN-PROD_ES", "state=DISABLED"),
                           ("NOWHERE_DATADISK", "not described")]:
        with pytest.raises(NoStorageError, match=fragment) as err:
            info.protocol(name, Activity.WRITE)
        assert err.value.code == ErrorCode.NOSTORAGE


def test_storage_sources_fail() -> None:
    """No storage document from any source is a QUEUEDATA error listing the sources."""
    info = InfoService([], [FakeSource("cric", error="HTTP 404"), FakeSource("list", [1])])
    with pytest.raises(QueuedataUnavailableError) as err:
        info.storage("X")
    assert err.value.attempts == (("cric", "HTTP 404"), ("list", "expected a JSON object, got list"))


def test_file_source(tmp_path: Path) -> None:
    """A file source reads JSON files, with {pandaqueue} in the name; bad files give InfoSourceError (QUEUEDATA)."""
    source = FileSource(QUEUES / "{pandaqueue}.json")
    assert InfoService([source]).queue("CERN-PROD_UCORE").site == "CERN-PROD"
    (tmp_path / "bad.json").write_text("{truncated")
    (tmp_path / "err.json").write_text('{"error": "queue not found"}')
    (tmp_path / "list.json").write_text("[]")
    cases = {"missing.json": "No such file", "bad.json": "not JSON", "err.json": "answered an error: queue not found",
             "list.json": "expected a JSON object, got list"}
    for name, fragment in cases.items():
        with pytest.raises(InfoSourceError, match=fragment) as err:
            FileSource(tmp_path / name).fetch("Q")
        assert err.value.code == ErrorCode.QUEUEDATA
    with pytest.raises(InfoSourceError, match="unsafe queue name"):
        source.fetch("../../etc/passwd")


def test_cache_fresh_expired_and_stale(tmp_path: Path, clock: FakeClock, ucore: dict[str, Any],
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A fresh cache is served without downloading; an expired one is refreshed; a stale one saves the day."""
    inner = FakeSource("url", ucore)
    cache = CachedSource(inner, tmp_path / "cache" / "{pandaqueue}.json", ttl=100, clock=clock)
    assert InfoService([cache]).queue("CERN-PROD_UCORE").name == "CERN-PROD_UCORE"
    path = tmp_path / "cache" / "CERN-PROD_UCORE.json"
    assert json.loads(path.read_text()) == ucore
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary files left behind"
    clock.advance(99)
    InfoService([cache]).queue("CERN-PROD_UCORE")
    assert inner.calls == 1
    clock.advance(2)
    inner.doc = {**ucore, "maxrss": 7}
    assert InfoService([cache]).queue("CERN-PROD_UCORE").maxrss == 7
    assert inner.calls == 2 and json.loads(path.read_text())["maxrss"] == 7
    clock.advance(1000)
    inner.error = "HTTP 503 Service Unavailable"
    with caplog.at_level(logging.WARNING, logger="pilotlib.info"):
        q = InfoService([cache, FakeSource("file", error="missing")]).queue("CERN-PROD_UCORE")
    assert q.maxrss == 7 and inner.calls == 3
    assert "stale cache" in caplog.text and "HTTP 503" in caplog.text and "age=1000" in caplog.text


def test_corrupt_cache_is_refetched(tmp_path: Path, clock: FakeClock, ucore: dict[str, Any]) -> None:
    """A fresh but corrupt cache file is ignored and replaced by a new download."""
    path = tmp_path / "q.json"
    path.write_text('{"nickname": ')
    inner = FakeSource("url", ucore)
    assert InfoService([CachedSource(inner, path, clock=clock)]).queue("CERN-PROD_UCORE").maxwdir == 16384
    assert inner.calls == 1 and json.loads(path.read_text()) == ucore


def test_no_stale_copy_means_failure(tmp_path: Path, clock: FakeClock) -> None:
    """Without any cache file, a failing download gives QUEUEDATA naming the cached source."""
    cache = CachedSource(FakeSource("url", error="refused"), tmp_path / "q.json", clock=clock)
    with pytest.raises(QueuedataUnavailableError) as err:
        InfoService([cache]).queue("Q")
    assert err.value.attempts == ((f"url (cache {tmp_path / 'q.json'})", "refused"),)


def test_stale_storage_documents(tmp_path: Path, clock: FakeClock, ddmendpoints: dict[str, Any]) -> None:
    """Storage descriptions also fall back to a stale cache when the download fails."""
    inner = FakeSource("ddm", ddmendpoints)
    cache = CachedSource(inner, tmp_path / "ddm.json", ttl=10, clock=clock)
    InfoService([], [cache]).storage("NERSC_DATADISK")
    clock.advance(3600)
    inner.error = "down"
    assert InfoService([], [cache]).storage("CERN-PROD_ES").type == "OS_ES"
    assert inner.calls == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_decode_document_never_raises_anything_else(data: bytes | str) -> None:
    """Whatever bytes a server or file holds, decoding gives an object or InfoSourceError (QUEUEDATA)."""
    try:
        assert isinstance(decode_document(data, "x"), dict)
    except InfoSourceError as exc:
        assert exc.code == ErrorCode.QUEUEDATA
