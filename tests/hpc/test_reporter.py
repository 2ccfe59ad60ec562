"""A job all ranks share is reported by rank 0 alone, after the others (:class:`pilotlib.hpc.SharedJobReporter`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.hpc import RankOutcome, RankStatus, SharedJobReporter
from pilotlib.panda.base import JobUpdate, UpdateAnswer


class _Written:
    def __init__(self) -> None:
        self.updates: list[JobUpdate] = []

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        self.updates.append(update)
        return UpdateAnswer(accepted=True)


def _others(state: str) -> Sequence[RankStatus]:
    return (RankStatus(1, "done", RankOutcome(1, ({"pandaID": 7, "state": state},))),)


def test_other_ranks_leave_a_shared_jobs_state_to_rank_0_and_other_jobs_pass() -> None:
    """Rank 1 writes nothing of shared job 7 (accepted all the same); a job it does not share goes through."""
    inner = _Written()
    reporter = SharedJobReporter(inner, lambda panda_id: panda_id == 7, 1, lambda: ())
    assert reporter.update_job(JobUpdate(7, "finished", {"pilotErrorCode": 0}, final=True)).accepted
    reporter.update_job(JobUpdate(8, "running"))
    assert [(u.panda_id, u.state) for u in inner.updates] == [(8, "running")]


@pytest.mark.reliability("faults", "hpc",
                         "a lost rank's recovered final while rank 0 waits: not written over the job's")
def test_rank_0_waits_for_the_others_and_a_rank_0_without_ranges_does_not_fail_a_finished_job() -> None:
    """Rank 0's final state of the shared job is written after the others (the wait is called first); its ESNOEVENTS
    1238 (the others took every range) becomes finished when another rank finished the job; a lost rank's recovered
    final, reported while rank 0 waits, is not written."""
    inner = _Written()
    reporter: SharedJobReporter

    def wait() -> Sequence[RankStatus]:
        assert inner.updates == [JobUpdate(7, "running")]
        reporter.update_job(JobUpdate(7, "failed", {"pilotErrorCode": int(ErrorCode.KILLSIGNAL)}, final=True))
        return _others("finished")

    reporter = SharedJobReporter(inner, lambda panda_id: True, 0, wait)
    reporter.update_job(JobUpdate(7, "running"))
    reporter.update_job(JobUpdate(7, "failed", {"pilotErrorCode": int(ErrorCode.ESNOEVENTS),
                                                "pilotErrorDiag": "no event ranges for the job"}, final=True))
    assert inner.updates[1] == JobUpdate(7, "finished", {"pilotErrorCode": 0, "pilotErrorDiag": ""}, final=True)
    assert len(inner.updates) == 2


def test_a_real_failure_of_rank_0_stays_and_no_ranges_anywhere_is_esnoevents() -> None:
    """Rank 0's own failure (not 1238) is the job's; 1238 with no other rank finished stays 1238."""
    for code, others in ((ErrorCode.PAYLOADEXECUTIONFAILURE, "finished"), (ErrorCode.ESNOEVENTS, "failed")):
        inner = _Written()
        SharedJobReporter(inner, lambda panda_id: True, 0, lambda o=others: _others(o)).update_job(
            JobUpdate(7, "failed", {"pilotErrorCode": int(code)}, final=True))
        assert inner.updates[0].state == "failed" and inner.updates[0].fields["pilotErrorCode"] == int(code)
