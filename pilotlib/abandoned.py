"""Recovery of the jobs a lost pilot left: started (in its :mod:`~pilotlib.journal`), never finished.

A pilot killed with ``SIGKILL`` (or whose node went down) leaves its jobs ``running`` on the server forever. A pilot
started in the same work area (the same state directory) calls :func:`recover_abandoned` before it takes new work.
For each job of each journal whose owner is gone (its lock is free):

- when a final update of the job is already in the :class:`~pilotlib.recovery.FinalStore` (the pilot died while
  sending it, or after saving it), nothing more is done here: :func:`pilotlib.recovery.recover` sends it;
- otherwise the job's work directory is staged out as its log tarball (with the job's own pilot log), and the job is
  reported ``failed`` with KILLSIGNAL (1200), through :func:`~pilotlib.recovery.deliver_final` (saved before it is
  sent, claimed, so that it is reported once even when the sending pilot dies too).

The journal entry is closed once the final update is saved (or acknowledged), so no later pilot reports the job again.
pilot3 has no code for a lost pilot; a pilot killed with ``SIGKILL`` is what 1200 names: pilot3's
``pilot/common/errorcodes.py`` ``get_kill_signal_error_code`` gives KILLSIGNAL for every signal outside its table
(SIGKILL included), and ``pilot/util/auxiliary.py`` turns 1200 into the exit status 137 (128 + SIGKILL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from pilotlib._atomic import WriteGuard, make_private_dir
from pilotlib.errors import JobDefinitionError, PilotError, PilotLostError
from pilotlib.job import Job, parse_job
from pilotlib.jobsetup import JobSetup
from pilotlib.journal import AbandonedJournal, Journal, JournalEntry, take_abandoned
from pilotlib.panda.base import JobReporter
from pilotlib.pipeline import JobRun
from pilotlib.recovery import FinalRetry, FinalStore, deliver_final
from pilotlib.report import PilotIdentity, final_update
from pilotlib.stages import LOG_STOPPING_TIMEOUT, LogStager, clean_workdir
from pilotlib.stop import StopSignal

__all__ = ["AbandonedOutcome", "JobRecovery", "recover_abandoned"]

log = logging.getLogger(__name__)


@attrs.frozen
class JobRecovery:
    """What recovering an abandoned job needs: where its log goes, where its final update goes and is kept.

    Attributes:
        log_out: stages the work directory out as the job's log tarball (each step bounded by
            :data:`~pilotlib.stages.LOG_STOPPING_TIMEOUT` seconds, one try: recovery must not hold the start).
        reporter: the mode's reporter (the server, or Harvester's files).
        store: where final updates are kept until acknowledged.
        identity: the recovering pilot (its ``pilotID`` goes in the update and the diagnostics).
        retry: how long the final update is tried.
        job_log: a short extract of the job's own pilot log (``pilotLog``), by PandaID.
        cleanup: remove the work directory once the final update is acknowledged and the log staged out.
        on_job: called with each job before its final update is sent (Harvester's reporter needs the job).
        setup_of: the job's set-up (its log's copytools), resolved as for a job taken (default: the defaults).
    """

    log_out: LogStager
    reporter: JobReporter
    store: FinalStore
    identity: PilotIdentity
    retry: FinalRetry = attrs.field(factory=lambda: FinalRetry(deadline=0.0))
    job_log: Callable[[int], str] = lambda _panda_id: ""
    cleanup: bool = True
    on_job: Callable[[Job], None] = lambda _job: None
    setup_of: Callable[[Job], JobSetup] = lambda _job: JobSetup()


@attrs.frozen
class AbandonedOutcome:
    """The PandaIDs whose failure was reported and acknowledged now, and those left unsent on disk."""

    sent: tuple[int, ...] = ()
    unsent: tuple[int, ...] = ()


def _diagnostics(entry: JournalEntry, identity: PilotIdentity) -> str:
    return (f"pilot {entry.pilot} was lost while running the job (killed or its node went down); "
            f"recovered by pilot {identity.pilot_id or 'unknown'} on {identity.node}")


def _report(entry: JournalEntry, job: Job, parts: JobRecovery, stopping: StopSignal | None) -> bool:
    """Stage out the job's log, then report it failed (pilot lost); True when acknowledged."""
    run = JobRun(job, entry.workdir, parts.setup_of(job), started=entry.started or time.time(),
                 failure=PilotLostError(_diagnostics(entry, parts.identity)))
    log_result = None
    if job.log is not None:
        make_private_dir(entry.workdir)  # gone: the tarball still carries the job's pilot log
        log_result = parts.log_out.stage_out_log(run, LOG_STOPPING_TIMEOUT)
    run = attrs.evolve(run, log_result=log_result)
    parts.on_job(job)
    update = final_update(run, parts.identity, parts.job_log(job.panda_id))
    sent = deliver_final(update, parts.reporter, parts.store, parts.retry, stopping=stopping)
    log_out = log_result is None or log_result.ok
    if sent and log_out and parts.cleanup:
        clean_workdir(entry.workdir)
    return sent


