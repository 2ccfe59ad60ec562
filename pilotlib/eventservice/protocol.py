"""The payload channel's messages: what an event-processing payload and the pilot say to each other.

The vocabulary is pilot3's AthenaMP/yampl exchange (``pilot/eventservice/esprocess/esprocess.py``:
``handle_messages`` answers ``"Ready for events"`` with a JSON list of ranges or ``"No more events"``;
``parse_out_message`` reads ``<output>,ID:<id>,CPU:<s>,WALL:<s>`` and ``ERR_<TYPE> <id>: <message>``), so an
AthenaMP-style payload needs only a transport adapter. The transport is a local stream socket whose address the
payload finds in ``PILOT_EVENTRANGECHANNEL``; each message is one line of UTF-8 text ending in ``\\n`` (a message
never holds a newline: the JSON of the ranges is written on one line).

Grammar (``docs/eventservice-channel.rst`` has the sequence diagram)::

    payload -> pilot
      ready     = "Ready for events"
      finished  = OUTPUT "," "ID:" RANGE_ID *( "," KEY ":" VALUE )     ; KEY CPU and WALL (seconds) are read
      failed    = "ERR_" TYPE " " RANGE_ID ":" [" "] MESSAGE          ; TYPE: capitals and underscores
    pilot -> payload
      ranges    = JSON list of objects {eventRangeID, startEvent, lastEvent, LFN, GUID, scope, PFN?}
      no_more   = "No more events"

``RANGE_ID`` is letters, digits and ``._-`` (pilot3's pattern). ``OUTPUT`` is the path of the range's output file,
absolute or relative to the payload's work directory; it holds no comma.

This module imports nothing but the standard library and attrs: the payload side (:mod:`.client`) uses it too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "CHANNEL_VARIABLE",
    "MAX_MESSAGE_BYTES",
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

#: The environment variable holding the channel's address (a socket path), as pilot3 exports it.
CHANNEL_VARIABLE = "PILOT_EVENTRANGECHANNEL"
#: The payload's request for work.
READY = "Ready for events"
#: The pilot's answer when there is no more work.
NO_MORE_EVENTS = "No more events"
#: The longest message either side accepts (bytes, the newline included); a longer one is a protocol error.
MAX_MESSAGE_BYTES = 1 << 20

_RANGE_ID = r"[0-9A-Za-z._\-]+"
_FAILED = re.compile(rf"^(ERR_[A-Z_]+) ({_RANGE_ID}): ?(.*)$", re.DOTALL)
_ID_PART = re.compile(rf"^ID:({_RANGE_ID})$")
_KEY_VALUE = re.compile(r"^([A-Za-z_]+):(.*)$")


class MessageError(ValueError):
    """A message that is not in the grammar (the text says what is wrong)."""


@attrs.frozen
class Ready:
    """``Ready for events``: the payload wants ranges."""


@attrs.frozen
class RangeDone:
    """A range finished: its output file, the CPU and wall seconds the payload reports, the other keys."""

    range_id: str
    output: str
    cpu: float | None = None
    wall: float | None = None
    extra: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RangeFailed:
    """A range failed: pilot3's error type (``ERR_ATHENAMP_PROCESS``, ...) and the payload's message."""

    range_id: str
    error_type: str
    message: str


Message = Ready | RangeDone | RangeFailed


def parse_message(line: str) -> Message:
    """One message of the payload (without its newline).

    Raises:
        MessageError: it is none of ``ready``, ``finished``, ``failed``.
    """
    text = line.strip()
    if text == READY:
        return Ready()
    if text.startswith("ERR"):
        found = _FAILED.match(text)
        if found is None:
            raise MessageError(f"an error message must be 'ERR_<TYPE> <range id>: <message>', got {_cut(text)}")
        return RangeFailed(range_id=found.group(2), error_type=found.group(1), message=found.group(3))
    return _parse_done(text)


def _parse_done(text: str) -> RangeDone:
    output, *parts = text.split(",")
    if not output or not parts:
        raise MessageError(f"not a message of the channel: {_cut(text)}")
    found = _ID_PART.match(parts[0])
    if found is None:
        raise MessageError(f"a finished range's second field must be ID:<range id>, got {_cut(parts[0])}")
    values: dict[str, str] = {}
    for part in parts[1:]:
        pair = _KEY_VALUE.match(part)
        if pair is None:
            raise MessageError(f"a finished range's fields must be KEY:VALUE, got {_cut(part)}")
        values[pair.group(1).upper()] = pair.group(2)
    cpu, wall = _seconds(values.pop("CPU", None), "CPU"), _seconds(values.pop("WALL", None), "WALL")
    return RangeDone(range_id=found.group(1), output=output, cpu=cpu, wall=wall, extra=values)


def _seconds(value: str | None, key: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise MessageError(f"{key} must be a number of seconds, got {_cut(value)}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise MessageError(f"{key} must be a non-negative number of seconds, got {_cut(value)}")
    return seconds


def format_done(range_id: str, output: str, cpu: float, wall: float) -> str:
    """The ``finished`` message of a range (the payload's side)."""
    if "," in output or "\n" in output:
        raise MessageError(f"an output path holds no comma or newline: {_cut(output)}")
    return f"{output},ID:{range_id},CPU:{cpu:g},WALL:{wall:g}"


def format_failed(range_id: str, message: str, error_type: str = "ERR_PAYLOAD_RANGE") -> str:
    """The ``failed`` message of a range (the payload's side); newlines in ``message`` become spaces."""
    if not re.fullmatch(r"ERR_[A-Z_]+", error_type):
        raise MessageError(f"an error type is ERR_ and capitals: {_cut(error_type)}")
    return f"{error_type} {range_id}: {' '.join(message.split())}"


def format_ranges(ranges: Sequence[Mapping[str, Any]]) -> str:
    """The pilot's answer with ``ranges`` (a JSON list on one line), or ``No more events`` when empty."""
    return json.dumps(list(ranges), separators=(",", ":")) if ranges else NO_MORE_EVENTS


def parse_answer(line: str) -> list[dict[str, Any]]:
    """The pilot's answer to ``Ready for events`` (the payload's side): the ranges, empty for ``No more events``.

    Raises:
        MessageError: it is neither.
    """
    text = line.strip()
    if text == NO_MORE_EVENTS:
        return []
    try:
        ranges = json.loads(text)
    except ValueError:
        raise MessageError(f"the pilot's answer is neither ranges nor '{NO_MORE_EVENTS}': {_cut(text)}") from None
    if not isinstance(ranges, list) or not all(isinstance(r, dict) and "eventRangeID" in r for r in ranges):
        raise MessageError(f"the pilot's ranges must be a list of objects with eventRangeID: {_cut(text)}")
    return ranges


def _cut(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
