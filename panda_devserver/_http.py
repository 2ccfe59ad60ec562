"""The HTTP side of the development server: routing, request parsing, fault injection.

Requests are parsed as PanDA's server parses them (``server/panda.py``, see :func:`parse_body`): form fields, or a
JSON body when the ``Content-Type`` is ``application/json`` (always gzip-compressed for a legacy call, as pilot3's
``https.request2`` sends it; compressed for a v1 call only with ``Content-Encoding: gzip``); the v1 GET calls take the
query string. Info endpoints serve the queue and storage descriptions at the paths pilot3's ``default.cfg`` uses.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import ssl
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from panda_devserver import _legacy, _signatures, _v1, monitor
from panda_devserver._logic import Context, Outcome

log = logging.getLogger(__name__)

FAULT_KINDS = ("delay", "drop", "http500", "http503", "garbage", "garbage_html", "garbage_json", "apply_http500",
               "apply_delay", "hang", "trickle")

#: How long a ``hang`` fault with no ``seconds`` holds its request (unless the server is cleared or stopped first).
HANG_SECONDS = 3600.0

#: What panda-server 1.x answers to ``event/update_event_ranges`` after applying it: ``event_api.py:266`` (9cc36033)
#: builds the set ``{"Returns", <returns>, "Commands", <commands>}``; with version 1 the returns are a list and
#: building the set fails (``unhashable type: 'list'``); with version 0 they are JSON strings, the set is built and
#: ``json.dumps`` fails on it (``server/panda.py:405``). Either way the WSGI entry answers 500 with ``str(exc)``.
_UNHASHABLE_LIST = b"unhashable type: 'list'"

_HTML_ERROR = (
    b"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head><title>500 Internal Server Error</title>"
    b"</head><body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>\n"
)
_TRUNCATED_JSON = b'{"StatusCode": 0, "jobs": [{"PandaID": 12'


@attrs.define
class _Fault:
    kind: str
    remaining: int
    seconds: float
    served: int = 0


class Faults:
    """Faults to inject per call, and how many requests each call received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = {}
        self._counts: Counter[str] = Counter()
        self._headers: dict[str, dict[str, str]] = {}
        self._calls: list[str] = []
        self._durations: dict[str, list[float]] = {}
        self.released = threading.Event()  # set by clear(): held requests (hang, trickle, apply_delay) end

    def add(self, call: str, kind: str, times: int, seconds: float) -> None:
        """Inject ``kind`` into the next ``times`` requests for ``call``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.setdefault(call, []).append(_Fault(kind, times, seconds))

    def next(self, call: str, headers: Mapping[str, str]) -> _Fault | None:
        """Count one request for ``call``, keep its headers and return the fault to inject into it, if any."""
        with self._lock:
            self._counts[call] += 1
            self._calls.append(call)
            self._headers[call] = dict(headers)
            queue = self._faults.get(call, [])
            while queue and queue[0].remaining <= 0:
                queue.pop(0)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            fault.served += 1
            return attrs.evolve(fault)

    def count(self, call: str) -> int:
        """How many requests arrived for ``call``."""
        with self._lock:
            return self._counts[call]

    def calls(self) -> list[str]:
        """Every call received, in arrival order (faulted ones included)."""
        with self._lock:
            return list(self._calls)

    def last_headers(self, call: str) -> dict[str, str]:
        """The headers of the last request for ``call`` (empty when none arrived)."""
        with self._lock:
            return dict(self._headers.get(call, {}))

    def took(self, call: str, seconds: float) -> None:
        """Keep how long one request for ``call`` took to be answered."""
        with self._lock:
            self._durations.setdefault(call, []).append(seconds)

    def durations(self, call: str) -> list[float]:
        """How long each request for ``call`` took, from its body read to its answer written, in arrival order."""
        with self._lock:
            return list(self._durations.get(call, []))

    def clear(self) -> None:
        """Forget faults, counts and headers; requests held by a ``hang`` or ``trickle`` end."""
        with self._lock:
            self._faults.clear()
            self._counts.clear()
            self._headers.clear()
            self._calls.clear()
            self._durations.clear()
            released, self.released = self.released, threading.Event()
        released.set()


@attrs.frozen
class Route:
    """What a request path names: the dialect, the legacy call name and the handler's key."""

    dialect: str  # "legacy" | "v1" | "info" | "monitor"
    call: str
    key: str


