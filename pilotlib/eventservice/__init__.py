"""The event service: event ranges handed to the payload one by one over a local channel, their outputs and
statuses reported as they come (see ``docs/eventservice.rst``)."""

from pilotlib.eventservice.protocol import (
    CHANNEL_VARIABLE,
    NO_MORE_EVENTS,
    READY,
    MessageError,
    RangeDone,
    RangeFailed,
    Ready,
    format_done,
    format_failed,
    format_ranges,
    parse_answer,
    parse_message,
)

__all__ = [
    "CHANNEL_VARIABLE",
    "NO_MORE_EVENTS",
    "READY",
    "MessageError",
    "RangeDone",
    "RangeFailed",
    "Ready",
    "format_done",
    "format_failed",
    "format_ranges",
    "parse_answer",
    "parse_message",
]
