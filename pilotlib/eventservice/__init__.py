"""The event service: event ranges handed to the payload one by one over a local channel, their outputs and
statuses reported as they come, and the preparation of merge jobs (see ``docs/eventservice.rst``).

The payload's side is :mod:`pilotlib.eventservice.client` (standard library and attrs only) and the reference
payload ``python -m pilotlib.eventservice.reference_payload``.
"""

from pilotlib.eventservice.book import (
    FailedRange,
    FinishedRange,
    RangeBook,
)
from pilotlib.eventservice.channel import (
    ChannelHandler,
    EventChannel,
)
from pilotlib.eventservice.errors import (
    ChannelError,
    EventServiceFatalError,
    EventServiceRecoverableError,
    MessageHandlingError,
    NoEventsError,
    RangeTimeoutError,
)
from pilotlib.eventservice.feed import (
    RangeFeed,
)
from pilotlib.eventservice.merge import (
    ArchiveTooLargeError,
    BadArchiveError,
    MemberExistsError,
    MergePreparation,
    UnsafeArchiveError,
    WriteToFileError,
    parse_write_to_file,
    prepare_merge,
    rewrite_job_pars,
    unpack_archive,
    write_input_lists,
)
from pilotlib.eventservice.outputs import (
    HarvesterRangeOutputs,
    RangeOutputs,
    StoredRangeOutputs,
    ZippedRangeReporter,
)
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
from pilotlib.eventservice.session import (
    EventSession,
    payload_range,
)

__all__ = [
    "CHANNEL_VARIABLE",
    "NO_MORE_EVENTS",
    "READY",
    "ArchiveTooLargeError",
    "BadArchiveError",
    "ChannelError",
    "ChannelHandler",
    "EventChannel",
    "EventServiceFatalError",
    "EventServiceRecoverableError",
    "EventSession",
    "FailedRange",
    "FinishedRange",
    "HarvesterRangeOutputs",
    "MemberExistsError",
    "MergePreparation",
    "MessageError",
    "MessageHandlingError",
    "NoEventsError",
    "RangeBook",
    "RangeDone",
    "RangeFailed",
    "RangeFeed",
    "RangeOutputs",
    "RangeTimeoutError",
    "Ready",
    "StoredRangeOutputs",
    "UnsafeArchiveError",
    "WriteToFileError",
    "ZippedRangeReporter",
    "format_done",
    "format_failed",
    "format_ranges",
    "parse_answer",
    "parse_message",
    "parse_write_to_file",
    "payload_range",
    "prepare_merge",
    "rewrite_job_pars",
    "unpack_archive",
    "write_input_lists",
]
