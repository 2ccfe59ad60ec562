"""How rank 0 learns what every rank did, without a single MPI collective call.

Each rank has a folder on the shared file system (``<board>/rank-<N>``) in which it

- holds an ``flock`` on ``alive`` for as long as it lives (the kernel releases it when the rank dies, ``SIGKILL``
  included; on a shared file system this needs ``flock`` support, e.g. Lustre mounted with ``-o flock``);
- writes ``outcome.json`` (atomically) when its jobs are over: each job's PandaID, state, code and whether its final
  report was delivered.

Rank 0, once its own jobs are over, looks at the others every ``interval`` seconds, less often when so many are
pending that the looks would exceed ``looks_per_second`` (:meth:`RankBoard.gather`): a
rank is done when its outcome is there; *lost* when it took its lock and lost it without an outcome (it died; its
state directory's unfinished jobs are then reported by rank 0, see
:func:`pilotlib.workflow.recover_state`); *absent* when it never showed up within ``start_timeout``. The wait is
bounded by the allocation's deadline (and, once the pilot is stopping, by a minute more), so a hung rank can delay
rank 0, never hang it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from pilotlib._atomic import write_atomic
from pilotlib.hpc.ranks import RankPlace
from pilotlib.stop import StopSignal

__all__ = ["RankBoard", "RankOutcome", "RankStatus"]

log = logging.getLogger(__name__)

_ALIVE = "alive"
_OUTCOME = "outcome.json"


@attrs.frozen
class RankOutcome:
    """What one rank did (its ``outcome.json``).

    Attributes:
        rank: the rank.
        jobs: per job ``{"pandaID", "state", "pilotErrorCode", "finalSent"}``.
        exit_status: the rank's exit status.
        host: the node it ran on.
    """

    rank: int
    jobs: tuple[dict[str, Any], ...] = ()
    exit_status: int = 0
    host: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {"rank": self.rank, "jobs": list(self.jobs), "exitStatus": self.exit_status, "host": self.host}

    @classmethod
    def from_json(cls, document: Any) -> RankOutcome | None:
        """The outcome of a document; None when it is not one."""
        if not isinstance(document, dict) or not isinstance(document.get("rank"), int):
            return None
        jobs = tuple(j for j in document.get("jobs") or () if isinstance(j, dict))
        return cls(document["rank"], jobs, int(document.get("exitStatus") or 0), str(document.get("host") or ""))


@attrs.frozen
class RankStatus:
    """How rank 0 found one rank: ``done`` (its outcome), ``lost`` (died; ``recovered``: the PandaIDs rank 0
    reported for it), ``absent`` (never started) or ``running`` (still alive at the deadline)."""

    rank: int
    status: str
    outcome: RankOutcome | None = None
    recovered: tuple[int, ...] = ()


class RankBoard:
    """The ranks' folders under ``board`` (see the module).

    Args:
        board: the shared folder (e.g. ``<access point>/.hpc-pilot/ranks``).
        place: this process's rank and the number of ranks.
    """

    def __init__(self, board: Path, place: RankPlace) -> None:
        self._board = board
        self._place = place
        self._alive_fd: int | None = None

    def folder(self, rank: int) -> Path:
        """Rank ``rank``'s folder."""
        return self._board / f"rank-{rank}"

    def check_in(self) -> None:
        """Take this rank's ``alive`` lock (held until :meth:`check_out` or death); a previous outcome is removed.

        Raises:
            OSError: the folder cannot be made or the lock taken.
        """
        folder = self.folder(self._place.rank)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _OUTCOME).unlink(missing_ok=True)
        fd = os.open(folder / _ALIVE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._alive_fd = fd

    def check_out(self, outcome: RankOutcome) -> None:
        """Write this rank's outcome, then let its lock go."""
        folder = self.folder(self._place.rank)
        text = json.dumps(outcome.to_json(), sort_keys=True)
        write_atomic(folder / _OUTCOME, text, mode=0o644)
        if self._alive_fd is not None:
            os.close(self._alive_fd)
            self._alive_fd = None

    def _outcome(self, rank: int) -> RankOutcome | None:
        try:
            return RankOutcome.from_json(json.loads((self.folder(rank) / _OUTCOME).read_text()))
        except (OSError, ValueError):
            return None

    def _alive(self, rank: int) -> bool | None:
        """True: the rank holds its lock; False: it took it and is gone; None: it never took it."""
        try:
            fd = os.open(self.folder(rank) / _ALIVE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _look(self, rank: int, waited: float, start_timeout: float,
              lost: Callable[[int], tuple[int, ...]]) -> RankStatus | None:
        outcome = self._outcome(rank)
        if outcome is not None:
            return RankStatus(rank, "done", outcome)
        alive = self._alive(rank)
        if alive is False and self._outcome(rank) is None:  # it may have written its outcome since we looked
            recovered = lost(rank)
            log.error("rank lost without an outcome rank=%d recovered=%s", rank, ",".join(map(str, recovered)))
            return RankStatus(rank, "lost", recovered=recovered)
        if alive is None and waited >= start_timeout:
            log.error("rank never started rank=%d waited=%.0f", rank, waited)
            return RankStatus(rank, "absent")
        return None

    def gather(self, deadline: float, lost: Callable[[int], tuple[int, ...]], *, start_timeout: float = 120.0,
               interval: float = 0.5, stop: StopSignal | None = None, stop_wait: float = 60.0,
               looks_per_second: float = 200.0, tick: Callable[[], None] = lambda: None,
               tick_every: float = 60.0) -> Sequence[RankStatus]:
        """The other ranks' statuses (rank 0 only), waiting for each until ``deadline`` (epoch seconds).

        Args:
            deadline: when to stop waiting; a rank still alive then is ``running``.
            lost: reports a lost rank's unfinished jobs and returns their PandaIDs (see the module).
            start_timeout: seconds a rank may take to check in.
            interval: seconds between two looks at the pending ranks, at least.
            stop: the pilot's stop; once it is set (the allocation is ending: every rank got the same signal and is
                wrapping up its jobs), the wait lasts at most ``stop_wait`` seconds more.
            stop_wait: see ``stop``.
            looks_per_second: the most ranks looked at per second (each look is two opens and a lock on the shared
                file system): with many ranks pending the pause between two rounds grows, so the metadata load stays
                bounded (200 looks/s: about 600 operations/s whatever the allocation's size; see
                ``docs/hpc-scale.rst``).
            tick: called every ``tick_every`` seconds while waiting (rank 0 renews the worker's heartbeat).
            tick_every: see ``tick``.
        """
        began = time.monotonic()
        found: dict[int, RankStatus] = {}
        pending = [r for r in range(self._place.size) if r != self._place.rank]
        stopped_at: float | None = None
        ticked = time.monotonic()
        while pending:
            for rank in list(pending):
                status = self._look(rank, time.monotonic() - began, start_timeout, lost)
                if status is not None:
                    found[rank] = status
                    pending.remove(rank)
            now = time.time()
            if stopped_at is None and stop is not None and stop.is_set():
                stopped_at = now
            end = deadline if stopped_at is None else min(deadline, stopped_at + stop_wait)
            if not pending or now >= end:
                break
            if time.monotonic() - ticked >= tick_every:
                tick()
                ticked = time.monotonic()
            time.sleep(min(max(interval, len(pending) / looks_per_second), max(0.0, end - now)))
        for rank in pending:
            log.warning("rank still running at the end of the wait rank=%d", rank)
            found[rank] = RankStatus(rank, "running")
        return [found[r] for r in sorted(found)]
