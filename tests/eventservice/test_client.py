"""The payload's end of the event-range channel: the client, the reference payload and the sh payload, run for real
against a pilot stand-in that serves a real Unix socket.

The peer is pilot3's ``pilot/eventservice/esprocess/esprocess.py``: ``handle_messages`` (l. 547-560) answers each
``Ready for events`` with a JSON list of ranges or ``No more events``; ``parse_out_message`` (l. 478-525) reads
``<output>,ID:<id>,CPU:<s>,WALL:<s>`` and ``ERR_<TYPE> <id>: <message>``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pilotlib.eventservice.client import ChannelClosedError, ChannelConnectError, EventChannelClient, NoChannelError
from pilotlib.eventservice.protocol import (
    CHANNEL_VARIABLE,
    MAX_MESSAGE_BYTES,
    NO_MORE_EVENTS,
    READY,
    MessageError,
    RangeDone,
    RangeFailed,
    format_ranges,
    parse_message,
)
from pilotlib.eventservice.reference_payload import GARBAGE, UNKNOWN_RANGE_ID

REPO = Path(__file__).resolve().parents[2]
SHELL_PAYLOAD = REPO / "examples" / "es_payload.sh"
HANGUP = None  # an answer of the stand-in: close the connection instead of answering


def a_range(range_id: str, first: int, last: int) -> dict[str, Any]:
    """An event range as the pilot hands it out (the server's fields, and the input's path)."""
    return {"eventRangeID": range_id, "startEvent": first, "lastEvent": last, "LFN": "EVNT.01.pool.root",
            "GUID": "4D3C2B1A-0000-1111-2222-333344445555", "scope": "mc23", "PFN": "/data/EVNT.01.pool.root"}


R1, R2, R3 = a_range("Range-1.a", 1, 3), a_range("Range-2_b", 4, 4), a_range("Range-3", 5, 6)
ANSWERS = (format_ranges([R1]), format_ranges([R2, R3]))


def expected_output(event_range: dict[str, Any]) -> str:
    """The output file of a range, as the reference payload and the sh payload both write it."""
    first, last = event_range["startEvent"], event_range["lastEvent"]
    events = "".join(f"event {n}\n" for n in range(first, last + 1))
    return f"range {event_range['eventRangeID']}\nLFN {event_range['LFN']}\nevents {first}..{last}\n{events}"


class PilotStandIn(threading.Thread):
    """The pilot's side, minimal: accepts one payload, answers each ``Ready for events`` with the next of
    ``answers`` (``HANGUP``: close instead), then ``No more events``; records every line received."""

    def __init__(self, path: str, answers: Sequence[str | None] = ANSWERS) -> None:
        super().__init__(daemon=True)
        self.path, self.answers = path, list(answers)
        self.received: list[str] = []
        self._changed = threading.Condition()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(1)
        self._server.settimeout(30)

    def run(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            for raw in lines:
                with self._changed:
                    self.received.append(raw.decode().removesuffix("\n"))
                    self._changed.notify_all()
                if raw == f"{READY}\n".encode():
                    answer = self.answers.pop(0) if self.answers else NO_MORE_EVENTS
                    if answer is HANGUP:
                        return
                    try:
                        conn.sendall(answer.encode() + b"\n")
                    except OSError:  # the payload hung up in the middle of a long answer
                        return

    def wait_for(self, count: int, timeout: float = 30) -> list[str]:
        """The lines received once there are ``count`` of them."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def socket_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for the channel's socket whose path stays well below the 108-byte limit of a socket address."""
    if len(str(tmp_path / "channel.sock").encode()) < 100:
        yield tmp_path
        return
    short = Path(tempfile.mkdtemp(dir="/tmp"))
    yield short
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The payload's work directory."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def pilot(socket_dir: Path) -> Iterator[PilotStandIn]:
    """A stand-in serving R1, then R2 and R3 in one answer, then ``No more events``."""
    stand_in = PilotStandIn(str(socket_dir / "channel.sock"))
    stand_in.start()
    yield stand_in
    stand_in.close()
    stand_in.join(10)


def serve(socket_dir: Path, answers: Sequence[str | None]) -> PilotStandIn:
    """A started stand-in with its own answers."""
    stand_in = PilotStandIn(str(socket_dir / "other.sock"), answers)
    stand_in.start()
    return stand_in


def reference_payload(pilot: PilotStandIn, workdir: Path, *options: str, wait: bool = True,
                      ) -> subprocess.Popen[str]:
    """``python -m pilotlib.eventservice.reference_payload`` with the channel in its environment."""
    env = {**os.environ, CHANNEL_VARIABLE: pilot.path, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "pilotlib.eventservice.reference_payload", *options],
                               cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        process.wait(60)
    return process


