"""Several pilots (the MPI ranks of one HPC worker) on one access point at once: real processes, real files.

Each rank is a separate interpreter (``multiprocessing`` with the ``spawn`` start method, as an MPI launcher starts
separate programs), so only the inter-process lock of :func:`pilotlib.panda._files.locked` can serialise them.
Harvester's side, played by a thread of the test, follows HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py`` at commit d561b72 (cited as ``sfm``):

- ``events_requested`` (sfm l.435-452) reads ``worker_requestevents.json`` whole with ``json.load`` (l.446-447);
  the monitor does it only while no request is pending (``harvesterbody/monitor.py`` l.710-712);
- ``feed_events`` (sfm l.456-480) writes ``JobsEventRanges.json`` with a plain ``open(..., "w")`` and ``json.dump``
  (l.465-466), then removes the request file (l.474-478); the ranges come from ``panda_communicator.py``
  ``get_event_ranges`` (l.439-515), which sets an entry, an empty list when the server has no more ranges, for every
  PandaID the server answered (l.481-483);
- ``get_files_to_stage_out`` (sfm l.228-351) renames ``event_status.dump.json`` to ``.read`` (l.251) and reads it
  (l.259-260); ``acknowledge_events_files`` (l.535-556) renames that to ``.read.<timestamp>`` (l.549-552).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.job import Job
from pilotlib.panda import _files
from pilotlib.panda._file_errors import LaunchDirTimeoutError
from pilotlib.panda.base import EventRangeUpdate
from pilotlib.panda.harvester import HarvesterEventRanges, HarvesterFiles

SPAWN = multiprocessing.get_context("spawn")
TASK = 31000001


def event_range(panda_id: int, number: int) -> dict[str, Any]:
    """An event range of job ``panda_id`` as the PanDA server hands it out (``acquire_event_ranges``)."""
    return {
        "eventRangeID": f"{TASK}-{panda_id}-1-{number}-1",
        "startEvent": number,
        "lastEvent": number,
        "LFN": "EVNT.36000001._000001.pool.root.1",
        "GUID": "0A1B2C3D-0000-1111-2222-333344445555",
        "scope": "mc23_13p6TeV",
    }


def run_ranks(target: Callable[..., None], rank_args: Iterable[tuple[Any, ...]], timeout: float = 120) -> list[Any]:
    """Start one process per argument tuple (each gets a start barrier and a result queue first), let them go at
    once, and return what each put on the queue; a process that fails or hangs fails the test."""
    rank_args = list(rank_args)
    barrier = SPAWN.Barrier(len(rank_args))
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(barrier, results, *args)) for args in rank_args]
    for process in processes:
        process.start()
    collected = []
    try:
        for _ in processes:
            collected.append(results.get(timeout=timeout))
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * len(processes)
    errors = [item for item in collected if isinstance(item, str)]
    assert errors == []
    return collected


# ---------------------------------------------------------------------------------------------- the ranks' code
def merge_statuses(barrier: Barrier, results: Any, ap: str, rank: int, panda_id: int, count: int) -> None:
    """A rank reporting ``count`` finished ranges of job ``panda_id``, one update (one merge) each."""
    try:
        source = HarvesterEventRanges(HarvesterFiles(ap))
        barrier.wait(60)
        for number in range(count):
            source.update_event_ranges([EventRangeUpdate(f"{TASK}-{panda_id}-{rank}-{number}-1", "finished",
                                                         panda_id, {"rank": rank})])
        results.put(rank)
    except Exception as exc:  # the test reads it
        results.put(f"rank {rank}: {type(exc).__name__}: {exc}")


def take_placed(barrier: Barrier, results: Any, ap: str, panda_ids: list[int]) -> None:
    """A rank taking the ranges Harvester already placed for each of its jobs (no request needed)."""
    try:
        source = HarvesterEventRanges(HarvesterFiles(ap), timeout=5, poll_interval=0.01)
        barrier.wait(60)
        got = {panda_id: [r.event_range_id for r in source.get_event_ranges(Job(panda_id=panda_id, task_id=TASK), 100)]
               for panda_id in panda_ids}
        results.put(got)
    except Exception as exc:  # the test reads it
        results.put(f"ranks of {panda_ids}: {type(exc).__name__}: {exc}")


def request_all(barrier: Barrier, results: Any, ap: str, panda_id: int, per_call: int) -> None:
    """A rank running job ``panda_id``: asks Harvester for ``per_call`` ranges at a time until it has no more."""
    try:
        source = HarvesterEventRanges(HarvesterFiles(ap), timeout=60, poll_interval=0.01)
        job = Job(panda_id=panda_id, task_id=TASK, jobset_id=7)
        barrier.wait(60)
        got: list[str] = []
        while ranges := source.get_event_ranges(job, per_call):
            got.extend(r.event_range_id for r in ranges)
        results.put((panda_id, got))
    except Exception as exc:  # the test reads it
        results.put(f"rank of {panda_id}: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------------- Harvester
class DumpCollector(threading.Thread):
    """Harvester's monitor taking the dump: rename to ``.read`` (sfm l.251), read it (l.259-260), and once the
    events are in its database acknowledge it by renaming it to ``.read.<timestamp>`` (l.549-552; the monitor does
    it after ``update_jobs_workers``, ``harvesterbody/monitor.py`` l.459-481, here 0.1 s later)."""

    def __init__(self, dump: Path) -> None:
        super().__init__(daemon=True)
        self.dump = dump
        self.collected: list[dict[str, Any]] = []
        self.cycles = 0
        self.done = threading.Event()

    def run(self) -> None:
        read = Path(f"{self.dump}.read")
        while not self.done.wait(0.02):
            if not read.exists():
                try:
                    os.rename(self.dump, read)
                except FileNotFoundError:
                    continue
            with open(read) as handle:
                taken = json.load(handle)
            self.collected.extend(entry for entries in taken.values() for entry in entries)
            self.cycles += 1
            time.sleep(0.1)  # the monitor updates its database, then acknowledges
            os.rename(read, f"{read}.{self.cycles}")


class EventFeeder(threading.Thread):
    """Harvester's monitor and event feeder on one worker, as in the module description.

    Each cycle reads the request, waits a moment (the feeder runs after the monitor), answers every PandaID of the
    request with its next ``nRanges`` ranges (an empty list when it has none left), then removes the request. Real
    Harvester feeds again only in a later monitor cycle, minutes later, long after the pilots took their ranges;
    this one waits until the answer file is gone instead (it never overwrites an answer not yet taken, which no
    pilot could protect).
    """

    def __init__(self, ap: Path, ranges: dict[int, list[dict[str, Any]]]) -> None:
        super().__init__(daemon=True)
        self.ap = ap
        self.left = {str(panda_id): list(entries) for panda_id, entries in ranges.items()}
        self.requests: list[dict[str, Any]] = []
        self.fed: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        request, answer = self.ap / "worker_requestevents.json", self.ap / "JobsEventRanges.json"
        while not self.done.wait(0.005):
            placed = _files.read_json(answer)
            # ranges not taken yet (an empty list is "none left", kept there for every rank of the job)
            if not request.exists() or (isinstance(placed, dict) and any(placed.values())):
                continue
            with open(request) as handle:
                asked = json.load(handle)
            self.requests.append(asked)
            time.sleep(0.02)
            events = {}
            for panda_id, params in asked.items():
                events[panda_id] = self.left[panda_id][: params["nRanges"]]
                del self.left[panda_id][: params["nRanges"]]
                self.fed.extend(entry["eventRangeID"] for entry in events[panda_id])
            with open(answer, "w") as handle:
                json.dump(events, handle)
            os.remove(request)


# ------------------------------------------------------------------------------------------------------ tests
def test_eight_ranks_merging_statuses_of_one_job_lose_none(ap: Path) -> None:
    """8 processes each merging 50 statuses of the same job, one merge per status, into one
    ``event_status.dump.json``: all 400 entries are there, each exactly once, with the rank that wrote it. The file
    keeps Harvester's shape ``{"<PandaID>": [{eventRangeID, eventStatus, ...}]}`` (sfm l.275-332) and the lock file
    beside it is a dot-file ending in ``.lock``, outside Harvester's log tarball patterns (sfm l.45, l.69)."""
    ranks = run_ranks(merge_statuses, [(str(ap), rank, 9001, 50) for rank in range(8)])
    assert sorted(ranks) == list(range(8))
    document = json.loads((ap / "event_status.dump.json").read_text())
    assert list(document) == ["9001"]
    ids = Counter(entry["eventRangeID"] for entry in document["9001"])
    expected = {f"{TASK}-9001-{rank}-{number}-1" for rank in range(8) for number in range(50)}
    assert set(ids) == expected and set(ids.values()) == {1}
    assert all(entry["eventStatus"] == "finished" and entry["eventRangeID"].split("-")[2] == str(entry["rank"])
               for entry in document["9001"])
    assert sorted(os.listdir(ap)) == [".event_status.dump.json.lock", "event_status.dump.json"]
    harvester_log_patterns = ["*.log", "*.txt", "*.xml", "*.json", "log*"]  # sfm l.45 (find -name), l.592 (fnmatch)
    for name in ("event_status.dump.json", "worker_requestevents.json", "JobsEventRanges.json"):
        lock = _files.lock_path(ap / name)
        assert lock.parent == ap and lock.name == f".{name}.lock"
        assert not any(fnmatch.fnmatch(lock.name, pattern) for pattern in harvester_log_patterns)


