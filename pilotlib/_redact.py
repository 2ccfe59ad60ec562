"""Keeping secrets out of logs and errors: URLs shown without user info, query and fragment (private helper)."""

from __future__ import annotations

import urllib.parse

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """The URL without user info, query and fragment (a signed URL or a token may sit there), for logs and errors.

    Text that is not a URL (a DID ``scope:name``, a local path) comes back unchanged.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
