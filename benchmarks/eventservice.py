"""Event-service throughput: ranges per second through the pilot's payload channel, and server round trips per range.

Run: ``.venv/bin/python benchmarks/eventservice.py [--ranges N] [--server-ranges M] [--repeat R] [--gap S]``
(defaults 5000, 1000, 3, 600; prints the figures; takes well under a minute).

1. Ranges per second, empty events: the pilot's pieces as :mod:`pilotlib.workflow.events` wires them
   (:class:`~pilotlib.eventservice.session.EventSession`, its :class:`~pilotlib.eventservice.feed.RangeFeed` and the
   :class:`~pilotlib.eventservice.channel.EventChannel` in the work directory) over an in-memory range source of N
   ranges and outputs that do nothing; the payload is the real reference payload
   (``python -m pilotlib.eventservice.reference_payload``: one small output file per range) in a process of its
   own. Each feed setting is ``ahead = batch`` (1, 8, 100; the workflow's default is 8 and 8). The wall time is
   from the payload's start to its exit; ``net`` takes off the payload's fixed cost (interpreter, imports, connect),
   measured in the same run as a payload given no range. Baselines in the same run:

   - ``bare channel + payload``: the same reference payload against a bare Unix-socket server (a thread per
     connection that answers each ``Ready for events`` with a prepared range and reads the rest; no session, feed,
     book or parsing): the ratio to it is the cost of the pilot's protocol machinery, the payload's own work equal;
   - ``bare echo in-process``: one ``Ready``/answer/finished exchange per range over a socket pair in this
     process, no payload process and no file: the transport's floor.

   Also the source's requests (the feed's ``requests``) and the mean ranges asked for per request.
2. Server round trips per 100 ranges: the same pieces, with :class:`pilotlib.panda.PandaClient` against the local
   development server (:class:`panda_devserver.DevServer` on 127.0.0.1, a free port) as the range source and
   :class:`~pilotlib.eventservice.outputs.StoredRangeOutputs` as the outputs. Its store callable computes the tar's
   adler32 and returns a :class:`~pilotlib.panda.base.ZipRecord` without copying the tar anywhere (no storage
   transfer is measured). A watcher calls ``flush(final=False)`` every second as the workflow's does, with the
   stage-out gap ``--gap`` (the pilot's default 600 s), and the final flush runs after the payload's exit. Counted by
   the server: ``getEventRanges`` and ``updateEventRanges`` requests; with the wall time.

Goal (the issue): over 1,000 ranges per second on this machine.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from panda_devserver import DevServer  # noqa: E402
from pilotlib.errors import PilotError  # noqa: E402
from pilotlib.eventservice.book import FailedRange, FinishedRange  # noqa: E402
from pilotlib.eventservice.channel import EventChannel  # noqa: E402
from pilotlib.eventservice.feed import RangeFeed  # noqa: E402
from pilotlib.eventservice.outputs import RangeOutputs, StoredRangeOutputs  # noqa: E402
from pilotlib.eventservice.protocol import CHANNEL_VARIABLE, NO_MORE_EVENTS, READY, format_ranges  # noqa: E402
from pilotlib.eventservice.session import EventSession, payload_range  # noqa: E402
from pilotlib.job import Job  # noqa: E402
from pilotlib.panda import PandaClient  # noqa: E402
from pilotlib.panda.base import (  # noqa: E402
    EventRange,
    EventRangeSource,
    EventRangeUpdate,
    JobRequest,
    UpdateAnswer,
    ZipRecord,
)
from pilotlib.transfer.checksum import calculate_checksum  # noqa: E402

BATCHES = (1, 8, 100)
CHANNEL_NAME = "pilot-events.sock"  # pilotlib.workflow.events.CHANNEL_NAME
PAYLOAD = [sys.executable, "-m", "pilotlib.eventservice.reference_payload"]


def _ranges(panda_id: int, count: int) -> list[EventRange]:
    return [EventRange(f"1-{panda_id}-1-{n}-1", n, n, "EVNT.pool.root", "guid-1", "bench") for n in range(1, count + 1)]


class ListSource:
    """An in-memory :class:`~pilotlib.panda.base.EventRangeSource`: hands out a list, counts the requests."""

    def __init__(self, ranges: Sequence[EventRange]) -> None:
        self._ranges = list(ranges)
        self._next = 0
        self._lock = threading.Lock()
        self.asked: list[int] = []

    def get_event_ranges(self, job: Job, n_ranges: int) -> Sequence[EventRange]:
        """The next ``n_ranges`` of the list."""
        with self._lock:
            self.asked.append(n_ranges)
            chunk = self._ranges[self._next:self._next + n_ranges]
            self._next += len(chunk)
        return chunk

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Accepted."""
        return UpdateAnswer(accepted=True)


