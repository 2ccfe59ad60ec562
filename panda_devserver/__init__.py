"""A local PanDA server for developing pilots and for tests: never part of a pilot's run path.

It is a package of its own, beside :mod:`pilotlib` (which never imports it), installed with the ``devserver``
extra for HTTPS.

:class:`DevServer` is a real HTTP(S) server on 127.0.0.1 that speaks both dispatcher dialects (legacy
``/server/panda/<method>`` and ``/api/v1/<module>/<method>``) with the answers panda-server gives, hands each job to
one pilot only, keeps every update and event range update in SQLite (``<workdir>/panda.sqlite``), serves queue and
storage descriptions, injects faults on request and optionally serves HTTPS with a generated test CA.

The ``pilot-devserver`` command runs one for a user: ``pilot-devserver --port 8080 --jobs examples/jobs/``.

The test PKI (:class:`TestPKI`, :func:`make_test_pki`, :func:`subject_hash`) needs the ``cryptography`` package; it
is imported only when one of them is used (or a server is made with ``tls=True``), so a plain-HTTP server runs on an
install without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from panda_devserver._http import FAULT_KINDS
from panda_devserver._server import DevServer, DevServerError

if TYPE_CHECKING:
    from panda_devserver._tls import TestPKI, make_test_pki, subject_hash

_TLS_NAMES = ("TestPKI", "make_test_pki", "subject_hash")


def __getattr__(name: str) -> Any:
    """The TLS names, imported on first use (they need ``cryptography``)."""
    if name in _TLS_NAMES:
        from panda_devserver import _tls  # noqa: PLC0415 - lazy: cryptography only for TLS

        return getattr(_tls, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["FAULT_KINDS", "DevServer", "DevServerError", "TestPKI", "make_test_pki", "subject_hash"]
