"""Errors of the payload subsystem, each with its exact PanDA code (numbers from pilot3 ``pilot/common/errorcodes.py``).

The monitors' errors are the ground-floor classes of :mod:`pilotlib.errors` (one type per failure, whoever detects
it), re-exported here; the classes defined here are the ones only the payload subsystem raises. A monitor returns
one of them when its limit is breached; the runner kills the payload and puts the error into the
:class:`~pilotlib.payload.PayloadResult`, where the pipeline turns it into the job's outcome.
"""

from __future__ import annotations

from pilotlib.errors import (
    ErrorCode,
    LoopingJobError,
    MemoryLimitExceededError,
    NoLocalSpaceError,
    PandaKillError,
    PayloadError,
    PayloadExecutionError,
    ReachedMaxTimeError,
    StdoutTooBigError,
    UserDirTooLargeError,
)

__all__ = [
    "LoopingJobError",
    "MemoryLimitExceededError",
    "NoLocalSpaceError",
    "PandaKillError",
    "PayloadError",
    "PayloadExecutionError",
    "PayloadKilledError",
    "PayloadStartError",
    "ReachedMaxTimeError",
    "StdoutTooBigError",
    "TransformNotFoundError",
    "TrfChmodError",
    "TrfDownloadError",
    "UserDirTooLargeError",
]


class PayloadStartError(PayloadExecutionError):
    """The payload process could not be started (exec failed, bad work directory)."""

    code = ErrorCode.PAYLOADEXECUTIONFAILURE


class TrfDownloadError(PayloadError):
    """The transformation URL could not be downloaded."""

    code = ErrorCode.TRFDOWNLOADFAILURE


class TrfChmodError(PayloadError):
    """The downloaded transformation could not be made executable."""

    code = ErrorCode.CHMODTRF


class TransformNotFoundError(PayloadError):
    """The transformation is neither in the work directory nor on the search path, or its name is unsafe."""

    code = ErrorCode.TRANSFORMNOTFOUND


class PayloadKilledError(PayloadError):
    """The payload was stopped by the pilot's stop flag without a more specific reason."""

    code = ErrorCode.KILLSIGNAL
