"""Errors of the dispatcher client (:mod:`pilotlib.panda.client`).

Every error is a :class:`pilotlib.errors.CommunicationError` (``COMMUNICATIONFAILURE``, 1318) except a missing
credential, which is a :class:`pilotlib.errors.NoProxyError` (``NOPROXY``, 1163). Messages name the call and carry at
most a short excerpt of what the server sent; proxies, tokens and the answers of credential calls never appear in them.
"""

from __future__ import annotations

from pilotlib.errors import CommunicationError, NoProxyError

__all__ = ["CommunicationError", "CredentialError", "ServerAnswerError", "ServerHTTPError", "ServerRefusedError"]

_EXCERPT = 120


def excerpt(text: str | bytes, secret: bool = False) -> str:
    """A short, printable excerpt of an answer (nothing at all for answers that may carry secrets)."""
    if secret:
        return "<withheld: credential call>"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = text[:_EXCERPT].replace("\n", " ").replace("\r", " ")
    return repr(shown + ("..." if len(text) > _EXCERPT else ""))


class ServerAnswerError(CommunicationError):
    """The server's answer is not what the protocol says (an HTML page, truncated JSON, no StatusCode, wrong types).

    Attributes:
        call: the dispatcher call (legacy name, e.g. ``getJob``).
        reason: what is wrong with the answer (no excerpt of it).
    """

    def __init__(self, call: str, reason: str, body: str | bytes = "", secret: bool = False) -> None:
        self.call = call
        self.reason = reason
        detail = f"; answer: {excerpt(body, secret)}" if body or secret else ""
        super().__init__(f"{call}: malformed answer: {reason}{detail}")


class ServerRefusedError(CommunicationError):
    """The server answered in protocol but refused the call (a StatusCode other than 0, or ``success: false``).

    Attributes:
        call: the dispatcher call.
        status_code: the legacy StatusCode (None in the v1 dialect).
    """

    def __init__(self, call: str, reason: str, status_code: int | None = None) -> None:
        self.call = call
        self.status_code = status_code
        code = f" StatusCode={status_code}" if status_code is not None else ""
        super().__init__(f"{call}: refused by the server{code}: {reason}")


class ServerHTTPError(CommunicationError):
    """The server answered with an HTTP error status (5xx) on every attempt.

    Attributes:
        call: the dispatcher call.
        status_code: the HTTP status of the last answer.
        body: the start of the last answer's body (at most 1 KiB; never logged nor in the message).
    """

    def __init__(self, call: str, status_code: int, message: str, body: bytes = b"") -> None:
        self.call = call
        self.status_code = status_code
        self.body = body[:1024]
        super().__init__(message)


class CredentialError(NoProxyError):
    """The configured X509 proxy or token file cannot be read."""