def route(path: str) -> Route | None:
    """Map a request path to a route; None when the server does not serve it."""
    path = urllib.parse.urlsplit(path).path
    if path.startswith("/server/panda/"):
        method = path.removeprefix("/server/panda/")
        return Route("legacy", method, method) if method in _legacy.HANDLERS else None
    if path.startswith("/api/v1/"):
        key = path.removeprefix("/api/v1/")
        return Route("v1", _v1.PATHS[key], key) if key in _v1.PATHS else None
    if path in ("/", "/monitor", "/monitor/") or path.startswith("/monitor/job/"):
        return Route("monitor", "monitor", path.removeprefix("/monitor/job/") if "/job/" in path else "")
    if path == "/cache/ddmendpoints.json":
        return Route("info", "ddmendpoints", "")
    if path.startswith("/cache/schedconfig/") and path.endswith(".json"):
        name = path.removeprefix("/cache/schedconfig/").removesuffix(".json").removesuffix(".all")
        return Route("info", "schedconfig", name)
    return None


def parse_body(headers: Mapping[str, str], body: bytes, dialect: str = "v1") -> dict[str, Any]:
    """The request's parameters from its body, as panda-server's ``server/panda.py`` ``parse_parameters`` reads them.

    A JSON body is one whose ``Content-Type`` is exactly ``application/json``; anything else is form fields. The
    legacy API gunzips every JSON body whatever its ``Content-Encoding`` (``parse_json_parameters_legacy``: a plain
    JSON body fails there) and turns JSON booleans into ``"True"``/``"False"``; the v1 API gunzips only with
    ``Content-Encoding: gzip`` (``parse_json_parameters``).

    Raises:
        ValueError, OSError, EOFError, UnicodeDecodeError: the body cannot be read (the real server answers 500).
    """
    headers = {key.lower(): value for key, value in headers.items()}
    if headers.get("content-type", "").strip().lower() != "application/json":
        return dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    if dialect == "legacy" or headers.get("content-encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("the JSON body is not an object")
    if dialect == "legacy":
        document = {key: str(value) if isinstance(value, bool) else value for key, value in document.items()}
    return document


def forbidden(method: str) -> Outcome:
    """panda-server 1.x's answer to a legacy method it no longer serves (``server/panda.py:344-348`` at 9cc36033:
    ``validate_method`` fails, ``403 Forbidden``, ``ERROR : method <name> is forbidden``)."""
    return Outcome(403, "text/plain", f"ERROR : method {method} is forbidden".encode())


ContextFactory = Callable[[str | None], Context]


class DevHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its context factory, faults and info descriptions."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], make_context: ContextFactory, faults: Faults,
                 tls: ssl.SSLContext | None, legacy: bool = False) -> None:
        super().__init__(address, Handler)
        self.make_context = make_context
        self.faults = faults
        self.tls = tls
        self.legacy = legacy
        self.errors: list[str] = []  # what handle_error saw, most recent last


    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; with TLS, wrap it (the handshake runs in the handler's thread)."""
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed connection (a TLS handshake the client refused, a reset) or a handler's exception is logged, not
        printed, and kept in :attr:`errors`."""
        log.debug("connection failed client=%s", client_address, exc_info=True)
        self.errors.append(f"{client_address}: {traceback.format_exc()}")


class Handler(BaseHTTPRequestHandler):
    """One request: find the route, apply a fault, call the dialect's handler, answer."""

    server: DevHTTPServer
    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY: an answer's headers and body go in two writes; without it the body waits for the client's
    #: delayed ACK (about 40 ms a call on a kept-alive connection, measured by benchmarks/eventservice.py).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        """Complete the TLS handshake in this thread."""
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests through logging instead of stderr."""
        log.debug("request " + format, *args)

    def do_GET(self) -> None:
        """GET: info endpoints and the v1 GET calls."""
        self._serve("GET")

    def do_POST(self) -> None:
        """POST: every dispatcher call."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        began = time.monotonic()
        target = route(self.path)
        if target is None:
            self._send(Outcome(404, "text/plain", b"not found\n"))
            return
        if target.dialect == "monitor":  # not a pilot's call: not counted, never faulted
            self._send(self._monitor(target, method))
            return
        self._serve_call(target, method, body)
        self.server.faults.took(target.call, time.monotonic() - began)

    def _serve_call(self, target: Route, method: str, body: bytes) -> None:
        fault = self.server.faults.next(target.call, dict(self.headers.items()))
        if target.dialect == "legacy" and not self.server.legacy:
            self._send(forbidden(target.key))
            return
        if fault is not None and self._inject(fault):
            return
        outcome = self._answer(target, method, body)
        if fault is not None and fault.kind == "apply_http500":
            outcome = Outcome(500, "text/plain", _UNHASHABLE_LIST)
        if fault is not None and fault.kind == "apply_delay":
            self.server.faults.released.wait(fault.seconds)
        if fault is not None and fault.kind == "trickle":
            self._trickle(outcome, fault.seconds)
            return
        self._send(outcome)

    def _inject(self, fault: _Fault) -> bool:
        """Apply a fault; True when the request has been answered (or dropped) by it."""
        if fault.kind in ("apply_http500", "apply_delay", "trickle"):  # the call runs; its answer is changed in _serve
            return False
        if fault.kind in ("hang", "delay"):
            # hang: held unanswered and unapplied, then the connection is closed; delay: then served, unless the server
            # was cleared meanwhile: the request belongs to what was forgotten and is not applied
            seconds = fault.seconds or HANG_SECONDS if fault.kind == "hang" else fault.seconds
            if not self.server.faults.released.wait(seconds) and fault.kind == "delay":
                return False
            self.close_connection = True
            return True
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind in ("http500", "http503"):
            self._send(Outcome(int(fault.kind[4:]), "text/html", _HTML_ERROR))
            return True
        json_garbage = fault.kind == "garbage_json" or (fault.kind == "garbage" and fault.served % 2 == 0)
        self._send(Outcome(200, "application/json", _TRUNCATED_JSON) if json_garbage
                   else Outcome(200, "text/html", _HTML_ERROR))
        return True

    def _answer(self, target: Route, method: str, body: bytes) -> Outcome:
        if target.dialect == "info":
            return self._info(target)
        try:
            params = parse_body(dict(self.headers.items()), body, target.dialect) if method == "POST" else {}
        except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:  # server/panda.py: execution failure
            return Outcome(500, "text/plain", str(exc).encode())
        ctx = self.server.make_context(self._client_dn())
        if target.dialect == "legacy":
            return self._legacy(target, ctx, params)
        expected = _v1.METHODS.get(target.key, "POST")
        if method != expected:
            return _v1.envelope(False, f"expecting {expected}, received {method}")
        if method == "GET":
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        refusal = _signatures.check(target.key, params, method)
        if refusal is not None:
            return _v1.envelope(False, refusal)
        return _v1.HANDLERS[target.key](ctx, params)

    def _legacy(self, target: Route, ctx: Context, params: dict[str, Any]) -> Outcome:
        accept_json = "application/json" in self.headers.get("Accept", "")
        try:
            return _legacy.HANDLERS[target.key](ctx, params, accept_json)
        except TypeError as exc:  # server/panda.py calls the method with the request's fields as keywords
            return Outcome(500, "text/plain", str(exc).encode())

    def _info(self, target: Route) -> Outcome:
        store = self.server.make_context(None).store
        if target.call == "ddmendpoints":
            return Outcome(200, "application/json", json.dumps(store.descriptions("storages")).encode())
        queue = store.descriptions("queues").get(target.key)
        if queue is None:
            return Outcome(404, "text/plain", f"no queue {target.key}\n".encode())
        return Outcome(200, "application/json", json.dumps(queue).encode())

    def _monitor(self, target: Route, method: str) -> Outcome:
        """The monitor page (GET only): every job, or one job by PandaID."""
        if method != "GET":
            return Outcome(405, "text/plain", b"the monitor page is read with GET\n")
        store = self.server.make_context(None).store
        if not target.key:
            return Outcome(200, "text/html; charset=utf-8", monitor.render_monitor(store))
        page = monitor.render_job_page(store, int(target.key)) if target.key.isdigit() else None
        if page is None:
            return Outcome(404, "text/plain", f"no job {target.key}\n".encode())
        return Outcome(200, "text/html; charset=utf-8", page)

    def _client_dn(self) -> str | None:
        """The client's identity: its certificate subject, or the origin of its bearer token."""
        if isinstance(self.request, ssl.SSLSocket):
            cert = self.request.getpeercert()
            if cert:
                return "/".join("=".join(pair) for rdn in cert.get("subject", ()) for pair in rdn)
        if self.headers.get("Authorization", "").startswith("Bearer "):
            return f"token:{self.headers.get('Origin', '')}"
        return None

    def _trickle(self, outcome: Outcome, seconds: float) -> None:
        """Send the whole answer (status line and headers included) one byte every ``seconds`` (0.5 when 0),
        until it is sent, the client goes away or the server is cleared."""
        head = (f"{self.protocol_version} {outcome.status} {self.responses.get(outcome.status, ('',))[0]}\r\n"
                f"Content-Type: {outcome.content_type}\r\nContent-Length: {len(outcome.body)}\r\n\r\n")
        released = self.server.faults.released
        self.close_connection = True
        for byte in head.encode() + outcome.body:
            if released.wait(seconds or 0.5):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def _send(self, outcome: Outcome) -> None:
        self.send_response(outcome.status)
        self.send_header("Content-Type", outcome.content_type)
        self.send_header("Content-Length", str(len(outcome.body)))
        self.end_headers()
        self.wfile.write(outcome.body)