def done(message: str) -> RangeDone:
    parsed = parse_message(message)
    assert isinstance(parsed, RangeDone), message
    return parsed


# --- the reference payload ------------------------------------------------------------------------------------


def test_reference_payload_processes_every_range(pilot: PilotStandIn, workdir: Path) -> None:
    """It asks for ranges until ``No more events``, writes one output per range and reports each finished with
    its output's absolute path, CPU and WALL; ranges of one answer are reported before the next ``Ready``; exit 0.
    (esprocess.py l. 555-560: one answer per Ready; l. 510-520: the finished message's KEY:VALUE fields.)"""
    process = reference_payload(pilot, workdir, "--sleep", "0.2")
    assert process.returncode == 0
    received = pilot.wait_for(6)
    assert len(received) == 6 and [received[i] for i in (0, 2, 5)] == [READY] * 3
    for message, event_range in zip((received[1], received[3], received[4]), (R1, R2, R3), strict=True):
        output = workdir / f"out_{event_range['eventRangeID']}.txt"
        assert message.startswith(f"{output},ID:{event_range['eventRangeID']},CPU:")
        report = done(message)
        assert (report.range_id, report.output, report.extra) == (event_range["eventRangeID"], str(output), {})
        assert report.cpu is not None and 0 <= report.cpu < 0.2
        assert report.wall is not None and 0.2 <= report.wall < 5
        assert output.read_text() == expected_output(event_range)
    assert sorted(p.name for p in workdir.iterdir()) == ["out_Range-1.a.txt", "out_Range-2_b.txt", "out_Range-3.txt"]


def test_fail_reports_the_range_failed(pilot: PilotStandIn, workdir: Path) -> None:
    """``--fail ID`` reports that range with pilot3's error form ``ERR_<TYPE> <id>: <message>`` (esprocess.py
    l. 502-505) and writes no output for it; the others finish; exit 0."""
    process = reference_payload(pilot, workdir, "--fail", "Range-2_b")
    assert process.returncode == 0
    received = pilot.wait_for(6)
    assert received[3] == "ERR_PAYLOAD_RANGE Range-2_b: failed on request (--fail)"
    assert parse_message(received[3]) == RangeFailed("Range-2_b", "ERR_PAYLOAD_RANGE", "failed on request (--fail)")
    assert [done(m).range_id for m in (received[1], received[4])] == ["Range-1.a", "Range-3"]
    assert not (workdir / "out_Range-2_b.txt").exists()


def test_crash_after_exits_3_holding_a_range(pilot: PilotStandIn, workdir: Path) -> None:
    """``--crash-after 1`` reports one range, receives the next two and exits 3 without a word about them."""
    process = reference_payload(pilot, workdir, "--crash-after", "1")
    assert process.returncode == 3
    pilot.join(10)
    assert pilot.received[0] == READY and done(pilot.received[1]).range_id == "Range-1.a"
    assert pilot.received[2:] == [READY]
    assert [p.name for p in workdir.iterdir()] == ["out_Range-1.a.txt"]


def test_hang_after_holds_a_range_and_stays_silent(pilot: PilotStandIn, workdir: Path) -> None:
    """``--hang-after 1`` reports one range, asks again, then holds its ranges and sends nothing more."""
    process = reference_payload(pilot, workdir, "--hang-after", "1", wait=False)
    try:
        received = pilot.wait_for(3)
        time.sleep(1.0)
        assert process.poll() is None
        assert pilot.received == received
        assert received[2] == READY and done(received[1]).range_id == "Range-1.a"
    finally:
        process.kill()
        process.wait(10)


def test_garbage_after_sends_a_line_not_in_the_grammar(pilot: PilotStandIn, workdir: Path) -> None:
    """``--garbage-after 1`` sends one line that the grammar rejects after the first range, then carries on."""
    process = reference_payload(pilot, workdir, "--garbage-after", "1")
    assert process.returncode == 0
    received = pilot.wait_for(7)
    assert received[2] == GARBAGE
    with pytest.raises(MessageError, match="not a message of the channel"):
        parse_message(received[2])
    assert len(received) == 7 and [received[i] for i in (0, 3, 6)] == [READY] * 3


def test_unknown_range_reports_an_id_never_given(pilot: PilotStandIn, workdir: Path) -> None:
    """``--unknown-range`` first reports a finished range the pilot never handed out, then works normally."""
    process = reference_payload(pilot, workdir, "--unknown-range")
    assert process.returncode == 0
    received = pilot.wait_for(7)
    assert done(received[0]).range_id == UNKNOWN_RANGE_ID
    assert UNKNOWN_RANGE_ID not in {r["eventRangeID"] for r in (R1, R2, R3)}
    assert received[1] == READY


