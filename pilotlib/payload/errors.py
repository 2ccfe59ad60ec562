"""Errors of the payload subsystem, each with its exact PanDA code (numbers from pilot3 ``pilot/common/errorcodes.py``).

A monitor returns one of these when its limit is breached; the runner kills the payload and puts the error into the
:class:`~pilotlib.payload.PayloadResult`, where the pipeline turns it into the job's outcome.
"""

from __future__ import annotations

from pilotlib.errors import ErrorCode, PilotError

__all__ = [
    "LoopingJobError",
    "MemoryExceededError",
    "NoLocalSpaceError",
    "PandaKillError",
    "PayloadError",
    "PayloadKilledError",
    "PayloadStartError",
    "ReachedMaxTimeError",
    "StdoutTooBigError",
    "TransformNotFoundError",
    "TrfChmodError",
    "TrfDownloadError",
    "WorkdirTooLargeError",
]


class PayloadError(PilotError):
    """Base of the payload subsystem's errors."""

    code = ErrorCode.PAYLOADEXECUTIONFAILURE


class PayloadStartError(PayloadError):
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


class LoopingJobError(PayloadError):
    """No file in the work directory was modified for longer than the looping limit."""

    code = ErrorCode.LOOPINGJOB


class MemoryExceededError(PayloadError):
    """The payload's memory (PSS of its process tree) went above the limit."""

    code = ErrorCode.PAYLOADEXCEEDMAXMEM


class WorkdirTooLargeError(PayloadError):
    """The work directory grew above the allowed size (``maxwdir``)."""

    code = ErrorCode.USERDIRTOOLARGE


class StdoutTooBigError(PayloadError):
    """The payload's stdout (or stderr) file grew above the allowed size."""

    code = ErrorCode.STDOUTTOOBIG


class NoLocalSpaceError(PayloadError):
    """Free space on the work directory's file system fell below the minimum."""

    code = ErrorCode.NOLOCALSPACE


class ReachedMaxTimeError(PayloadError):
    """The job's wall-time limit or the pilot's remaining lifetime was reached."""

    code = ErrorCode.REACHEDMAXTIME


class PandaKillError(PayloadError):
    """The PanDA server asked for the job to be killed (``tobekilled``)."""

    code = ErrorCode.PANDAKILL


class PayloadKilledError(PayloadError):
    """The payload was stopped by the pilot's stop event (a signal to the pilot) without a more specific reason."""

    code = ErrorCode.KILLSIGNAL
