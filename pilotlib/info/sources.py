"""Where descriptions come from: a URL, a file, and a time-to-live cache in front of either.

A source has one method, ``fetch(queue)``, returning the decoded JSON document (an object) or raising
:class:`~pilotlib.info.errors.InfoSourceError` with the reason. URL and file templates may contain
``{pandaqueue}`` (as pilot3's ``pilot/util/default.cfg`` [Information] ``queuedata_url``/``queues_url`` do);
storage documents (``ddmendpoints.json``) do not depend on the queue.

A :class:`CachedSource` keeps the last good download in a file (written atomically: temporary file, then rename),
serves it while it is younger than its time to live (3 hours by default, as pilot3's ``pilot/info/extinfo.py``),
and offers it again, however old, through :meth:`CachedSource.stale` when every source has failed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import quote

from pilotlib._atomic import write_atomic
from pilotlib._bounded import Cancelled, bounded_call, tracked_session
from pilotlib._redact import redact_url
from pilotlib._tls import tls_verify
from pilotlib.info.errors import InfoSourceError
from pilotlib.stop import StopSignal

if TYPE_CHECKING:  # imported on first download: a pilot reading only files never loads requests
    import requests

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TTL",
    "CachedSource",
    "Clock",
    "FileSource",
    "Source",
    "StaleSource",
    "UrlSource",
    "redact_url",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 3 * 3600.0
"""Seconds a downloaded description stays fresh (production pilots use 3 hours)."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""The largest document a :class:`UrlSource` accepts (CRIC's full ``ddmendpoints.json`` is tens of MB)."""

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch (``time.time``); injectable for tests."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
_PLACEHOLDER = "{pandaqueue}"


@runtime_checkable
class Source(Protocol):
    """A place a description document can be read from."""

    @property
    def label(self) -> str:
        """A short description for logs and errors (a URL or a path)."""
        ...

    def fetch(self, queue: str) -> object:
        """The decoded JSON document (a JSON object) for ``queue``.

        Raises:
            InfoSourceError: the document could not be obtained; the message says why.
        """
        ...


@runtime_checkable
class StaleSource(Protocol):
    """A source that can offer an expired copy when nothing better is available."""

    def stale(self, queue: str) -> tuple[object, float] | None:
        """The last good document for ``queue`` and its age in seconds, or ``None``."""
        ...


def _fill_path(template: str, queue: str) -> Path:
    if _PLACEHOLDER in template:
        if not _SAFE_NAME.fullmatch(queue):
            raise InfoSourceError(f"unsafe queue name {queue!r} for a file name")
        template = template.replace(_PLACEHOLDER, queue)
    return Path(template)