def test_exit_code_is_the_payloads_exit_status(pilot: PilotStandIn, workdir: Path) -> None:
    """``--exit-code 7`` processes every range normally and exits 7."""
    process = reference_payload(pilot, workdir, "--exit-code", "7")
    assert process.returncode == 7
    assert len(pilot.wait_for(6)) == 6


def test_reference_payload_without_a_channel_exits_2(workdir: Path) -> None:
    """Without PILOT_EVENTRANGECHANNEL, or with a path nobody listens on, it says so in one line and exits 2."""
    env = {k: v for k, v in os.environ.items() if k != CHANNEL_VARIABLE} | {"PYTHONPATH": str(REPO)}
    for extra, said in (({}, f"{CHANNEL_VARIABLE} is not set"),
                        ({CHANNEL_VARIABLE: str(workdir / "none.sock")}, "cannot connect to the pilot's channel")):
        finished = subprocess.run([sys.executable, "-m", "pilotlib.eventservice.reference_payload"], cwd=workdir,
                                  env=env | extra, capture_output=True, text=True, timeout=60, check=False)
        assert finished.returncode == 2
        assert finished.stderr.startswith(f"reference_payload: {said}") and finished.stderr.count("\n") == 1


# --- the sh payload -------------------------------------------------------------------------------------------


