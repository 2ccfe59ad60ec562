"""The reference event-processing payload: an example for payload authors, and a test payload for pilots.

Run it as ``python -m pilotlib.eventservice.reference_payload`` in a process whose environment has
``PILOT_EVENTRANGECHANNEL``. For each range it writes ``out_<eventRangeID>.txt`` in the current directory::

    range <eventRangeID>
    LFN <LFN>
    events <startEvent>..<lastEvent>
    event <startEvent>
    ...
    event <lastEvent>

and reports it finished with its CPU and wall seconds. At ``No more events`` it reports any range it still
holds as failed and exits 0. The other options make it a bad payload, to test a pilot's error handling.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotlib.eventservice.client import EventChannelClient, NoChannelError

__all__ = ["main", "write_output"]

#: The range id ``--unknown-range`` reports (the pilot never hands it out).
UNKNOWN_RANGE_ID = "never-given-0"
#: The line ``--garbage-after`` sends (it is in no message of the grammar).
GARBAGE = "this is not a message"
#: ``--crash-after``'s exit status.
CRASH_EXIT = 3
#: The exit status when the channel is missing or broken (no variable, no pilot listening, the pilot hung up).
CHANNEL_EXIT = 2


def write_output(event_range: Mapping[str, Any], directory: Path) -> Path:
    """Write the output file of ``event_range`` in ``directory`` and return its path."""
    range_id, first, last = event_range["eventRangeID"], int(event_range["startEvent"]), event_range["lastEvent"]
    lines = [f"range {range_id}", f"LFN {event_range['LFN']}", f"events {first}..{last}"]
    lines += [f"event {n}" for n in range(first, int(last) + 1)]
    path = directory / f"out_{range_id}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pilotlib.eventservice.reference_payload",
                                     description="The reference event-processing payload.")
    parser.add_argument("--fail", action="append", default=[], metavar="ID", help="report range ID failed")
    parser.add_argument("--crash-after", type=int, metavar="N", help=f"exit {CRASH_EXIT} on receiving range N+1")
    parser.add_argument("--hang-after", type=int, metavar="N", help="sleep forever holding range N+1")
    parser.add_argument("--garbage-after", type=int, metavar="N", help="send a line not in the grammar after N ranges")
    parser.add_argument("--unknown-range", action="store_true", help="first report a range it was never given")
    parser.add_argument("--sleep", type=float, default=0.0, metavar="S", help="seconds to spend on each range")
    parser.add_argument("--exit-code", type=int, default=0, metavar="C", help="exit status at the end")
    return parser.parse_args(argv)


def _process(channel: EventChannelClient, event_range: Mapping[str, Any], options: argparse.Namespace) -> None:
    range_id = event_range["eventRangeID"]
    if range_id in options.fail:
        channel.failed(range_id, "failed on request (--fail)")
        return
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(options.sleep)
    output = write_output(event_range, Path.cwd())
    channel.finished(range_id, str(output), time.process_time() - cpu, time.monotonic() - wall)


def main(argv: Sequence[str] | None = None) -> int:
    """Process the pilot's ranges; return the exit status (``CHANNEL_EXIT`` when the channel fails)."""
    options = _arguments(argv)
    try:
        return _run(options)
    except (NoChannelError, ConnectionError) as error:
        print(f"reference_payload: {error}", file=sys.stderr)
        return CHANNEL_EXIT


def _run(options: argparse.Namespace) -> int:
    with EventChannelClient.from_environment() as channel:
        if options.unknown_range:
            channel.finished(UNKNOWN_RANGE_ID, str(Path.cwd() / f"out_{UNKNOWN_RANGE_ID}.txt"), 0.0, 0.0)
        for done, event_range in enumerate(channel.ranges()):
            if done == options.crash_after:
                print(f"crashing with range {event_range['eventRangeID']}", file=sys.stderr)
                return CRASH_EXIT
            while done == options.hang_after:
                time.sleep(3600)
            _process(channel, event_range, options)
            if done + 1 == options.garbage_after:
                channel.send_line(GARBAGE)
        for range_id in channel.held:
            channel.failed(range_id, "not processed before No more events")
    return int(options.exit_code)


if __name__ == "__main__":
    sys.exit(main())