@pytest.mark.reliability("faults", "harvester", "dump renamed away while ranks merge: each status once")
def test_ranks_merging_while_harvester_takes_the_dump_give_each_status_once(ap: Path) -> None:
    """While 4 processes merge 50 statuses each, Harvester keeps taking the dump (rename to ``.read``, read,
    acknowledge: sfm l.251, l.259-260, l.549-552): what Harvester read plus what is left in the dump is every status
    exactly once (none lost, none sent twice)."""
    harvester = DumpCollector(ap / "event_status.dump.json")
    harvester.start()
    try:
        run_ranks(merge_statuses, [(str(ap), rank, 9002, 50) for rank in range(4)])
    finally:
        harvester.done.set()
        harvester.join(10)
    left = json.loads((ap / "event_status.dump.json").read_text())["9002"] if (ap / "event_status.dump.json").exists() \
        else []
    read = ap / "event_status.dump.json.read"
    pending = json.loads(read.read_text())["9002"] if read.exists() else []
    ids = Counter(entry["eventRangeID"] for entry in [*harvester.collected, *left, *pending])
    assert set(ids) == {f"{TASK}-9002-{rank}-{number}-1" for rank in range(4) for number in range(50)}
    assert set(ids.values()) == {1}
    assert harvester.cycles >= 2  # Harvester did take the dump while the ranks merged


