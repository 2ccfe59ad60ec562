"""The information service against the local PanDA server over real HTTP(S): priority, caching, expiry, stale
fallback, every error path."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode, error_for_signal
from pilotlib.info import (
    Activity,
    BadQueuedataError,
    CachedSource,
    FileSource,
    InfoService,
    InfoSourceError,
    QueuedataUnavailableError,
    QueueDescription,
    QueueNotActiveError,
    UrlSource,
)
from pilotlib.stop import Stop

from .conftest import QUEUES, FakeClock, load_example

pytestmark = pytest.mark.integration

QUEUE = "CERN-PROD_UCORE"


@pytest.fixture
def server(panda_server: DevServer) -> DevServer:
    """The local PanDA server (clean faults and counts) serving the example queues and storages."""
    for name in ("CERN-PROD_UCORE", "NERSC_Perlmutter"):
        panda_server.add_queue(name, load_example(f"{name}.json"))
    for name, storage in load_example("ddmendpoints.json").items():
        panda_server.add_storage(name, storage)
    return panda_server


def queue_url(server: DevServer) -> UrlSource:
    """A source for PanDA's per-queue cache URL, with a short timeout."""
    return UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.all.json", timeout=5)


def test_queue_and_storages_over_http(server: DevServer) -> None:
    """The service downloads the queue and ddmendpoints.json and answers the selection questions."""
    info = InfoService(
        [queue_url(server)],
        [UrlSource(server.url + "/cache/ddmendpoints.json", timeout=5)],
        pandaqueue=QUEUE,
    )
    assert info.copytools(Activity.READ) == ("rucio", "xrdcp")
    assert info.storages(Activity.LOG) == ("CERN-PROD_SCRATCHDISK",)
    assert info.protocol("CERN-PROD_SCRATCHDISK", Activity.LOG, ["davs"]).url == (
        "davs://eosatlas.cern.ch:443/eos/atlas/atlasscratchdisk/rucio/"
    )
    info.copytools(Activity.WRITE)
    info.storage("CERN-PROD_ES")
    assert server.request_count("schedconfig") == 1
    assert server.request_count("ddmendpoints") == 1


def test_cric_style_url(server: DevServer) -> None:
    """The ``{queue}.json`` endpoint works as well (the object, or CRIC's ``{queue: object}``)."""
    source = UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.json", timeout=5)
    assert InfoService([source]).queue("NERSC_Perlmutter").copytools_for(Activity.READ) == ("mv",)


def test_priority_url_then_shipped_file(server: DevServer) -> None:
    """An unknown queue (404) on the URL falls through to the shipped file; the reverse order never asks the URL."""
    shipped = FileSource(QUEUES / "{pandaqueue}.json")
    info = InfoService([queue_url(server), shipped])
    assert info.queue("NERSC_Perlmutter").maxwdir == 100000
    server.clear()
    assert InfoService([shipped, queue_url(server)]).queue(QUEUE).name == QUEUE
    assert server.request_count("schedconfig") == 0
    with pytest.raises(QueuedataUnavailableError) as err:
        InfoService([queue_url(server), shipped]).queue("NO_SUCH_QUEUE")
    assert err.value.attempts[0][1].split(": ", 1)[1].startswith("HTTP 404")
    assert "No such file" in err.value.attempts[1][1]


def test_cache_ttl_and_expiry(server: DevServer, tmp_path: Path, clock: FakeClock) -> None:
    """Within the TTL a new service reads the cache file (no request); after it, it downloads again."""
    cached = CachedSource(queue_url(server), tmp_path / "queuedata.{pandaqueue}.json", clock=clock)
    InfoService([cached]).queue(QUEUE)
    assert server.request_count("schedconfig") == 1
    clock.advance(3 * 3600 - 1)
    InfoService([cached]).queue(QUEUE)
    assert server.request_count("schedconfig") == 1
    clock.advance(2)
    InfoService([cached]).queue(QUEUE)
    assert server.request_count("schedconfig") == 2
    assert (tmp_path / f"queuedata.{QUEUE}.json").exists()