class NullOutputs:
    """A :class:`~pilotlib.eventservice.outputs.RangeOutputs` that keeps nothing and reports nothing."""

    def finished(self, item: FinishedRange) -> None:
        """Nothing."""

    def failed(self, items: Sequence[FailedRange]) -> None:
        """Nothing."""

    def flush(self, final: bool) -> PilotError | None:
        """Nothing."""
        return None


def _payload(workdir: Path, address: str, sleep: float = 0.0) -> float:
    """Run the reference payload in ``workdir`` against the channel at ``address`` (``sleep`` seconds per range);
    its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO), CHANNEL_VARIABLE: address}
    began = time.perf_counter()
    subprocess.run([*PAYLOAD, "--sleep", str(sleep)], cwd=workdir, env=env, check=True)
    return time.perf_counter() - began


class Piloted:
    """One pilot-side run: the session, its feed and its channel as the workflow wires them."""

    def __init__(self, workdir: Path, source: EventRangeSource, job: Job, outputs: RangeOutputs, batch: int) -> None:
        workdir.mkdir(parents=True)
        self.workdir = workdir
        self.session = EventSession(workdir, outputs, on_broken=self._broken, deadline=None)
        self.feed = RangeFeed(source, job, ahead=batch, batch=batch, budget=self.session.budget)
        self.session.feed = self.feed
        self.channel = EventChannel(workdir / CHANNEL_NAME, self.session)
        self.errors: list[PilotError] = []

    def _broken(self, error: PilotError) -> None:
        self.errors.append(error)

    def run(self, watch: Callable[[], object] | None = None, sleep: float = 0.0) -> float:
        """Start the feed and the channel, run the payload to its end, close; the payload's wall seconds."""
        self.feed.start()
        self.channel.open()
        ended = threading.Event()
        watcher = None
        if watch is not None:
            watcher = threading.Thread(target=_every_second, args=(ended, watch), daemon=True)
            watcher.start()
        try:
            wall = _payload(self.workdir, self.channel.address, sleep)
        finally:
            ended.set()
            if watcher is not None:
                watcher.join()
            self.channel.close()
            self.feed.close()
        return wall


def _every_second(ended: threading.Event, call: Callable[[], object]) -> None:
    """Call ``call`` every second until ``ended`` (the workflow's watcher)."""
    while not ended.wait(1.0):
        call()


def _serve_bare(conn: socket.socket, answers: Iterator[str]) -> None:
    """Answer each ``Ready for events`` on ``conn`` with the next of ``answers`` (then ``No more events``)."""
    ready = READY.encode() + b"\n"
    with conn, conn.makefile("rb") as reader:
        for line in reader:
            if line == ready:
                conn.sendall(next(answers, NO_MORE_EVENTS).encode() + b"\n")


class BareChannel:
    """The baseline server: answers each ``Ready for events`` with the next prepared line, reads anything else."""

    def __init__(self, path: Path, answers: Sequence[str]) -> None:
        self._answers = iter(answers)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self.address = str(path)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=_serve_bare, args=(conn, self._answers), daemon=True).start()

    def close(self) -> None:
        """Stop listening."""
        self._server.close()


def _answers(workdir: Path, ranges: Sequence[EventRange]) -> list[str]:
    return [format_ranges([payload_range(item, workdir)]) for item in ranges]


def bare_payload(workdir: Path, count: int) -> float:
    """The reference payload against the bare server: its wall seconds."""
    workdir.mkdir(parents=True)
    channel = BareChannel(workdir / CHANNEL_NAME, _answers(workdir, _ranges(1, count)))
    try:
        return _payload(workdir, channel.address)
    finally:
        channel.close()


