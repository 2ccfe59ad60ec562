"""The journal of jobs started (:mod:`pilotlib.journal`) and the recovery of a lost pilot's jobs
(:mod:`pilotlib.abandoned`): locks the kernel releases, torn lines, one successor per job."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fixtures.smallfs import fill

from pilotlib.abandoned import AbandonedOutcome, JobRecovery, recover_abandoned
from pilotlib.errors import ErrorCode
from pilotlib.journal import JOURNAL_DIR, Journal, take_abandoned
from pilotlib.panda.base import JobUpdate, UpdateAnswer
from pilotlib.pipeline import JobRun
from pilotlib.recovery import FinalRetry, FinalStore, recover
from pilotlib.report import PilotIdentity
from pilotlib.reserve import SpaceReserve
from pilotlib.stages import LOG_STOPPING_TIMEOUT
from pilotlib.transfer.base import Direction, TransferResult

REPO = Path(__file__).resolve().parents[2]
DEFINITION: Mapping[str, str] = {"PandaID": "42", "attemptNr": "1", "transformation": "/bin/true", "jobPars": "",
                                 "logFile": "log.tgz", "outFiles": "log.tgz", "scopeLog": "s", "logGUID": "g"}


def _holder(state_dir: Path) -> subprocess.Popen[str]:
    """A separate process that opens a journal, journals job 42 and sleeps (a live pilot)."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from pilotlib.journal import Journal
        journal = Journal(Path({str(state_dir)!r}), "grid-pilot-live")
        journal.start(42, {dict(DEFINITION)!r}, Path("/work/42"))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_lock_of_a_live_pilot_is_not_taken_and_is_free_once_it_is_killed(tmp_path: Path) -> None:
    """While the owner lives its journal is not taken (its flock is held); once it is SIGKILLed the kernel releases
    the lock and a successor gets the job it journalled, with its definition, work directory and pilot."""
    proc = _holder(tmp_path)
    try:
        assert take_abandoned(tmp_path) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    (journal,) = take_abandoned(tmp_path)
    try:
        (entry,) = journal.entries
        assert (entry.panda_id, entry.workdir, entry.pilot) == (42, Path("/work/42"), "grid-pilot-live")
        assert entry.definition == DEFINITION
    finally:
        journal.release()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A line cut short by the pilot's death (no newline, not JSON) is skipped: the jobs before it are read, and
    an ``end`` line that was being written does not end its job."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(1, DEFINITION, tmp_path / "1")
    journal.start(2, DEFINITION, tmp_path / "2")
    journal.end(1)
    with journal.path.open("ab") as handle:
        handle.write(b'{"event":"end","panda_id":2')  # the pilot died mid-write
    journal.close()  # job 2 is open: the file stays
    (abandoned,) = take_abandoned(tmp_path)
    assert [e.panda_id for e in abandoned.entries] == [2]
    abandoned.end(2)  # appended after the torn line, on a line of its own: read back as the end of job 2
    abandoned.release()
    assert list((tmp_path / JOURNAL_DIR).iterdir()) == []


