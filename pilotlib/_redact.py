"""Keeping secrets out of logs, errors and command lines: the one redaction of pilotlib (private helper).

Ground floor: imports nothing of pilotlib, so every layer (``errors`` included) may use it.

:func:`redact_url` hides what a storage or server URL may carry: the user info (``user:password@``, or a token as
user name) and the values of secret query (or fragment) parameters. :func:`redact_text` applies the same to free text
(a copytool's stderr, a backend's exception message, a log line), which also hides bare ``key=value`` secrets (an
XRootD server echoes the opaque part of a path: ``/data/f?authz=...``), quoted ``"access_token": "..."`` pairs (an
answer excerpt, a ``repr``), ``Bearer <token>`` and JSON Web Tokens.

The secret parameter names are the forms storages and signed URLs use:

- ``authz``: the XRootD CGI a token travels in (XrdAccSciTokens, XrdHttp and dCache take it as the bearer token);
- ``access_token``: RFC 6750 section 2.3 (the bearer token as a URI query parameter); ``bearer_token`` and any name
  holding ``token``;
- AWS presigned URLs: ``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token`` (SigV4) and ``Signature``,
  ``AWSAccessKeyId`` (SigV2); Google ``X-Goog-Signature``/``X-Goog-Credential``; Azure SAS ``sig``;
- any name holding ``secret``, ``password``, ``passwd``, ``signature`` or ``credential`` (pilot3
  ``pilot/util/container.py`` ``print_executable`` masks ``S3_SECRET_KEY=``);

but not a name ending in ``_FILE``, ``_PATH`` or ``_DIR``: ``BEARER_TOKEN_FILE=/path`` says where a secret is.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["MASK", "is_secret_key", "redact_text", "redact_url"]

MASK = "***"

_EXACT = frozenset({"authz", "sig", "awsaccesskeyid", "macaroon"})
_PARTS = ("token", "secret", "password", "passwd", "signature", "credential")
_PATH_SUFFIXES = ("_file", "_path", "_dir", "-file", "-path", "-dir")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_PAIR = re.compile(r"(?P<key>[A-Za-z0-9_.-]+)=(?P<value>[^&;\s'\"<>`,)]+)")
_QUOTED_PAIR = re.compile(r"""(?P<q>["'])(?P<key>[A-Za-z0-9_.-]+)(?P=q)\s*:\s*(?P<v>["'])(?P<value>[^"']*)(?P=v)""")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=-]+")
_USERINFO = re.compile(r"://[^/@\s?#]+@")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def is_secret_key(key: str) -> bool:
    """Whether a query parameter (or ``key=value`` setting) named ``key`` carries a secret."""
    lowered = key.lower()
    if lowered.endswith(_PATH_SUFFIXES):  # BEARER_TOKEN_FILE=/path: where a secret is, not the secret
        return False
    return lowered in _EXACT or any(part in lowered for part in _PARTS)


def _mask_pair(match: re.Match[str]) -> str:
    key = match.group("key")
    return f"{key}={MASK}" if is_secret_key(key) and match.group("value") != MASK else match.group(0)


def _mask_quoted(match: re.Match[str]) -> str:
    if not is_secret_key(match.group("key")) or not match.group("value"):
        return match.group(0)
    quote, value_quote = match.group("q"), match.group("v")
    return f"{quote}{match.group('key')}{quote}: {value_quote}{MASK}{value_quote}"


def _redact_pairs(text: str) -> str:
    """``key=value`` and JSON/``repr`` ``"key": "value"`` pairs with a secret key, value shown as ``***``."""
    return _QUOTED_PAIR.sub(_mask_quoted, _PAIR.sub(_mask_pair, text))


def _hide(text: str) -> str:
    """``Bearer <token>`` and JSON Web Tokens, wherever they are."""
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _JWT.sub(MASK, text)


def redact_url(url: str) -> str:
    """The URL with its user info and its secret query/fragment values shown as ``***``, for logs and errors.

    ``davs://u:pw@host/p?authz=T&x=1`` becomes ``davs://***@host/p?authz=***&x=1``; parameters that are no
    secret stay readable. Text that is not a URL (a DID ``scope:name``, a local path) comes back unchanged, except
    for secret ``key=value`` pairs in it (``/data/f?authz=T`` becomes ``/data/f?authz=***``).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not parseable (``[`` in the host, a bad port): still hide what looks like a secret
        return _redact_pairs(_hide(_USERINFO.sub(f"://{MASK}@", url)))
    if not parts.scheme or not parts.netloc:
        return _redact_pairs(_hide(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _redact_pairs(parts.query)
    fragment = _redact_pairs(parts.fragment)
    return _hide(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment)))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`), secret ``key=value`` pairs, ``Bearer`` tokens
    and JSON Web Tokens shown as ``***``: for a command's output, an exception's message, a log line."""
    if not text:
        return text
    text = _URL.sub(lambda m: redact_url(m.group(0)), _hide(text))
    return _redact_pairs(text)

