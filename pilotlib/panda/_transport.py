"""HTTP transport of the dispatcher client: a ``requests`` session, timeouts, bounded retries, TLS and credentials.

Retries happen on connection errors, timeouts, 5xx answers and answers that do not decode only, at most
``CallRetry.attempts`` times, with exponential backoff and full jitter. A TLS verification failure is not retried.
``CallRetry.total_seconds`` bounds the whole call (connects, reads, retries and waits): a request still running then is
cut off, also from a server that trickles its answer a byte at a time (see :mod:`pilotlib._bounded`). A call in flight
when the pilot's stop is set ends at once; a call made once the pilot is stopping (the final update) makes one attempt
of at most ``CallRetry.stopping_seconds``.

Credentials follow pilot3's ``pilot/util/https.py``: an X509 proxy file is the client certificate and key at once; an
OIDC token is sent as ``Authorization: Bearer <token>`` with an ``Origin`` header naming the VO, read from its
file for every request (tokens are renewed on disk). Neither is ever logged or put in an exception.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pilotlib._bounded import Cancelled, Waiter, run_bounded, tracked_session
from pilotlib._jsontext import JsonTextError, decode_utf8
from pilotlib._redact import redact_text, redact_url
from pilotlib._tls import tls_verify
from pilotlib.panda.errors import CommunicationError, CredentialError, ServerAnswerError, ServerHTTPError
from pilotlib.stop import StopSignal

if TYPE_CHECKING:  # imported on first use: loading requests costs a short-lived pilot a noticeable part of its start
    import requests

log = logging.getLogger(__name__)

# (the answer's body, the retryable failure's reason, its HTTP status): a 5xx keeps its body and its status
_Result = tuple[bytes | None, str, int | None]


@attrs.frozen
class Timeouts:
    """Connect and read timeouts of one HTTP request, in seconds."""

    connect: float = 20.0
    read: float = 120.0


@attrs.frozen
class CallRetry:
    """Bounded retries with exponential backoff and jitter.

    Attributes:
        attempts: the most requests one call makes (1: no retry).
        total_seconds: the longest one call takes, every attempt and wait included: a request still running then
            is cut off (however the server trickles its answer), and no retry starts whose wait would pass it.
        backoff: the first wait, doubled at each retry up to ``max_backoff``; the wait is drawn uniformly between
            half of it and all of it (jitter).
        max_backoff: the longest single wait.
        stopping_seconds: the longest a call made once the pilot is stopping takes (one attempt, no retry).
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    total_seconds: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    backoff: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    stopping_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))

    def wait(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return rng.uniform(ceiling / 2, ceiling)


@attrs.frozen
class X509Proxy:
    """An X509 proxy file (certificate and key in one PEM), used as the TLS client certificate."""

    path: Path = attrs.field(converter=Path)


@attrs.frozen(repr=False)
class BearerToken:
    """An OIDC token file and its origin (the VO), sent as ``Authorization: Bearer`` and ``Origin``."""

    path: Path = attrs.field(converter=Path)
    origin: str

    def __repr__(self) -> str:
        return f"BearerToken(path={str(self.path)!r}, origin={self.origin!r})"


Credentials = X509Proxy | BearerToken


def _is_retryable(exc: requests.RequestException) -> bool:
    import requests  # noqa: PLC0415 - lazy, see the module imports

    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


class Transport:
    """Sends one dispatcher call with retries; returns the answer's text.

    Args:
        base_url: the server, e.g. ``https://pandaserver.cern.ch:25443``.
        timeouts: connect and read timeouts.
        retry: the retry policy.
        ca_dir: the CA directory (or bundle) to verify the server against; None: the system's default store.
        verify: False switches verification off, with a warning (never do this outside a test).
        credentials: an :class:`X509Proxy` or a :class:`BearerToken`, or None.
        session: a ``requests.Session`` to use (one is made otherwise); its ``http://`` and ``https://`` adapters
            are replaced by ones whose requests can be cut off.
        sleep: the wait between retries (tests pass a recorder); None: a wait that ends when ``stop`` is set.
        rng: the jitter's random source.
        stop: the pilot's stop (:class:`pilotlib.stop.Stop`), or None.
    """

    def __init__(self, base_url: str, *, timeouts: Timeouts, retry: CallRetry, ca_dir: Path | None,
                 verify: bool, credentials: Credentials | None, session: requests.Session | None,
                 sleep: Callable[[float], None] | None, rng: random.Random, stop: StopSignal | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry
        self.credentials = credentials
        self.session = tracked_session(session)
        self.stop = stop
        self.verify = tls_verify(ca_dir if (verify is True and ca_dir is not None) else verify,
                                 what=f"the PanDA server {redact_url(self.base_url)}")
        self._sleep = sleep
        self._rng = rng

    def _auth(self) -> tuple[dict[str, str], str | None]:
        """Headers and client certificate from the credentials, read now."""
        creds = self.credentials
        if isinstance(creds, X509Proxy):
            if not creds.path.is_file():
                raise CredentialError(f"X509 proxy file {creds.path} does not exist")
            return {}, str(creds.path)
        if isinstance(creds, BearerToken):
            try:
                token = creds.path.read_text().strip()
            except OSError as exc:
                raise CredentialError(f"token file {creds.path} cannot be read: {exc.strerror}") from None
            if not token:
                raise CredentialError(f"token file {creds.path} is empty")
            return {"Authorization": f"Bearer {token}", "Origin": creds.origin}, None
        return {}, None

    def send(self, call: str, path: str, *, method: str = "POST", json_body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             compress: bool = False, max_attempts: int | None = None,
             check: Callable[[str], object] | None = None) -> str:
        """Send one call and return the answer's text, retrying as the policy allows.

        ``compress`` sends ``json_body`` gzip-compressed with ``Content-Type: application/json`` and no
        ``Content-Encoding`` header, as pilot3's ``https.request2`` does for the legacy API: panda-server's legacy
        entry point (``server/panda.py`` ``parse_json_parameters_legacy``) gunzips every JSON body unconditionally and
        fails with a 500 on a plain one.

        ``check`` (the call's decoder) is run on each answer: an answer it refuses with a
        :class:`~pilotlib.panda.errors.ServerAnswerError` (garbage, a truncated body) is retried like a 5xx, as
        pilot3 retries a request whose answer did not decode; the last refusal is raised when no attempt is left.

        ``max_attempts`` lowers the policy's attempts for this call (never raises them). The call ends within
        ``retry.total_seconds`` (``retry.stopping_seconds``, one attempt, when made once the pilot is stopping), and
        at once when the stop is set while it runs.

        Raises:
            ServerHTTPError: every attempt was answered with an HTTP 5xx status (the last one's is kept).
            CommunicationError: the call failed otherwise (after the retries, or at once when not retryable), took
                its whole bound, or was interrupted by the stop.
            CredentialError: the credentials cannot be read.
            ServerAnswerError: ``check`` refused the last answer.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        auth_headers, cert = self._auth()
        all_headers = {"Accept": "application/json", **(headers or {}), **auth_headers}
        payload: bytes | None = None
        if compress and json_body is not None:
            payload = gzip.compress(json.dumps(dict(json_body)).encode())
            all_headers["Content-Type"] = "application/json"
            json_body = None
        stopping = self.stop is not None and self.stop.is_set()
        bound = self.retry.stopping_seconds if stopping else self.retry.total_seconds
        attempts = 1 if stopping else min(self.retry.attempts, max_attempts or self.retry.attempts)
        request = functools.partial(self._attempt, call, method, url, json_body=json_body, payload=payload,
                                    query=query, headers=all_headers, cert=cert)
        with Waiter(bound, self.stop) as waiter:
            return self._tries(call, request, attempts, waiter, check)

    def _tries(self, call: str, request: Callable[[Timeouts], _Result], attempts: int, waiter: Waiter,
               check: Callable[[str], object] | None) -> str:
        """Up to ``attempts`` requests, each on a helper thread that is left at the waiter's deadline or stop."""
        reason, attempt, status = "", 0, None
        refused: ServerAnswerError | None = None
        error_body = b""
        for attempt in range(1, attempts + 1):
            left = waiter.left()
            if left <= 0:
                raise CommunicationError(f"{call}: no answer within the call's bound ({attempt - 1} attempt(s))")
            timeouts = Timeouts(min(self.timeouts.connect, left), min(self.timeouts.read, left))
            try:
                body, reason, status = run_bounded(functools.partial(request, timeouts), waiter, f"http-{call}")
            except Cancelled as exc:
                raise CommunicationError(_cut_off(call, attempt, exc)) from None
            refused = None
            if status is not None:
                error_body = body or b""
            elif body is not None:
                text, refused = _taken(call, body, check)
                if refused is None:
                    return text
                reason, status = f"malformed answer: {refused.reason}", None
            log.warning("server call failed call=%s attempt=%d reason=%s", call, attempt, reason)
            if attempt == attempts or not self._backed_off(call, attempt, waiter):
                break
        if refused is not None:
            raise refused
        message = f"{call}: failed after {attempt} attempt(s): {reason}"
        if status is not None:
            raise ServerHTTPError(call, status, message, error_body)
        raise CommunicationError(message)

    def _backed_off(self, call: str, attempt: int, waiter: Waiter) -> bool:
        """Wait before retry ``attempt`` + 1; False when the wait would pass the call's bound (no retry then)."""
        wait = self.retry.wait(attempt, self._rng)
        if wait >= waiter.left():
            return False
        if self._sleep is not None:
            self._sleep(wait)
        elif not waiter.pause(wait):
            raise CommunicationError(f"{call}: interrupted after {attempt} attempt(s): the pilot is stopping")
        return True

    def _attempt(self, call: str, method: str, url: str, timeouts: Timeouts, *, json_body: Mapping[str, Any] | None,
                 payload: bytes | None, query: Mapping[str, Any] | None, headers: Mapping[str, str], cert: str | None,
                 ) -> _Result:
        """One request: (the answer's body, "", None), (the start of a 5xx answer's body, its reason, its HTTP
        status) or (None, the reason of another retryable failure, None)."""
        import requests  # noqa: PLC0415 - lazy (already loaded by the session)

        try:
            response = self.session.request(
                method, url, json=dict(json_body) if json_body is not None else None, data=payload, params=query,
                headers=dict(headers), cert=cert, verify=self.verify,
                timeout=(timeouts.connect, timeouts.read),
            )
        except requests.RequestException as exc:
            if not _is_retryable(exc):
                raise CommunicationError(f"{call}: {type(exc).__name__}: {_reason(exc)}") from None
            return None, f"{type(exc).__name__}: {_reason(exc)}", None
        if response.status_code >= 500:
            return response.content[:1024], f"HTTP {response.status_code}", response.status_code
        if response.status_code != 200:
            raise CommunicationError(f"{call}: HTTP {response.status_code} from {redact_url(url)}")
        return response.content, "", None


def _taken(call: str, body: bytes, check: Callable[[str], object] | None) -> tuple[str, ServerAnswerError | None]:
    """The answer's text, or the error refusing it: bytes that are not UTF-8 (panda-server answers ASCII:
    ``json.dumps``, url-encoding; never decoded with replacement characters), or what ``check`` refuses."""
    try:
        text = decode_utf8(body)
    except JsonTextError as exc:
        return "", ServerAnswerError(call, exc.reason)
    try:
        if check is not None:
            check(text)
    except ServerAnswerError as exc:
        return "", exc
    return text, None


def _cut_off(call: str, attempt: int, cancelled: Cancelled) -> str:
    if cancelled.stopped:
        return f"{call}: interrupted in attempt {attempt}: the pilot is stopping"
    return f"{call}: no answer within the call's bound (attempt {attempt} cut off)"


def _reason(exc: BaseException) -> str:
    """A short, redacted reason (requests quotes the URL with its query in a ``ConnectionError``)."""
    text = redact_text(str(exc))
    return text if len(text) <= 300 else text[:297] + "..."