def bare_echo(workdir: Path, count: int) -> float:
    """``count`` Ready/answer/finished exchanges over a socket pair in this process: seconds."""
    answers = _answers(workdir, _ranges(1, count))
    pilot, payload = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = threading.Thread(target=_serve_bare, args=(pilot, iter(answers)), daemon=True)
    server.start()
    reader = payload.makefile("rb")
    ready = READY.encode() + b"\n"
    began = time.perf_counter()
    for n in range(count):
        payload.sendall(ready)
        reader.readline()
        payload.sendall(f"out_{n}.txt,ID:1-1-1-{n}-1,CPU:0,WALL:0\n".encode())
    seconds = time.perf_counter() - began
    reader.close()
    payload.close()
    server.join()
    return seconds


@dataclasses.dataclass
class Row:
    """One line of part 1: its wall times and, for the pilot's rows, what the last run counted."""

    label: str
    walls: list[float] = dataclasses.field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> float:
        """The shortest wall time."""
        return min(self.walls)

    @property
    def median(self) -> float:
        """The median wall time."""
        return statistics.median(self.walls)


def _pilot_run(base: Path, job: Job, count: int, batch: int) -> tuple[float, str]:
    source = ListSource(_ranges(1, count))
    run = Piloted(base, source, job, NullOutputs(), batch)
    wall = run.run()
    asked = statistics.mean(source.asked) if source.asked else 0.0
    return wall, (f"{run.feed.requests:8d} {asked:9.2f}   finished={run.session.book.finished} "
                  f"broken={len(run.errors)}")


def channel_figures(base: Path, count: int, repeat: int) -> None:
    """Part 1: print ranges per second for each feed setting and the baselines (the runs taken in turn, so that a
    change of the machine's load touches every row alike)."""
    job = Job(panda_id=1, jobset_id=2, task_id=3)
    empty, bare, echo = Row("payload given no range"), Row("bare channel + payload"), Row("bare echo in-process")
    batches = (*BATCHES, count)
    pilots = [Row(f"pilot ahead=batch={batch}") for batch in batches]
    for i in range(repeat):
        empty.walls.append(Piloted(base / f"empty{i}", ListSource([]), job, NullOutputs(), 8).run())
        bare.walls.append(bare_payload(base / f"bare{i}", count))
        echo.walls.append(bare_echo(base, count))
        for batch, row in zip(batches, pilots, strict=True):
            wall, row.note = _pilot_run(base / f"b{batch}-{i}", job, count, batch)
            row.walls.append(wall)
    fixed = empty.best
    print(f"part 1: {count} empty ranges, reference payload, best and median of {repeat}; net = ranges / (wall - "
          f"the best wall of a payload given no range, {fixed:.3f}s: its start, imports and connect)")
    print(f"{'':26} {'wall best':>9} {'median':>8} {'ranges/s':>9} {'net r/s':>9} {'vs bare':>8} "
          f"{'requests':>8} {'asked/req':>9}")
    for row in (bare, echo, *pilots):
        net = f"{count / max(row.best - fixed, 1e-9):9.0f}" if row is not echo else f"{'':9}"
        print(f"{row.label:26} {row.best:9.3f} {row.median:8.3f} {count / row.best:9.0f} {net} "
              f"{row.best / bare.best:8.2f} {row.note}")


_JOB = {"PandaID": 301, "jobsetID": 7, "taskID": 9, "prodSourceLabel": "managed", "transformation": "run.sh",
        "jobPars": "-n 1", "inFiles": "", "outFiles": "log.tgz", "logFile": "log.tgz", "logGUID": "G",
        "eventService": "True"}


def _store(path: Path, num_events: int) -> ZipRecord:
    """The tar's record, the tar left where it is (no copy)."""
    return ZipRecord(lfn=path.name, fsize=path.stat().st_size, adler32=calculate_checksum(path), objstore_id=1,
                     num_events=num_events)


def _nodelay_handler_setup() -> Callable[[], None]:
    """Make the dev server's connections TCP_NODELAY (in this process); returns the undo.

    The dev server writes an answer's headers and body in two ``send`` calls; without TCP_NODELAY the body waits
    for the client's delayed ACK (about 40 ms on Linux) on a kept-alive connection, which a production server
    behind a web server does not do. Benchmark-only: ``panda_devserver`` is not changed.
    """
    from panda_devserver._http import Handler  # noqa: PLC0415

    original = Handler.setup

    def setup(self: Handler) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        original(self)

    Handler.setup = setup  # type: ignore[method-assign]
    return lambda: setattr(Handler, "setup", original)