def _end(journal: AbandonedJournal, panda_id: int) -> None:
    """Close the job's entry; one that cannot be written (a full or broken disk) stays open: the next pilot finds the
    saved final update and only closes it."""
    try:
        journal.end(panda_id)
    except OSError as exc:
        log.error("abandoned journal entry not closed panda_id=%d error=%s", panda_id, exc)


def _recover_entry(journal: AbandonedJournal, entry: JournalEntry, parts: JobRecovery,
                   stopping: StopSignal | None) -> bool | None:
    """Recover one job; True when its failure was acknowledged, False when left on disk, None when there was
    nothing to report (a final update already saved, or a definition that cannot be read)."""
    if parts.store.has(entry.panda_id):
        log.info("abandoned job has a final update already panda_id=%d", entry.panda_id)
        _end(journal, entry.panda_id)
        return None
    try:
        job = parse_job(entry.definition)
    except JobDefinitionError as exc:
        log.error("abandoned job not recoverable panda_id=%d error=%s", entry.panda_id, exc)
        _end(journal, entry.panda_id)
        return None
    log.warning("recovering abandoned job panda_id=%d pilot=%s workdir=%s", entry.panda_id, entry.pilot,
                entry.workdir)
    try:
        sent = _report(entry, job, parts, stopping)
    except (PilotError, OSError) as exc:  # e.g. the state directory cannot be written: left for the next pilot
        log.error("abandoned job not recovered panda_id=%d error=%s", entry.panda_id, exc)
        return False
    if sent or parts.store.has(entry.panda_id):  # saved: recover() sends it if this pilot could not
        _end(journal, entry.panda_id)
    return sent


def recover_abandoned(state_dir: Path, parts: JobRecovery, own: Journal | None = None, *,
                      stopping: StopSignal | None = None, guard: WriteGuard | None = None) -> AbandonedOutcome:
    """Recover the jobs of every journal in ``state_dir`` whose pilot is gone (see the module); ``own`` is this
    pilot's journal (skipped); ``guard`` runs the journals' writes (as for :class:`~pilotlib.journal.Journal`, e.g.
    the state directory's reserve). Once ``stopping`` is set, no further job is recovered (the rest stay for the next
    pilot). Once one final update could not be delivered (the server is down), the others get one try each, so that a
    server that is down does not hold up the start once per job. A journal line that cannot be written (a full or
    broken disk) does not end the recovery: the entry stays open and the next pilot finds the job's saved final update
    and only closes it."""
    sent: list[int] = []
    unsent: list[int] = []
    journals = take_abandoned(state_dir, own) if guard is None else take_abandoned(state_dir, own, guard)
    for journal in journals:
        try:
            for entry in journal.entries:
                if stopping is not None and stopping.is_set():
                    break
                ok = _recover_entry(journal, entry, parts, stopping)
                if ok is not None:
                    (sent if ok else unsent).append(entry.panda_id)
                if ok is False:
                    parts = attrs.evolve(parts, retry=attrs.evolve(parts.retry, deadline=0.0))
        finally:
            journal.release()
    return AbandonedOutcome(tuple(sent), tuple(unsent))