def test_ranks_taking_their_jobs_ranges_leave_the_other_jobs_ranges(ap: Path) -> None:
    """``JobsEventRanges.json`` holds ranges of 110 jobs (written by Harvester with a plain ``open``, sfm
    l.465-466); 4 processes take the ranges of 25 jobs each at once. Each gets exactly its jobs' ranges, and the
    file is left with exactly the 10 jobs nobody took, unchanged: no job's ranges are given twice or put back."""
    placed = {str(panda_id): [event_range(panda_id, n) for n in range(1, 4)] for panda_id in range(9100, 9210)}
    with open(ap / "JobsEventRanges.json", "w") as handle:
        json.dump(placed, handle)
    jobs = list(range(9100, 9200))
    results = run_ranks(take_placed, [(str(ap), jobs[rank::4]) for rank in range(4)])
    got = {panda_id: ids for result in results for panda_id, ids in result.items()}
    assert got == {panda_id: [f"{TASK}-{panda_id}-1-{n}-1" for n in range(1, 4)] for panda_id in jobs}
    assert json.loads((ap / "JobsEventRanges.json").read_text()) == {
        str(panda_id): placed[str(panda_id)] for panda_id in range(9200, 9210)
    }
    assert not (ap / "worker_requestevents.json").exists()


def test_ranks_requesting_ranges_of_their_jobs_at_once_each_get_exactly_theirs(ap: Path) -> None:
    """4 processes, one job each, ask for 3 ranges at a time at the same moment until Harvester has none left
    (12 per job). The requests are merged into one ``worker_requestevents.json`` in Harvester's shape (sfm
    l.446-447; ``{"<PandaID>": {pandaID, taskID, jobsetID, nRanges}}``), a request removed unanswered by a feed that
    read the file before it (sfm l.474-478) is made again, and every process gets exactly its own 12 ranges in
    order: none lost, none given twice, none given to another job."""
    jobs = [9301, 9302, 9303, 9304]
    harvester = EventFeeder(ap, {panda_id: [event_range(panda_id, n) for n in range(1, 13)] for panda_id in jobs})
    harvester.start()
    try:
        results = dict(run_ranks(request_all, [(str(ap), panda_id, 3) for panda_id in jobs]))
    finally:
        harvester.done.set()
        harvester.join(10)
    assert results == {panda_id: [f"{TASK}-{panda_id}-1-{n}-1" for n in range(1, 13)] for panda_id in jobs}
    assert Counter(harvester.fed) == Counter(f"{TASK}-{p}-1-{n}-1" for p in jobs for n in range(1, 13))
    assert all(harvester.left[str(panda_id)] == [] for panda_id in jobs)
    for asked in harvester.requests:
        assert asked and all(params == {"pandaID": int(panda_id), "taskID": TASK, "jobsetID": 7, "nRanges": 3}
                             for panda_id, params in asked.items())
    assert not (ap / "worker_requestevents.json").exists()
    left = json.loads((ap / "JobsEventRanges.json").read_text()) if (ap / "JobsEventRanges.json").exists() else {}
    assert all(entries == [] for entries in left.values())  # only "no ranges left", for every rank to see


