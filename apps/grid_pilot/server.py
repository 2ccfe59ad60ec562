"""Server mode: the dispatcher client (:class:`pilotlib.panda.client.PandaClient`) as job source and reporter.

Credentials (the app's job, STYLE R1): the X509 proxy ``--proxy`` or ``X509_USER_PROXY`` of the settings' environment
(else ``/tmp/x509up_u<uid>``) when it exists; none for a plain-HTTP development server. TLS is always verified
(``--capath`` or the system store).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from apps.grid_pilot.settings import Settings
from pilotlib.errors import NoProxyError
from pilotlib.panda.base import JobReporter, JobSource
from pilotlib.panda.client import CallRetry, PandaClient, X509Proxy
from pilotlib.stop import Stop

__all__ = ["DISPATCHER_RETRY", "find_proxy", "server_parts"]

#: The grid pilot's dispatcher calls: each ends within 30 s (attempts and waits included); one made once the pilot is
#: stopping (the final update) makes one attempt of at most 10 s.
DISPATCHER_RETRY = CallRetry(attempts=3, total_seconds=30.0, stopping_seconds=10.0)


def find_proxy(env: Mapping[str, str], given: Path | None = None) -> X509Proxy | None:
    """The X509 proxy to present, if one exists (``given``: ``--proxy``, else ``X509_USER_PROXY``, else
    ``/tmp/x509up_u<uid>``).

    Raises:
        NoProxyError: ``given`` (a proxy the pilot was told to use) is not a file.
    """
    if given is not None and not given.is_file():
        raise NoProxyError(f"--proxy names no file: {given}")
    path = given or Path(env.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}")  # noqa: S108 - the grid's
    return X509Proxy(path) if path.is_file() else None


def server_parts(settings: Settings, stop: Stop | None = None) -> tuple[JobSource, JobReporter]:
    """The dispatcher client for ``settings.url`` in ``settings.api`` dialect, as source and reporter.

    Each call is bounded by :data:`DISPATCHER_RETRY`; a call in flight when ``stop`` is set ends at once.
    """
    proxy = find_proxy(settings.environ, settings.proxy) if settings.url.startswith("https://") else None
    client = PandaClient(settings.url, "v1" if settings.api == "v1" else "legacy", ca_dir=settings.ca_path,
                         credentials=proxy, stop=stop,
                         retry=DISPATCHER_RETRY)
    return client, client