def shell_payload(pilot: PilotStandIn, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], CHANNEL_VARIABLE: pilot.path}
    return subprocess.run(["/bin/sh", str(SHELL_PAYLOAD)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_shell_payload_speaks_the_same_protocol(pilot: PilotStandIn, workdir: Path) -> None:
    """examples/es_payload.sh (sh + socat) sends exactly the messages the Python payload sends, with whole-second
    WALL and CPU 0, and writes the same output files; it exits 0 after ``No more events``."""
    assert shutil.which("socat"), "socat is installed by scripts/setup.sh"
    finished = shell_payload(pilot, workdir)
    assert finished.returncode == 0, finished.stderr
    received = pilot.wait_for(6)
    assert len(received) == 6 and [received[i] for i in (0, 2, 5)] == [READY] * 3
    for message, event_range in zip((received[1], received[3], received[4]), (R1, R2, R3), strict=True):
        output = workdir / f"out_{event_range['eventRangeID']}.txt"
        assert message in (f"{output},ID:{event_range['eventRangeID']},CPU:0,WALL:{s}" for s in (0, 1))
        assert output.read_text() == expected_output(event_range)


@pytest.mark.reliability("faults", "event service", "garbage answer to the sh payload: it stops with status 1")
def test_shell_payload_exits_1_on_a_bad_answer(socket_dir: Path, workdir: Path) -> None:
    """An answer in no form of the grammar makes the sh payload stop with status 1 (socat passes it on)."""
    stand_in = serve(socket_dir, ["Ready for what?"])
    try:
        finished = shell_payload(stand_in, workdir)
    finally:
        stand_in.close()
    assert finished.returncode == 1, finished.stderr
    assert "not an answer of the channel: Ready for what?" in finished.stderr


# --- the client -----------------------------------------------------------------------------------------------


def test_client_yields_ranges_and_tracks_what_it_holds(pilot: PilotStandIn) -> None:
    """``ranges()`` sends one ``Ready`` per answer and yields the ranges as the pilot sent them; ``held`` lists the
    ranges received and not reported; ``no_more_events`` is set at the end."""
    with EventChannelClient.from_environment({CHANNEL_VARIABLE: pilot.path}, connect_timeout=5) as channel:
        got = iter(channel.ranges())
        assert next(got) == R1 and channel.held == ("Range-1.a",)
        channel.finished("Range-1.a", "/work/out 1.txt", cpu=1.25, wall=2)
        assert next(got) == R2 and channel.held == ("Range-2_b", "Range-3")
        channel.failed("Range-3", "bad\nevent", error_type="ERR_TE_FATAL")
        assert channel.held == ("Range-2_b",)
        assert list(got) == [R3] and channel.no_more_events
    assert pilot.wait_for(5) == [READY, "/work/out 1.txt,ID:Range-1.a,CPU:1.25,WALL:2", READY,
                                 "ERR_TE_FATAL Range-3: bad event", READY]


@pytest.mark.reliability("faults", "event service",
                         "pilot hangs up the channel instead of answering: ChannelClosedError")
def test_client_raises_channel_closed_when_the_pilot_hangs_up(socket_dir: Path) -> None:
    """The pilot closing the channel instead of answering raises ChannelClosedError; sending afterwards too."""
    stand_in = serve(socket_dir, [HANGUP])
    try:
        with EventChannelClient(stand_in.path, connect_timeout=5) as channel:
            with pytest.raises(ChannelClosedError, match=r"closed the channel .* without answering"):
                channel.request()
            stand_in.join(10)
            with pytest.raises(ChannelClosedError, match="closed the channel"):
                for _ in range(10):  # the first send after the peer closed may still be buffered
                    channel.failed("Range-1", "late")
    finally:
        stand_in.close()


@pytest.mark.parametrize(("answer", "match"), [
    ("Ready for events", "neither ranges nor 'No more events'"),
    ('{"eventRangeID": "r"}', "a list of objects with eventRangeID"),
    ('[{"startEvent": 1}]', "a list of objects with eventRangeID"),
])
@pytest.mark.reliability("faults", "event service", "garbage answer to Ready on the channel: MessageError")
def test_client_rejects_an_answer_not_in_the_grammar(socket_dir: Path, answer: str, match: str) -> None:
    """An answer that is neither a JSON list of ranges nor ``No more events`` raises protocol.MessageError."""
    stand_in = serve(socket_dir, [answer])
    try:
        with EventChannelClient(stand_in.path) as channel, pytest.raises(MessageError, match=match):
            channel.request()
    finally:
        stand_in.close()


@pytest.mark.reliability("faults", "event service",
                         "overlong answer on the channel: MessageError, not read without end")
def test_client_rejects_an_answer_longer_than_the_limit(socket_dir: Path) -> None:
    """An answer longer than MAX_MESSAGE_BYTES raises MessageError rather than being read without end."""
    stand_in = serve(socket_dir, ["[" + " " * MAX_MESSAGE_BYTES + "]"])
    try:
        with EventChannelClient(stand_in.path) as channel, pytest.raises(MessageError, match="longer than"):
            channel.request()
    finally:
        stand_in.close()


def test_client_refuses_a_message_of_two_lines(pilot: PilotStandIn) -> None:
    """A message holding a newline would be two messages: send_line raises MessageError and sends nothing."""
    with EventChannelClient(pilot.path) as channel:
        with pytest.raises(MessageError, match="one line"):
            channel.send_line("a,ID:r\nReady for events")
        with pytest.raises(MessageError, match="no comma"):
            channel.finished("r", "out,1.txt", 0, 0)
    pilot.join(10)
    assert pilot.received == []


def test_client_after_close_raises_channel_closed(pilot: PilotStandIn) -> None:
    """A closed client raises ChannelClosedError on use; closing twice is harmless."""
    channel = EventChannelClient(pilot.path)
    channel.close()
    channel.close()
    with pytest.raises(ChannelClosedError, match="closed by this client"):
        channel.request()
    with pytest.raises(ChannelClosedError, match="closed by this client"):
        channel.finished("r", "out.txt", 0, 0)


def test_client_without_a_channel_variable_raises_no_channel() -> None:
    """An environment without PILOT_EVENTRANGECHANNEL (or with it empty) raises NoChannelError, a LookupError."""
    for environ in ({}, {CHANNEL_VARIABLE: ""}):
        with pytest.raises(NoChannelError, match=f"{CHANNEL_VARIABLE} is not set"):
            EventChannelClient.from_environment(environ)


def test_client_connect_errors_name_the_socket(socket_dir: Path) -> None:
    """No socket at the path, or a socket nobody listens on, raises ChannelConnectError naming the path."""
    missing = str(socket_dir / "missing.sock")
    with pytest.raises(ChannelConnectError, match=rf"'{re.escape(missing)}': .*No such file"):
        EventChannelClient(missing, connect_timeout=1)
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deaf.bind(str(socket_dir / "deaf.sock"))
    with deaf, pytest.raises(ChannelConnectError, match=r"deaf\.sock'.*Connection refused"):
        EventChannelClient(str(socket_dir / "deaf.sock"), connect_timeout=1)


@pytest.mark.reliability("faults", "event service",
                         "pilot not accepting (full backlog): connect waits, then ChannelConnectError")
def test_client_connect_waits_for_a_full_backlog_then_times_out(socket_dir: Path) -> None:
    """A pilot whose backlog is full (it does not accept) makes the connect wait up to connect_timeout, then
    ChannelConnectError; a Unix socket's EAGAIN is not taken for a refusal."""
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(str(socket_dir / "busy.sock"))
    busy.listen(0)
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(str(socket_dir / "busy.sock"))
    started = time.monotonic()
    with busy, first, pytest.raises(ChannelConnectError, match=r"timed out after 0\.5 s"):
        EventChannelClient(str(socket_dir / "busy.sock"), connect_timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3
