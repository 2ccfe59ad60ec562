"""Who tells Harvester the state of a job that several ranks run together (a shared event-service job).

Each rank of a shared job reports its event ranges itself (their statuses and outputs are merged into the job's
``event_status.dump.json``, safely across processes); the job's own state (``worker_attributes.json``,
``jobReport.json``) is rank 0's alone. Rank 0 writes its final state only once every other rank is over (or lost,
or the wait's deadline came), so Harvester never takes the job for finished while ranges are still being processed.
A lost rank's final state of the shared job, which rank 0's recovery would report failed, is not written: the job
is not lost with one of its ranks (the ranges it held stay unreported, and PanDA gives them out again). Rank 0
having got no range (ESNOEVENTS 1238: the others took them all) does not fail a job another rank finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs

from pilotlib.errors import ErrorCode
from pilotlib.hpc.gather import RankStatus
from pilotlib.panda.base import JobReporter, JobUpdate, UpdateAnswer

__all__ = ["SharedJobReporter"]

log = logging.getLogger(__name__)


class SharedJobReporter:
    """A :class:`~pilotlib.panda.base.JobReporter` in front of the rank's own (``inner``) for shared jobs.

    Args:
        inner: the Harvester reporter.
        shared: whether a PandaID is a job this rank shares with the others.
        rank: this process's rank.
        wait_for_others: blocks until the other ranks are over and returns their statuses (rank 0 calls it before
            a shared job's final state).
    """

    def __init__(self, inner: JobReporter, shared: Callable[[int], bool], rank: int,
                 wait_for_others: Callable[[], Sequence[RankStatus]]) -> None:
        self._inner = inner
        self._shared = shared
        self._rank = rank
        self._wait = wait_for_others
        self._waiting = False

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        """Pass the update on, except a shared job's: written by rank 0 only, its final state after the others."""
        if not self._shared(update.panda_id):
            return self._inner.update_job(update)
        if self._rank != 0 or self._waiting:
            log.info("shared job's state left to rank 0 panda_id=%s state=%s rank=%d", update.panda_id, update.state,
                     self._rank)
            return UpdateAnswer(accepted=True)
        if update.final:
            self._waiting = True  # a lost rank's recovery reports through here while rank 0 waits: not written
            try:
                others = self._wait()
            finally:
                self._waiting = False
            update = _with_others(update, others)
        return self._inner.update_job(update)


def _with_others(update: JobUpdate, others: Sequence[RankStatus]) -> JobUpdate:
    """Rank 0's final state of a shared job, given the other ranks': rank 0 without a range (1238) while another
    rank finished the job is the job finished."""
    if update.state != "failed" or update.fields.get("pilotErrorCode") != int(ErrorCode.ESNOEVENTS):
        return update
    finished = [s.rank for s in others if s.outcome is not None
                and any(j.get("pandaID") == update.panda_id and j.get("state") == "finished" for j in s.outcome.jobs)]
    if not finished:
        return update
    log.info("shared job finished by other ranks panda_id=%s ranks=%s", update.panda_id, ",".join(map(str, finished)))
    fields = {**update.fields, "pilotErrorCode": 0, "pilotErrorDiag": ""}
    return attrs.evolve(update, state="finished", fields=fields)
