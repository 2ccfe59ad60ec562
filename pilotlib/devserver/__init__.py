"""A local PanDA server for developing pilots and for tests.

:class:`DevServer` is a real HTTP(S) server on 127.0.0.1 that speaks both dispatcher dialects (legacy
``/server/panda/<method>`` and ``/api/v1/<module>/<method>``) with the answers panda-server gives, hands each job to
one pilot only, keeps every update and event range update in SQLite (``<workdir>/panda.sqlite``), serves queue and
storage descriptions, injects faults on request and optionally serves HTTPS with a generated test CA.

The ``pilot-devserver`` command runs one for a user: ``pilot-devserver --port 8080 --jobs examples/jobs/``.
"""

from pilotlib.devserver._http import FAULT_KINDS
from pilotlib.devserver._server import DevServer, DevServerError
from pilotlib.devserver._tls import TestPKI, make_test_pki, subject_hash

__all__ = ["FAULT_KINDS", "DevServer", "DevServerError", "TestPKI", "make_test_pki", "subject_hash"]