def test_lock_is_held_across_processes_and_released_at_exit(ap: Path) -> None:
    """While another process holds the lock of a file, :func:`locked` waits for it (here until its timeout, a
    LaunchDirTimeoutError, EXCEEDEDMAXWAITTIME 1317); once that process is gone the lock is free at once."""
    target = ap / "JobsEventRanges.json"
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(target), release, ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(LaunchDirTimeoutError) as caught, _files.locked(target, timeout=0.2):
            pass
        assert caught.value.code == ErrorCode.EXCEEDEDMAXWAITTIME == 1317
    finally:
        holder.kill()
        holder.join(10)
    with _files.locked(target, timeout=5):
        assert (ap / ".JobsEventRanges.json.lock").exists()


def hold_lock(path: str, release: Any, ready: Any) -> None:
    """Hold the lock of ``path`` until ``release`` is set (or the process is killed)."""
    with _files.locked(Path(path)):
        ready.set()
        release.wait(120)


@pytest.mark.reliability("faults", "harvester", "request removed without an answer for the job: asked again")
def test_request_removed_without_an_answer_for_the_job_is_made_again(ap: Path) -> None:
    """Harvester reads the request in its monitor cycle and removes it only after feeding (sfm l.446-447, l.474-478,
    ``monitor.py`` l.710-712): a request merged in between (beside the other job's, which is kept) is removed with an
    answer that has nothing for its job. The source asks again, leaves the other job's answer in the file, and gets
    its ranges from the next feed; an empty list for the job (``panda_communicator.py`` l.481-483) ends its ranges."""
    request, answer = ap / "worker_requestevents.json", ap / "JobsEventRanges.json"
    other = {"pandaID": 9401, "taskID": TASK, "jobsetID": 7, "nRanges": 1}
    mine = {"pandaID": 9402, "taskID": TASK, "jobsetID": 7, "nRanges": 1}
    with open(request, "w") as handle:
        json.dump({"9401": other}, handle)  # another rank's request
    seen: list[Any] = []  # what Harvester read, and the files it found (the test's bookkeeping)

    def wait_for(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not check() and time.monotonic() < deadline:
            time.sleep(0.01)

    def feed(events: dict[str, Any]) -> None:
        with open(answer, "w") as handle:
            json.dump(events, handle)
        os.remove(request)

    def harvester() -> None:
        with open(request) as handle:
            seen.append(json.load(handle))  # the monitor cycle, before the source asks
        wait_for(lambda: "9402" in (_files.read_json(request) or {}))
        seen.append(json.loads(request.read_text()))
        feed({"9401": [event_range(9401, 1)]})  # the feeder answers what the monitor read
        for events in ({"9402": [event_range(9402, 1)]}, {"9402": []}):
            wait_for(request.exists)
            seen.append((json.loads(request.read_text()), json.loads(answer.read_text()) if answer.exists() else None))
            feed(events)

    thread = threading.Thread(target=harvester, daemon=True)
    thread.start()
    source = HarvesterEventRanges(HarvesterFiles(ap), timeout=20, poll_interval=0.01)
    job = Job(panda_id=9402, task_id=TASK, jobset_id=7)
    try:
        assert [r.event_range_id for r in source.get_event_ranges(job, 1)] == [f"{TASK}-9402-1-1-1"]
        assert source.get_event_ranges(job, 1) == ()
    finally:
        thread.join(20)
    assert seen == [
        {"9401": other},
        {"9401": other, "9402": mine},  # merged beside the other job's request
        ({"9402": mine}, {"9401": [event_range(9401, 1)]}),  # asked again; the other job's ranges left in place
        ({"9402": mine}, None),
    ]
    assert json.loads(answer.read_text()) == {"9402": []} and not request.exists()  # "none left" stays for all ranks


@pytest.mark.reliability("faults", "harvester", "file system refusing flock (ENOSYS): warned once, still serialised")
def test_file_system_without_flock_still_serialises_the_process(ap: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Where ``flock`` is refused (Lustre mounted without ``flock``: ENOSYS), :func:`locked` logs one warning naming
    the lock file and goes on with the in-process lock only, so a single pilot works as before."""
    def refused(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(_files.fcntl, "flock", refused)
    path = ap / "event_status.dump.json"
    with caplog.at_level(logging.WARNING, logger="pilotlib.panda._files"):
        for number in range(2):
            HarvesterEventRanges(HarvesterFiles(ap)).update_event_ranges([EventRangeUpdate(f"r{number}", "finished",
                                                                                           9501)])
    assert json.loads(path.read_text()) == {"9501": [{"eventRangeID": "r0", "eventStatus": "finished"},
                                                     {"eventRangeID": "r1", "eventStatus": "finished"}]}
    warnings = [record.getMessage() for record in caplog.records if "flock refused" in record.getMessage()]
    assert len(warnings) == 1 and str(_files.lock_path(path)) in warnings[0]


@pytest.mark.reliability("faults", "harvester", "file removed or rewritten mid-rewrite: the rewrite starts over")
def test_harvester_changing_a_file_during_a_rewrite_makes_it_start_over(ap: Path) -> None:
    """Harvester takes no lock: when it removes the request (sfm l.474-478) or rewrites the answer in place with a
    plain ``open(..., "w")`` (l.465-466, same inode) while a rank rewrites the file, the rank's write is not
    renamed into place; the file is read again and the change made on what Harvester left, so a removed request is
    not brought back and a new answer is not overwritten."""
    request, answer = ap / "worker_requestevents.json", ap / "JobsEventRanges.json"
    with open(request, "w") as handle:
        json.dump({"9401": {"nRanges": 1}}, handle)
    seen: list[Any] = []

    def add(document: Any) -> Any:
        seen.append(document)
        if len(seen) == 1:
            os.remove(request)  # Harvester fed what it had read and removes the request
        return {**(document or {}), "9402": {"nRanges": 1}}

    _files.rewrite_json(request, add)
    assert seen == [{"9401": {"nRanges": 1}}, None]
    assert json.loads(request.read_text()) == {"9402": {"nRanges": 1}}

    with open(answer, "w") as handle:
        json.dump({"9401": [event_range(9401, 1)], "9402": [event_range(9402, 1)]}, handle)
    seen.clear()

    def take(document: Any) -> Any:
        seen.append(sorted(document))
        if len(seen) == 1:
            with open(answer, "w") as handle:  # Harvester feeds again, in place
                json.dump({"9402": [event_range(9402, 1)], "9403": [event_range(9403, 1)]}, handle)
        return {key: value for key, value in document.items() if key != "9402"}

    _files.rewrite_json(answer, take)
    assert seen == [["9401", "9402"], ["9402", "9403"]]
    assert json.loads(answer.read_text()) == {"9403": [event_range(9403, 1)]}