def decode_document(text: bytes | str, label: str) -> dict[str, object]:
    """Decode a description document and check that it is a JSON object without an ``error`` member.

    PanDA and CRIC answer errors with ``{"error": ...}``; pilot3 (``pilot/info/dataloader.py``) refuses those too.

    Raises:
        InfoSourceError: not JSON, not an object, or an error answer.
    """
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InfoSourceError(f"{label}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InfoSourceError(f"{label}: expected a JSON object, got {type(doc).__name__}")
    if "error" in doc:
        raise InfoSourceError(f"{label}: the source answered an error: {str(doc['error'])[:200]}")
    return doc


class UrlSource:
    """Downloads a document over HTTP(S) with ``requests``; TLS certificates are verified by default."""

    def __init__(
        self,
        url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        verify: bool | str = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        stop: StopSignal | None = None,
    ) -> None:
        """Create the source.

        Args:
            url: the URL, optionally with ``{pandaqueue}`` (e.g. ``https://host/cache/schedconfig/{pandaqueue}.all.json``).
            session: a session to reuse (client certificate, proxies); a new one when ``None``.
            timeout: seconds the whole download may take (connect, reads, a server that trickles its answer).
            verify: ``True``, ``False`` (with a warning) or the path of a CA bundle or directory, which must exist.
            max_bytes: the largest document accepted (a longer answer is a failure of this source).
            stop: the pilot's stop: a download under way ends at once when it is set.

        Raises:
            CaPathError: ``verify`` names a CA path that is empty or does not exist.
        """
        self.url = url
        self.session = session
        self.stop = stop
        self.timeout = timeout
        self.verify = tls_verify(verify, what=f"the description source {redact_url(url)}")
        self.max_bytes = max_bytes

    @property
    def label(self) -> str:
        """The URL template, without any user name or password it may carry."""
        return redact_url(self.url)

    def fetch(self, queue: str) -> object:
        """Download and decode the document for ``queue``.

        Raises:
            InfoSourceError: connection failure, timeout, HTTP status other than 200, or a bad document.
        """
        import requests  # noqa: PLC0415 - lazy, see the module imports

        url = self.url.replace(_PLACEHOLDER, quote(queue, safe=""))
        shown = redact_url(url)
        session = tracked_session(self.session)

        def download() -> bytes:
            with session.get(url, timeout=self.timeout, verify=self.verify, stream=True) as answer:
                if answer.status_code != 200:
                    raise InfoSourceError(f"{shown}: HTTP {answer.status_code} {answer.reason}")
                return self._read(answer, shown)

        try:
            body = bounded_call(download, self.timeout, self.stop, "info-download")
        except Cancelled as exc:
            why = "the pilot is stopping" if exc.stopped else f"no whole answer within {self.timeout:g} s"
            raise InfoSourceError(f"{shown}: {why}") from exc
        except requests.RequestException as exc:
            reason = str(exc).replace(url, shown)
            raise InfoSourceError(f"{shown}: {type(exc).__name__}: {reason}") from exc
        log.debug("info downloaded url=%s bytes=%d", shown, len(body))
        return decode_document(body, shown)

    def _read(self, answer: requests.Response, shown: str) -> bytes:
        body = bytearray()
        for chunk in answer.iter_content(chunk_size=1 << 16):
            body += chunk
            if len(body) > self.max_bytes:
                raise InfoSourceError(f"{shown}: answer larger than {self.max_bytes} bytes")
        return bytes(body)


class FileSource:
    """Reads a document from a file (shipped with the pilot, given to it, or on a shared file system)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Create the source.

        Args:
            path: the file, optionally with ``{pandaqueue}`` in its name.
        """
        self.path = os.fspath(path)

    @property
    def label(self) -> str:
        """The path template."""
        return self.path

    def fetch(self, queue: str) -> object:
        """Read and decode the file.

        Raises:
            InfoSourceError: missing or unreadable file, or a bad document.
        """
        path = _fill_path(self.path, queue)
        return _read_document(path)


def _read_document(path: Path) -> dict[str, object]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InfoSourceError(f"{path}: {exc.strerror or exc}") from exc
    return decode_document(data, str(path))


class CachedSource:
    """A source with a file cache in front of it: fresh copies are served, stale ones kept for emergencies."""

    def __init__(
        self,
        inner: Source,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        clock: Clock = time.time,
    ) -> None:
        """Create the source.

        Args:
            inner: where to download from when the cache is missing or expired (usually a :class:`UrlSource`).
            path: the cache file, optionally with ``{pandaqueue}`` in its name; its directory is created.
            ttl: seconds a cached copy stays fresh.
            clock: the time source; cache ages are ``clock()`` minus the file's modification time.
        """
        self.inner = inner
        self.path = os.fspath(path)
        self.ttl = ttl
        self.clock = clock

    @property
    def label(self) -> str:
        """The inner source and the cache file."""
        return f"{self.inner.label} (cache {self.path})"

    def fetch(self, queue: str) -> object:
        """The cached document while it is fresh, else a new download (which then replaces the cache).

        Raises:
            InfoSourceError: the cache is missing, expired or corrupt and the download failed.
        """
        path = _fill_path(self.path, queue)
        age = self._age(path)
        if age is not None and age < self.ttl:
            try:
                doc = _read_document(path)
            except InfoSourceError as exc:
                log.warning("info cache unreadable path=%s error=%s", path, exc)
            else:
                log.debug("info cache hit path=%s age=%.0f", path, age)
                return doc
        doc_obj = self.inner.fetch(queue)
        self._store(path, doc_obj)
        return doc_obj

    def stale(self, queue: str) -> tuple[object, float] | None:
        """The cached document however old, with its age in seconds; ``None`` if there is no readable copy."""
        try:
            path = _fill_path(self.path, queue)
            age = self._age(path)
            if age is None:
                return None
            return _read_document(path), age
        except InfoSourceError as exc:
            log.warning("info stale cache unusable path=%s error=%s", self.path, exc)
            return None

    def _age(self, path: Path) -> float | None:
        try:
            return self.clock() - path.stat().st_mtime
        except OSError:
            return None

    def _store(self, path: Path, doc: object) -> None:
        """Write the cache atomically; a failure to write is logged, not raised (the download is still good)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(doc), mtime=self.clock())
        except OSError as exc:
            log.warning("info cache not written path=%s error=%s", path, exc)
            return
        log.debug("info cache written path=%s", path)