def _latency(server: DevServer, client: PandaClient, job: Job) -> float:
    """Milliseconds of one ``getEventRanges`` for a job with none left (median of 20)."""
    times = []
    for _ in range(20):
        began = time.perf_counter()
        client.get_event_ranges(job, 1)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def _server_row(server: DevServer, base: Path, batch: int, count: int, gap: float, sleep: float) -> str:
    server.clear()
    server.add_job(_JOB)
    server.add_event_ranges(301, [{"startEvent": n, "lastEvent": n, "LFN": "EVNT.pool.root", "GUID": "g",
                                   "scope": "bench"} for n in range(1, count + 1)])
    client = PandaClient(server.url)
    (job,) = client.get_jobs(JobRequest(site_name="BENCH", queue="BENCH"))
    workdir = base / f"b{batch}-s{sleep:g}"
    outputs = StoredRangeOutputs(client, _store, job.panda_id, workdir, gap=gap)
    run = Piloted(workdir, client, job, outputs, batch)
    began = time.perf_counter()
    run.run(watch=lambda: outputs.flush(final=False), sleep=sleep)
    stored = outputs.flush(final=True)
    wall = time.perf_counter() - began
    gets, updates = server.request_count("getEventRanges"), server.request_count("updateEventRanges")
    latency = _latency(server, client, job)
    label = f"ahead=batch={batch} sleep={sleep:g}"
    return (f"{label:26} {wall:7.2f} {count / wall:9.0f} {gets:15d} {gets * 100 / count:6.1f} {updates:18d} "
            f"{updates * 100 / count:6.1f} {latency:7.1f}   finished={run.session.book.finished} "
            f"tars={outputs.stored_files} store_error={stored}")


def server_figures(base: Path, count: int, gap: float, slow: tuple[int, float]) -> None:
    """Part 2: print the server's requests per 100 ranges for each feed setting, and the wall time: empty events
    on the dev server as it is and with TCP_NODELAY, then ``slow`` (ranges, seconds per range) with TCP_NODELAY."""
    print(f"part 2: ranges from the local dev server (v1), StoredRangeOutputs gap={gap:g}s, store = adler32 and a "
          "ZipRecord, no copy; ms/call = one getEventRanges afterwards")
    header = (f"{'':26} {'wall':>7} {'ranges/s':>9} {'getEventRanges':>15} {'/100':>6} {'updateEventRanges':>18} "
              f"{'/100':>6} {'ms/call':>7}")
    with DevServer(base / "server") as server:
        print(f"{count} empty ranges, dev server as it is")
        print(header)
        for batch in BATCHES:
            print(_server_row(server, base / "plain", batch, count, gap, 0.0))
    undo = _nodelay_handler_setup()
    try:
        with DevServer(base / "server-nodelay") as server:
            print(f"{count} empty ranges, dev server with TCP_NODELAY")
            print(header)
            for batch in BATCHES:
                print(_server_row(server, base / "nodelay", batch, count, gap, 0.0))
            print(f"{slow[0]} ranges of {slow[1]:g} s each (reference payload --sleep), dev server with TCP_NODELAY")
            print(header)
            for batch in BATCHES:
                print(_server_row(server, base / "slow", batch, slow[0], gap, slow[1]))
    finally:
        undo()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=5000, help="ranges through the channel in part 1")
    parser.add_argument("--server-ranges", type=int, default=1000, help="ranges from the dev server in part 2")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each part-1 figure (best and median)")
    parser.add_argument("--gap", type=float, default=600.0, help="seconds between stores in part 2")
    parser.add_argument("--slow-ranges", type=int, default=200, help="ranges of the slow payload in part 2")
    parser.add_argument("--slow-sleep", type=float, default=0.01, help="seconds per range of the slow payload")
    args = parser.parse_args()
    compileall.compile_dir(str(REPO / "pilotlib"), quiet=2)  # an installed pilot has its bytecode compiled
    with tempfile.TemporaryDirectory(prefix="bench-es-") as tmp:
        base = Path(tmp)
        channel_figures(base / "channel", args.ranges, max(1, args.repeat))
        server_figures(base / "server", args.server_ranges, args.gap, (args.slow_ranges, args.slow_sleep))


if __name__ == "__main__":
    main()
