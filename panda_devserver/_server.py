"""The :class:`DevServer`: a local PanDA server on 127.0.0.1 for development and tests."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from panda_devserver._http import DevHTTPServer, Faults
from panda_devserver._logic import Context
from panda_devserver._store import Store
from pilotlib.errors import PilotError
from pilotlib.job import job_to_wire, load_job_definitions

if TYPE_CHECKING:
    from panda_devserver._tls import TestPKI

log = logging.getLogger(__name__)

_INFO_CALLS = ("schedconfig", "ddmendpoints")


class DevServerError(RuntimeError):
    """The development server was used wrongly (a bad job file, a call before start, ...)."""


class DevServer:
    """A local PanDA server speaking panda-server 1.x's dialect (and the legacy one on request), keeping what pilots
    report in SQLite.

    By default it serves what panda-server 1.x serves: the ``/api/v1/`` calls; a legacy ``/server/panda/<method>``
    call is answered ``403 Forbidden`` with ``ERROR : method <method> is forbidden``, as 1.x answers it. With
    ``legacy=True`` it also serves the legacy dialect, as a server before 1.0 does.

    Args:
        workdir: where the SQLite database (``panda.sqlite``) and, with TLS, the test PKI are written.
        tls: serve HTTPS with a CA generated in ``workdir/pki`` (see :attr:`ca_dir`, :attr:`pki`).
        host: the address to bind (default 127.0.0.1).
        port: the port to bind (0: a free port).
        expired_certificate: with TLS, serve the generated *expired* certificate (to test verification).
        require_client_certificate: with TLS, refuse clients without a certificate signed by the test CA.
        legacy: also serve the legacy dialect (see :attr:`legacy`).
    """

    def __init__(self, workdir: Path, tls: bool = False, *, host: str = "127.0.0.1", port: int = 0,
                 expired_certificate: bool = False, require_client_certificate: bool = False,
                 legacy: bool = False) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.workdir / "panda.sqlite")
        self.faults = Faults()
        self.pki: TestPKI | None = _make_pki(self.workdir / "pki") if tls else None
        self._legacy = legacy
        self._address = (host, port)
        self._expired = expired_certificate
        self._require_client = require_client_certificate
        self._key_pairs: dict[str, str] = {}
        self._user_proxy: str | None = None
        self._httpd: DevHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> DevServer:
        """Bind and serve in a background thread; return self."""
        if self._httpd is not None:
            return self
        self._httpd = DevHTTPServer(self._address, self._context, self.faults, self._tls_context(), self._legacy)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pilot-devserver", daemon=True)
        self._thread.start()
        log.info("devserver started url=%s db=%s", self.url, self.store.path)
        return self

    def stop(self) -> None:
        """Stop serving (requests held by a ``hang`` or ``trickle`` fault end) and close the database."""
        self.faults.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join()
            self._httpd = None
        self.store.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command line's way)."""
        self._httpd = DevHTTPServer(self._address, self._context, self.faults, self._tls_context(), self._legacy)
        log.info("devserver serving url=%s db=%s monitor=%s/monitor", self.url, self.store.path, self.url)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()
            self.store.close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS)."""
        if self._httpd is None:
            raise DevServerError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.pki else 'http'}://{host!s}:{port}"

    @property
    def legacy(self) -> bool:
        """True when the legacy dialect (``/server/panda/<method>``, panda-server before 1.0) is served too.

        Settable while the server runs (tests share one server and ask for the legacy dialect per test).
        """
        return self._legacy

    @legacy.setter
    def legacy(self, value: bool) -> None:
        self._legacy = value
        if self._httpd is not None:
            self._httpd.legacy = value

    @property
    def ca_dir(self) -> Path | None:
        """With TLS, the hashed CA directory a client verifies the server against; None without TLS."""
        return self.pki.ca_dir if self.pki else None

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.pki is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = ((self.pki.expired_cert, self.pki.expired_key) if self._expired
                     else (self.pki.server_cert, self.pki.server_key))
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cafile=self.pki.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if self._require_client else ssl.CERT_OPTIONAL
        return context

    def _context(self, client_dn: str | None) -> Context:
        return Context(self.store, client_dn, dict(self._key_pairs), self._user_proxy)

    # ------------------------------------------------------------------------------------------------ content
    def add_job(self, definition: Mapping[str, Any] | Path) -> list[int]:
        """Queue a job definition (a dictionary, or a job file in any shape); return the PandaIDs queued."""
        definitions = _read_definitions(definition) if isinstance(definition, Path) else [dict(definition)]
        ids = []
        for item in definitions:
            try:
                panda_id = int(item["PandaID"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DevServerError(f"job definition without a valid PandaID: {exc}") from None
            self.store.add_job(panda_id, item)
            ids.append(panda_id)
        return ids

    def add_jobs_from(self, directory: Path) -> list[int]:
        """Queue every ``*.json`` job file of ``directory`` (sorted by name)."""
        ids: list[int] = []
        for path in sorted(Path(directory).glob("*.json")):
            ids += self.add_job(path)
        return ids

    def add_queue(self, name: str, description: Mapping[str, Any]) -> None:
        """Serve a queue description (schedconfig/CRIC queuedata object)."""
        self.store.put_description("queues", name, description)

    def add_storage(self, name: str, description: Mapping[str, Any]) -> None:
        """Serve a storage (DDM endpoint) description."""
        self.store.put_description("storages", name, description)

    def add_storages_from(self, path: Path) -> list[str]:
        """Serve every storage description of a ``ddmendpoints.json`` file (CRIC's form: ``{name: {...}}``, or a
        list of objects each with a ``name``); return the names.

        Raises:
            DevServerError: the file cannot be read or is not in either form.
        """
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DevServerError(f"cannot read storage descriptions from {path}: {exc}") from None
        items = _named_descriptions(document)
        if not items:
            raise DevServerError(f"{path}: storage descriptions must be a JSON object of name -> description, "
                                 "or a list of descriptions with a 'name'")
        for name, body in items:
            self.add_storage(name, body)
        return [name for name, _ in items]

    def add_event_ranges(self, panda_id: int, ranges: Sequence[Mapping[str, Any]]) -> None:
        """Make event ranges available to a job; a range without ``eventRangeID`` gets one in PanDA's form."""
        bodies = []
        for number, item in enumerate(ranges, start=1):
            body = dict(item)
            body.setdefault("eventRangeID", f"1-{panda_id}-1-{number}-1")
            bodies.append(body)
        self.store.add_event_ranges(panda_id, bodies)

    def set_command(self, panda_id: int, command: str) -> None:
        """The next ``updateJob`` answer for that job carries ``command`` (``tobekilled``, ``softkill``, ...)."""
        self.store.set_command(panda_id, command)

    def set_key_pair(self, public_name: str, public_key: str, private_name: str, private_key: str) -> None:
        """Serve a key pair to ``getKeyPair`` (to a client the server can identify)."""
        self._key_pairs.update({public_name: public_key, private_name: private_key})

    def set_user_proxy(self, proxy: str) -> None:
        """Serve this text as the user proxy to ``getProxy``."""
        self._user_proxy = proxy

    def inject_fault(self, call: str, kind: str, times: int = 1, seconds: float = 0.0) -> None:
        """Inject a fault into the next ``times`` requests for ``call``.

        Args:
            call: a legacy method name (``getJob``, ``updateJob``, ...; the v1 calls count under the same names) or
                ``schedconfig``/``ddmendpoints``.
            kind: ``delay`` (wait ``seconds``, then answer; dropped unapplied when cleared meanwhile), ``drop``
                (close the connection without answering),
                ``http500``, ``http503``, ``garbage`` (an HTML error page, then truncated JSON, alternately),
                ``garbage_html``, ``garbage_json``, ``apply_http500`` (the call is applied, then answered HTTP
                500, as panda-server 1.x answers every ``event/update_event_ranges``), ``apply_delay`` (the call is
                applied, then its answer waits ``seconds`` or until :meth:`clear`: a client killed meanwhile never
                learns it was applied), ``hang`` (hold the request unanswered and unapplied for ``seconds``, default
                an hour, or until :meth:`clear` or :meth:`stop`, then close the connection), ``trickle`` (apply the
                call, then send its whole answer, status line and headers included, one byte every ``seconds``,
                default 0.5).
            times: how many requests get the fault.
            seconds: the delay (``delay``, ``hang``, ``trickle``).
        """
        self.faults.add(call, kind, times, seconds)

    def clear(self) -> None:
        """Forget jobs, updates, event ranges, commands, faults and request counts (descriptions stay)."""
        self.store.clear()
        self.faults.clear()

    # ----------------------------------------------------------------------------------------------- queries
    def jobs(self) -> list[dict[str, Any]]:
        """Every job queued, in order: ``{"panda_id", "definition", "status", "final_state", "pilot"}`` (``pilot``:
        the node name the taking pilot sent)."""
        return self.store.jobs()

    def updates(self, panda_id: int) -> list[dict[str, Any]]:
        """Every update received for a job, in order, by legacy field names."""
        return self.store.updates(panda_id)

    def final_state(self, panda_id: int) -> str | None:
        """The final state the pilot reported (``finished``/``failed``), or None."""
        return self.store.final_state(panda_id)

    def job_status(self, panda_id: int) -> str | None:
        """The server-side status (``activated``, ``sent``, ``starting``, ``running``, ``holding``, ...)."""
        return self.store.job_status(panda_id)

    def ignored_updates(self, panda_id: int) -> list[dict[str, Any]]:
        """Updates acknowledged but not applied (a final update after the final one): ``{"fields", "answer"}``."""
        return self.store.ignored_updates(panda_id)

    def dropped_fields(self, panda_id: int) -> list[tuple[str, Any]]:
        """``(field, value)`` of a job's updates that panda-server would drop (``startTime``/``endTime`` not in
        ``%Y-%m-%d %H:%M:%S`` form); the updates themselves keep what the pilot sent."""
        return self.store.dropped_fields(panda_id)

    def event_range_updates(self, panda_id: int) -> list[dict[str, Any]]:
        """Every event range update received for a job, in order."""
        return self.store.event_range_updates(panda_id)

    def event_range_statuses(self, panda_id: int) -> dict[str, str]:
        """The status of each event range of a job by id: ``ready``, ``sent`` once handed out, then the last status
        an applied update reported (``finished``, ``failed``, ...)."""
        return self.store.event_range_statuses(panda_id)

    def zip_files(self, panda_id: int) -> dict[str, dict[str, Any]]:
        """The zip files of a job by name, as the first applied update with that ``zipFile`` reported them
        (panda-server stores one ``zipoutput`` file per job and name: ``task_event_module.py:512-549``); each range's
        own copy is in :meth:`event_range_updates`."""
        return self.store.zip_files(panda_id)

    def worker_statuses(self) -> list[dict[str, Any]]:
        """Every worker status report received, in order."""
        return self.store.worker_statuses()

    def request_count(self, call: str) -> int:
        """How many HTTP requests arrived for ``call`` (faulted ones included)."""
        return self.faults.count(call)

    def calls(self) -> list[str]:
        """Every request's call (``getJob``, ``updateJob``, ``schedconfig``, ...; the v1 calls by their legacy names),
        in arrival order: the order a pilot made its calls in."""
        return self.faults.calls()

    def request_durations(self, call: str) -> list[float]:
        """How long the server took over each request for ``call`` (seconds from its body read to its answer
        written: the server's own latency, faults included), in arrival order."""
        return self.faults.durations(call)

    def handler_errors(self) -> list[str]:
        """The exceptions the HTTP server caught since it started (a handler's failure, a connection reset), each
        with its client address and traceback: what a request got no answer for."""
        return [] if self._httpd is None else list(self._httpd.errors)

    def last_headers(self, call: str) -> dict[str, str]:
        """The HTTP headers of the last request for ``call`` (to check what a client sent)."""
        return self.faults.last_headers(call)


