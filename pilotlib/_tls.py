"""TLS verification of pilotlib's HTTPS clients: the one place a ``verify`` value for ``requests`` is made (private).

Every client (the dispatcher's :class:`~pilotlib.panda._transport.Transport`, the description
:class:`~pilotlib.info.sources.UrlSource`, transformation downloads) passes what it was given through
:func:`tls_verify`, so that verification is on unless a caller says ``False`` in so many words:

- ``True``: the system's trust store;
- a CA directory or bundle (``str`` or path): it must exist; an empty string, ``"0"``, ``"false"`` or a mistyped path
  is a :class:`~pilotlib.errors.CaPathError` (NOSUCHFILE, 1103), never "no verification" (``requests`` takes any false
  value, ``""`` included, as ``verify=False``);
- ``False``: verification off, logged as a WARNING naming what is not verified (for tests; neither app offers it,
  and pilot3 has no such switch either: its SSL context is always ``ssl.create_default_context``,
  ``pilot/util/https.py:194``, HEAD a090538b);
- anything else (``None``, ``0``, ``1``) is a ``TypeError``.

Ground floor: imports nothing of pilotlib but :mod:`pilotlib.errors`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pilotlib.errors import CaPathError

__all__ = ["tls_verify"]

log = logging.getLogger(__name__)


def tls_verify(verify: bool | str | os.PathLike[str], *, what: str) -> bool | str:
    """The ``verify`` value for ``requests`` of a client of ``what`` (e.g. ``"the PanDA server https://h:25443"``).

    Raises:
        CaPathError: ``verify`` names a CA directory or bundle that is empty or does not exist.
        TypeError: ``verify`` is neither a bool nor a path.
    """
    if verify is True:
        return True
    if verify is False:
        log.warning("TLS verification is OFF for %s: its certificate is not checked", what)
        return False
    if not isinstance(verify, str | os.PathLike):
        raise TypeError(f"TLS verify for {what} must be True, False or a CA path, got {verify!r}")
    text = os.fspath(verify)
    if not text.strip():
        raise CaPathError(f"the CA path for {what} is empty")
    if not Path(text).exists():
        raise CaPathError(f"the CA path {text} for {what} does not exist")
    return text