def test_a_line_after_a_torn_one_of_the_same_pilot_is_read(tmp_path: Path) -> None:
    """A journal line cut short by a full disk while the pilot lives on does not swallow the pilot's next line: each
    line starts on a line of its own, so job 2's start after the torn one is recovered."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(1, DEFINITION, tmp_path / "1")
    with journal.path.open("ab") as handle:
        handle.write(b'\n{"event":"end","panda_id":1')  # an end line cut short by the full disk
    journal.start(2, DEFINITION, tmp_path / "2")
    os.close(os.open(journal.path, os.O_RDONLY))
    journal.close()
    (abandoned,) = take_abandoned(tmp_path)
    assert [e.panda_id for e in abandoned.entries] == [1, 2]
    abandoned.release()


def test_a_journal_on_a_full_disk_writes_with_the_reserve(small_fs: Path) -> None:
    """The state directory's reserve stands behind the journal as behind the final updates: on a file system filled
    after the reserve was made, the job's start is still recorded (the reserve is released for it) and a successor
    finds the job."""
    reserve = SpaceReserve(small_fs, 1024 * 1024)
    assert reserve.ensure()
    journal = Journal(small_fs, "grid-pilot-1", guard=reserve.retrying)
    fill(small_fs)
    journal.start(7, DEFINITION, small_fs / "7")
    assert reserve.held == 0
    os.close(os.open(journal.path, os.O_RDONLY))
    journal.close()
    (abandoned,) = take_abandoned(small_fs)
    assert [e.panda_id for e in abandoned.entries] == [7]
    abandoned.release()


def test_journal_whose_jobs_all_ended_is_removed_at_close(tmp_path: Path) -> None:
    """A pilot whose every job ended leaves no journal; its own journal is never taken as abandoned."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(1, DEFINITION, tmp_path / "1")
    assert take_abandoned(tmp_path, own=journal) == []
    journal.end(1)
    journal.close()
    assert list((tmp_path / JOURNAL_DIR).iterdir()) == []


def _race(state_dir: str, barrier: Any, out: str) -> None:
    barrier.wait()
    for journal in take_abandoned(Path(state_dir)):
        for entry in journal.entries:
            with open(out, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()} {entry.panda_id}\n")
            journal.end(entry.panda_id)
        journal.release()