def _named_descriptions(document: object) -> list[tuple[str, dict[str, Any]]]:
    """``(name, description)`` pairs of a ``{name: {...}}`` object or a list of ``{"name": ..., ...}`` objects;
    empty when the document is neither (or holds anything else)."""
    pairs: list[tuple[object, object]] = (
        list(document.items()) if isinstance(document, dict)
        else [(item.get("name") if isinstance(item, dict) else None, item) for item in document]
        if isinstance(document, list) else []
    )
    if not all(isinstance(name, str) and isinstance(body, dict) for name, body in pairs):
        return []
    return [(str(name), dict(body)) for name, body in pairs if isinstance(body, dict)]


def _make_pki(directory: Path) -> TestPKI:
    """The test PKI; ``cryptography`` is imported only here, so a plain-HTTP server runs without it."""
    try:
        from panda_devserver._tls import make_test_pki  # noqa: PLC0415 - lazy: TLS only
    except ImportError as exc:
        raise DevServerError(f"TLS needs the cryptography package (pip install 'pilotlib[devserver]'): {exc}") from None
    return make_test_pki(directory)


def _read_definitions(path: Path) -> list[dict[str, Any]]:
    """The job definitions of a file: a JSON object, a list, Harvester's ``{PandaID: {...}}`` or url-encoded."""
    try:
        return [job_to_wire(job) for job in load_job_definitions(path.read_bytes())]
    except (OSError, PilotError) as exc:
        raise DevServerError(f"cannot read job definitions from {path}: {exc}") from exc
