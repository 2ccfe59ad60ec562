"""Errors of the information service, each with its PanDA error code (PanDAWMS/pilot3 ``pilot/common/errorcodes.py``).

Which code when:

- :class:`InfoSourceError` (QUEUEDATA, 1116): one source could not deliver a document (HTTP error, missing file,
  not JSON); the service catches it, notes it and tries the next source.
- :class:`QueuedataUnavailableError` (QUEUEDATA, 1116): no source delivered a description (and no stale cache
  was left); lists every source tried and why it failed.
- :class:`BadQueuedataError` (QUEUEDATANOTOK, 1117): a description is not a JSON object of the expected shape.
- :class:`QueueNotActiveError` (PANDAQUEUENOTACTIVE, 1359): the queue's ``state`` is not ``ACTIVE`` (pilot3's
  ``pilot.py`` aborts with this code).
- :class:`QueueOfflineError` (PANDAQUEUENOTONLINE, 1386): the queue's ``status`` is ``offline`` (pilot3 likewise).
- :class:`NoStorageError` (NOSTORAGE, 1133): no storage for an activity, or a storage name that is not described or
  not usable (pilot3 ``pilot/api/data.py`` uses this code for both).
- :class:`NoStorageProtocolError` (NOSTORAGEPROTOCOL, 1313): a storage has no protocol for the activity.
- :class:`NoCopytoolError` (UNKNOWNCOPYTOOL, 1323): no copytool configured for an activity (pilot3 likewise).
"""

from __future__ import annotations

from collections.abc import Sequence

from pilotlib.errors import ErrorCode, PilotError

__all__ = [
    "BadQueuedataError",
    "InfoSourceError",
    "NoCopytoolError",
    "NoStorageError",
    "NoStorageProtocolError",
    "QueueNotActiveError",
    "QueueOfflineError",
    "QueuedataUnavailableError",
    "SourceFailure",
]

SourceFailure = tuple[str, str]
"""One failed attempt: (source label, reason)."""


class InfoSourceError(PilotError):
    """One source could not deliver a document; ``str(err)`` says why."""

    code = ErrorCode.QUEUEDATA


class QueuedataUnavailableError(PilotError):
    """No source delivered a usable description.

    Attributes:
        what: what was looked for (``queue CERN-PROD`` or ``storage descriptions``).
        attempts: every source tried, in order, with the reason it failed.
    """

    code = ErrorCode.QUEUEDATA

    def __init__(self, what: str, attempts: Sequence[SourceFailure]) -> None:
        self.what = what
        self.attempts = tuple(attempts)
        tried = "; ".join(f"{label}: {reason}" for label, reason in self.attempts) or "no sources configured"
        super().__init__(f"no description of {what} could be obtained (tried {tried})")


class BadQueuedataError(PilotError):
    """A queue or storage description is not a JSON object of the expected shape; names the field."""

    code = ErrorCode.QUEUEDATANOTOK


class QueueNotActiveError(PilotError):
    """The PanDA queue's ``state`` is not ``ACTIVE``."""

    code = ErrorCode.PANDAQUEUENOTACTIVE


class QueueOfflineError(PilotError):
    """The PanDA queue's ``status`` is ``offline``."""

    code = ErrorCode.PANDAQUEUENOTONLINE


class NoStorageError(PilotError):
    """No storage is defined for an activity, or a named storage is not described or not usable."""

    code = ErrorCode.NOSTORAGE


class NoStorageProtocolError(PilotError):
    """A storage has no protocol for the requested activity (and allowed schemes)."""

    code = ErrorCode.NOSTORAGEPROTOCOL


class NoCopytoolError(PilotError):
    """No copytool is configured for an activity, nor a default."""

    code = ErrorCode.UNKNOWNCOPYTOOL
