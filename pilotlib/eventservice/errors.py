"""The event service's errors, each with its one PanDA code (pilot3 ``pilot/common/errorcodes.py``)."""

from __future__ import annotations

from pilotlib.errors import ErrorCode, PilotError

__all__ = [
    "ChannelError",
    "EventServiceFatalError",
    "EventServiceRecoverableError",
    "MessageHandlingError",
    "NoEventsError",
    "RangeTimeoutError",
]


class ChannelError(PilotError):
    """The payload channel cannot be opened (its path too long, its directory not writable): ESFATAL 1228."""

    code = ErrorCode.ESFATAL


class MessageHandlingError(PilotError):
    """The payload said something outside the channel's grammar, or reported a range it does not hold (never
    given, or already reported): MESSAGEHANDLINGFAILURE 1240."""

    code = ErrorCode.MESSAGEHANDLINGFAILURE


class NoEventsError(PilotError):
    """The job's first request for ranges got none: ESNOEVENTS 1238."""

    code = ErrorCode.ESNOEVENTS


class EventServiceRecoverableError(PilotError):
    """The event service failed in a way another attempt may not (the range source failed, the ranges' outputs
    could not be stored): ESRECOVERABLE 1224."""

    code = ErrorCode.ESRECOVERABLE


class RangeTimeoutError(EventServiceRecoverableError):
    """The payload held ranges and said nothing for longer than the range timeout: ESRECOVERABLE 1224."""


class EventServiceFatalError(PilotError):
    """Every range the payload was given failed: ESFATAL 1228."""

    code = ErrorCode.ESFATAL