@pytest.mark.parametrize("kind", ["http500", "http503", "garbage", "drop"])
def test_stale_cache_when_every_source_fails(
    server: DevServer, tmp_path: Path, clock: FakeClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired cache is used, with a warning naming the failure, when the server fails and nothing else works."""
    cached = CachedSource(queue_url(server), tmp_path / "q.json", ttl=60, clock=clock)
    InfoService([cached]).queue(QUEUE)
    clock.advance(600)
    server.inject_fault(call="schedconfig", kind=kind, times=1)
    with caplog.at_level(logging.WARNING, logger="pilotlib.info"):
        q = InfoService([cached, FileSource(tmp_path / "absent.json")]).queue(QUEUE)
    assert q.name == QUEUE
    assert server.request_count("schedconfig") == 2
    assert "stale cache" in caplog.text and "age=600" in caplog.text


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("http500", "HTTP 500"),
        ("http503", "HTTP 503"),
        ("garbage_html", "not JSON"),
        ("garbage_json", "not JSON"),
        ("drop", "ConnectionError"),
    ],
)
def test_error_paths_name_the_failure(server: DevServer, kind: str, fragment: str) -> None:
    """Each server failure becomes a QUEUEDATA error whose attempts say what happened at which URL."""
    server.inject_fault(call="schedconfig", kind=kind, times=1)
    with pytest.raises(QueuedataUnavailableError) as err:
        InfoService([queue_url(server)]).queue(QUEUE)
    assert err.value.code == ErrorCode.QUEUEDATA
    (label, reason), = err.value.attempts
    assert label.endswith("/cache/schedconfig/{pandaqueue}.all.json")
    assert fragment in reason and f"/cache/schedconfig/{QUEUE}.all.json" in reason


def test_timeout_is_a_source_failure(server: DevServer) -> None:
    """A server slower than the timeout is a failure of that source; the next source answers."""
    server.inject_fault(call="schedconfig", kind="delay", times=1, seconds=3.0)
    slow = UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.all.json", timeout=0.5)
    with pytest.raises(InfoSourceError, match=r"no whole answer within 0\.5 s") as err:
        slow.fetch(QUEUE)
    assert err.value.code == ErrorCode.QUEUEDATA
    assert InfoService([slow, queue_url(server)]).queue(QUEUE).name == QUEUE


def test_a_trickling_answer_is_cut_off_at_the_timeout(server: DevServer) -> None:
    """A server that sends its answer a byte every 0.2 s holds a download no longer than the source's timeout in all
    (before, the timeout bounded each read: such a server held the pilot's start as long as it liked)."""
    server.inject_fault(call="schedconfig", kind="trickle", times=1, seconds=0.2)
    slow = UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.all.json", timeout=1.0)
    begin = time.monotonic()
    with pytest.raises(InfoSourceError, match="no whole answer within 1 s") as err:
        slow.fetch(QUEUE)
    assert time.monotonic() - begin < 4.0
    assert err.value.code == ErrorCode.QUEUEDATA


def test_the_stop_ends_a_download_under_way(server: DevServer) -> None:
    """The pilot's stop (a SIGTERM during the start) ends a queue download that the server holds, at once."""
    server.inject_fault(call="schedconfig", kind="hang", times=1, seconds=30.0)
    stop = Stop()
    threading.Timer(0.3, stop.set, args=(error_for_signal(15),)).start()
    source = UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.all.json", timeout=60, stop=stop)
    begin = time.monotonic()
    try:
        with pytest.raises(InfoSourceError, match="the pilot is stopping"):
            source.fetch(QUEUE)
        assert time.monotonic() - begin < 3.0
    finally:
        server.faults.clear()


def test_malformed_and_inactive_queues(server: DevServer) -> None:
    """A malformed description is QUEUEDATANOTOK; a DISABLED queue is PANDAQUEUENOTACTIVE."""
    server.add_queue("BAD_Q", {"nickname": "BAD_Q", "state": "ACTIVE", "acopytools": ["rucio"]})
    server.add_queue("OFF_Q", {"nickname": "OFF_Q", "state": "DISABLED"})
    with pytest.raises(BadQueuedataError) as bad:
        InfoService([queue_url(server)]).queue("BAD_Q")
    assert bad.value.code == ErrorCode.QUEUEDATANOTOK and "acopytools" in str(bad.value)
    with pytest.raises(QueueNotActiveError) as off:
        InfoService([queue_url(server)]).queue("OFF_Q")
    assert off.value.code == ErrorCode.PANDAQUEUENOTACTIVE and "state=DISABLED" in str(off.value)


def test_storage_download_failure(server: DevServer) -> None:
    """A failing ddmendpoints.json download is a QUEUEDATA error naming the URL."""
    server.inject_fault(call="ddmendpoints", kind="http500", times=1)
    info = InfoService([], [UrlSource(server.url + "/cache/ddmendpoints.json", timeout=5)])
    with pytest.raises(QueuedataUnavailableError, match=r"ddmendpoints\.json: HTTP 500") as err:
        info.storage("CERN-PROD_DATADISK")
    assert err.value.code == ErrorCode.QUEUEDATA


def test_tls_verified_by_default(panda_server_tls: DevServer) -> None:
    """Over HTTPS the server's certificate is verified: unknown CA fails, the right CA directory succeeds."""
    panda_server_tls.add_queue(QUEUE, load_example(f"{QUEUE}.json"))
    url = panda_server_tls.url + "/cache/schedconfig/{pandaqueue}.all.json"
    with pytest.raises(QueuedataUnavailableError, match="SSLError"):
        InfoService([UrlSource(url, timeout=5)]).queue(QUEUE)
    assert panda_server_tls.ca_dir is not None
    trusted = UrlSource(url, timeout=5, verify=str(panda_server_tls.ca_dir))
    assert InfoService([trusted]).queue(QUEUE).name == QUEUE


def test_shared_session_is_used(server: DevServer) -> None:
    """A given requests session carries the requests (e.g. a client certificate set on it)."""
    session = requests.Session()
    session.headers["User-Agent"] = "pilotlib-test"
    calls: list[str] = []
    session.hooks["response"].append(lambda r, *a, **k: calls.append(r.url))
    source = UrlSource(server.url + "/cache/schedconfig/{pandaqueue}.all.json", session=session, timeout=5)
    assert InfoService([source]).queue(QUEUE).name == QUEUE
    assert calls == [f"{server.url}/cache/schedconfig/{QUEUE}.all.json"]




def test_credentials_in_url_never_shown(server: DevServer, caplog: pytest.LogCaptureFixture) -> None:
    """A user:password in the URL never appears in errors or logs."""
    url = server.url.replace("http://", "http://pilot:s3cr3t@") + "/cache/schedconfig/{pandaqueue}.all.json"
    server.inject_fault(call="schedconfig", kind="drop", times=1)
    source = UrlSource(url, timeout=5)
    with caplog.at_level(logging.DEBUG, logger="pilotlib.info"), pytest.raises(QueuedataUnavailableError) as err:
        InfoService([source]).queue(QUEUE)
    assert "s3cr3t" not in str(err.value) and "s3cr3t" not in caplog.text and "s3cr3t" not in source.label
    assert "***@127.0.0.1" in str(err.value)
    with caplog.at_level(logging.DEBUG, logger="pilotlib.info"):
        assert InfoService([source]).queue(QUEUE).name == QUEUE
    assert "s3cr3t" not in caplog.text and "info downloaded" in caplog.text


def test_oversized_answer_is_refused(server: DevServer) -> None:
    """An answer larger than max_bytes is a failure of that source, not a memory problem."""
    source = UrlSource(server.url + "/cache/ddmendpoints.json", timeout=5, max_bytes=1000)
    with pytest.raises(InfoSourceError, match="answer larger than 1000 bytes") as err:
        source.fetch(QUEUE)
    assert err.value.code == ErrorCode.QUEUEDATA


def test_concurrent_callers_share_one_download(server: DevServer) -> None:
    """Threads asking one service at once get the same description from a single download."""
    server.inject_fault(call="schedconfig", kind="delay", times=1, seconds=0.3)
    info = InfoService([queue_url(server)], pandaqueue=QUEUE)
    barrier = threading.Barrier(8)

    def ask() -> QueueDescription:
        barrier.wait()
        return info.queue()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask(), range(8)))
    assert all(r is results[0] for r in results)
    assert server.request_count("schedconfig") == 1