def test_successors_racing_take_each_job_once(tmp_path: Path) -> None:
    """Four successors started at the same instant on one abandoned journal: each of its jobs is taken by exactly
    one of them (the lock, then the ``end`` lines and the removal under it)."""
    journal = Journal(tmp_path, "grid-pilot-lost")
    for panda_id in (1, 2, 3):
        journal.start(panda_id, DEFINITION, tmp_path / str(panda_id))
    journal.close()
    out = tmp_path / "taken.txt"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    procs = [context.Process(target=_race, args=(str(tmp_path), barrier, str(out))) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    lines = out.read_text().splitlines()
    assert sorted(int(line.split()[1]) for line in lines) == [1, 2, 3]
    assert len({line.split()[0] for line in lines}) == 1  # one successor took the journal
    assert take_abandoned(tmp_path) == []


class _Reporter:
    def __init__(self) -> None:
        self.updates: list[JobUpdate] = []

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        self.updates.append(update)
        return UpdateAnswer(accepted=True)


class _LogOut:
    def __init__(self) -> None:
        self.calls: list[tuple[int, Path, float | None]] = []

    def stage_out_log(self, run: JobRun, timeout_cap: float | None) -> TransferResult:
        self.calls.append((run.job.panda_id, run.workdir, timeout_cap))
        return TransferResult(lfn="log.tgz", direction=Direction.STAGE_OUT, tool="cp", url="file:///s/log.tgz",
                              local_path=str(run.workdir / "log.tgz"), size=1, checksum=("adler32", "00000001"))


def _recovery(state_dir: Path, reporter: _Reporter, log_out: _LogOut) -> JobRecovery:
    return JobRecovery(log_out, reporter, FinalStore(state_dir), PilotIdentity("SITE", "node", pilot_id="grid-pilot-2"),
                       FinalRetry(deadline=0.0), cleanup=False)


def test_abandoned_job_is_reported_once_after_its_log(tmp_path: Path) -> None:
    """The lost pilot's job: its log staged out (bounded), then one final update ``failed`` with KILLSIGNAL (1200)
    naming both pilots, with the log in ``xml``; a second recovery reports nothing."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(42, DEFINITION, tmp_path / "42")
    journal.close()  # job 42 open: the journal stays, its lock is free (as after the pilot's death)
    reporter, log_out = _Reporter(), _LogOut()

    outcome = recover_abandoned(tmp_path, _recovery(tmp_path, reporter, log_out))

    assert outcome.sent == (42,) and outcome.unsent == ()
    assert log_out.calls == [(42, tmp_path / "42", LOG_STOPPING_TIMEOUT)]
    (update,) = reporter.updates
    assert update.final and update.state == "failed"
    assert update.fields["pilotErrorCode"] == ErrorCode.KILLSIGNAL
    assert "grid-pilot-1 was lost" in str(update.fields["pilotErrorDiag"])
    assert "recovered by pilot grid-pilot-2" in str(update.fields["pilotErrorDiag"])
    assert "log.tgz" in str(update.fields["xml"])
    assert recover_abandoned(tmp_path, _recovery(tmp_path, _Reporter(), _LogOut())).sent == ()


def test_abandoned_job_with_a_saved_final_update_is_left_to_it(tmp_path: Path) -> None:
    """A job whose final update was saved before its pilot died is not reported as lost (the saved update is what
    :func:`pilotlib.recovery.recover` sends); its entry is closed."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(42, DEFINITION, tmp_path / "42")
    FinalStore(tmp_path).save(JobUpdate(42, "finished", {"jobId": 42, "state": "finished"}, final=True))
    journal.close()
    reporter, log_out = _Reporter(), _LogOut()
    outcome = recover_abandoned(tmp_path, _recovery(tmp_path, reporter, log_out))
    assert outcome.sent == outcome.unsent == () and reporter.updates == [] and log_out.calls == []
    assert take_abandoned(tmp_path) == []


class _Refusing(_Reporter):
    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        self.updates.append(update)
        return UpdateAnswer(accepted=False, message="refused")


def test_abandoned_job_whose_report_is_refused_is_left_to_the_next_pilot(tmp_path: Path) -> None:
    """A refused report is kept in the final-update store (and counted unsent); the journal entry is closed, so the
    next pilot sends that saved update (:func:`pilotlib.recovery.recover`) rather than recovering the job again."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(42, DEFINITION, tmp_path / "42")
    journal.close()
    refusing = _Refusing()
    outcome = recover_abandoned(tmp_path, _recovery(tmp_path, refusing, _LogOut()))
    assert outcome.sent == () and outcome.unsent == (42,) and len(refusing.updates) == 1
    assert take_abandoned(tmp_path) == []
    reporter = _Reporter()
    assert recover(FinalStore(tmp_path), reporter) == [42]
    assert reporter.updates[0].fields["pilotErrorCode"] == ErrorCode.KILLSIGNAL


def _disk_full(write: Callable[[], None]) -> None:
    """A write guard on a disk that stays full: the reserve had nothing left to release."""
    raise OSError(errno.ENOSPC, "No space left on device")


def test_abandoned_journal_that_cannot_be_written_does_not_end_the_recovery(tmp_path: Path) -> None:
    """The journal's ``end`` line of a recovered job fails (ENOSPC from the state directory's guard): the recovery
    still returns, with the job's failure sent and its final update kept as sent; the entry stays open, so the next
    pilot finds the saved update, reports nothing again and closes the entry."""
    journal = Journal(tmp_path, "grid-pilot-1")
    journal.start(42, DEFINITION, tmp_path / "42")
    journal.close()
    reporter = _Reporter()

    outcome = recover_abandoned(tmp_path, _recovery(tmp_path, reporter, _LogOut()), guard=_disk_full)

    assert outcome.sent == (42,) and outcome.unsent == ()
    (update,) = reporter.updates
    assert update.final and update.fields["pilotErrorCode"] == ErrorCode.KILLSIGNAL
    assert FinalStore(tmp_path).is_sent(42)
    (left,) = take_abandoned(tmp_path)  # the entry could not be closed
    assert [e.panda_id for e in left.entries] == [42]
    left.release()
    again = _Reporter()
    assert recover_abandoned(tmp_path, _recovery(tmp_path, again, _LogOut())) == AbandonedOutcome()
    assert again.updates == [] and take_abandoned(tmp_path) == []
