"""Rank 0 learns the other ranks' outcomes through their folders, with no collective call
(:mod:`pilotlib.hpc.gather`); the other ranks are real processes here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from pilotlib.hpc import RankBoard, RankOutcome, RankPlace

_RANK = """
import sys, time
from pathlib import Path
import pytest

from pilotlib.hpc import RankBoard, RankOutcome, RankPlace
rank, size, board, mode = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
me = RankBoard(board, RankPlace(rank, size))
me.check_in()
print("in", flush=True)
if mode == "done":
    me.check_out(RankOutcome(rank, ({"pandaID": 100 + rank, "state": "finished"},), 0, "node"))
else:
    time.sleep(600)
"""


def _rank(board: Path, rank: int, size: int, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-c", _RANK, str(rank), str(size), str(board), mode],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline() == "in\n"
    return process


@pytest.mark.reliability("faults", "hpc",
                         "rank SIGKILLed mid-job, rank never started, rank hung: lost, absent, running at the deadline")
def test_done_lost_absent_and_running_ranks(tmp_path: Path, ledger: Ledger) -> None:
    """Rank 1 checks out (done, with its jobs); rank 2 is SIGKILLed while it holds its lock (lost: the kernel
    released the lock, so rank 0 reports its jobs through ``lost``); rank 3 never starts (absent after the start
    timeout); rank 4 lives on (running at the deadline). The wait ends at the deadline, not later."""
    board = tmp_path / "ranks"
    done = _rank(board, 1, 5, "done")
    lost_rank = _rank(board, 2, 5, "sleep")
    alive = _rank(board, 4, 5, "sleep")
    try:
        os.kill(lost_rank.pid, signal.SIGKILL)
        lost_rank.wait(10)
        asked: list[int] = []
        began = time.monotonic()
        statuses = RankBoard(board, RankPlace(0, 5)).gather(
            time.time() + 3.0, lambda rank: asked.append(rank) or (202,), start_timeout=1.0, interval=0.1)
        waited = time.monotonic() - began
    finally:
        alive.kill()
        done.wait(10)
        alive.wait(10)
    by_rank = {s.rank: s for s in statuses}
    assert [s.rank for s in statuses] == [1, 2, 3, 4]
    assert by_rank[1].status == "done" and by_rank[1].outcome is not None
    assert by_rank[1].outcome.jobs == ({"pandaID": 101, "state": "finished"},)
    assert by_rank[2].status == "lost" and by_rank[2].recovered == (202,) and asked == [2]
    assert by_rank[3].status == "absent"
    assert by_rank[4].status == "running"
    assert 2.9 <= waited < 5.0
    ledger.add(faults_injected=3)


def test_a_rank_that_ends_in_time_is_gathered_without_waiting_for_the_deadline(tmp_path: Path) -> None:
    """All ranks done: the gather returns as soon as the last outcome is there, and never calls ``lost``."""
    board = tmp_path / "ranks"
    ranks = [_rank(board, r, 3, "done") for r in (1, 2)]
    for process in ranks:
        process.wait(10)
    began = time.monotonic()
    statuses = RankBoard(board, RankPlace(0, 3)).gather(time.time() + 60, lambda rank: (_ for _ in ()).throw(
        AssertionError(f"rank {rank} is not lost")), interval=0.1)
    assert time.monotonic() - began < 1.0
    assert [(s.rank, s.status) for s in statuses] == [(1, "done"), (2, "done")]


def test_an_outcome_is_written_atomically_and_replaces_an_old_one(tmp_path: Path) -> None:
    """A rank checking in again (a new allocation in the same access point) removes its old outcome first, so rank 0
    never reads the last allocation's; the new one is complete JSON."""
    board = RankBoard(tmp_path, RankPlace(1, 2))
    board.check_in()
    board.check_out(RankOutcome(1, (), 0, "a"))
    board.check_in()
    assert not (tmp_path / "rank-1" / "outcome.json").exists()
    board.check_out(RankOutcome(1, ({"pandaID": 7},), 65, "b"))
    text = (tmp_path / "rank-1" / "outcome.json").read_text()
    assert '"exitStatus": 65' in text and '"host": "b"' in text
    assert sorted(p.name for p in (tmp_path / "rank-1").iterdir()) == ["alive", "outcome.json"]  # no temporary left


def test_many_pending_ranks_are_looked_at_no_faster_than_the_bound(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """300 ranks pending with ``looks_per_second=100``: a round of looks every 3 s, not every 0.5 s (each look is
    two opens and a lock on the shared file system; ``docs/hpc-scale.rst``), and the last pause ends at the
    deadline, not after it; the heartbeat tick still comes every ``tick_every`` seconds."""
    looks: list[int] = []
    real = RankBoard._look

    def counted(self: RankBoard, rank: int, *args: object) -> object:
        looks.append(rank)
        return real(self, rank, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(RankBoard, "_look", counted)
    ticks: list[float] = []
    began = time.monotonic()
    statuses = RankBoard(tmp_path, RankPlace(0, 301)).gather(
        time.time() + 4.0, lambda rank: (), start_timeout=60.0, looks_per_second=100.0,
        tick=lambda: ticks.append(time.monotonic()), tick_every=1.0)
    waited = time.monotonic() - began
    assert {s.status for s in statuses} == {"running"} and len(statuses) == 300
    assert len(looks) <= 3 * 300  # rounds at 0, 3 s and the deadline; 0.5 s pauses would make 9 rounds
    assert 3.9 <= waited < 4.6
    assert len(ticks) >= 1
