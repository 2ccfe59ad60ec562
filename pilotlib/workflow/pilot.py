"""One pilot's run: the parts it is made of (:class:`PilotKit`) -> recover, check the queue, take and run jobs.

:func:`run_pilot` is the whole of a pilot's life once its parts are chosen:

1. deliver the final updates an earlier pilot left unsent (:mod:`pilotlib.recovery`);
2. read and check the queue's description (a queue that is not active, or that cannot be described, ends the pilot
   with its code, no job fetched) and the pilot's limits from it;
3. report the jobs of lost pilots failed (:mod:`pilotlib.abandoned`), their logs staged out first;
4. run jobs through the pipeline's standard stages until there is no more work, the lifetime ends or the stop is
   set; each job is journalled and its set-up resolved as it is taken (:class:`~pilotlib.workflow.retrieval.Retriever`).

:func:`exit_code` turns the :class:`Outcome` into the process exit status a wrapper can act on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from pilotlib._atomic import make_private_dir
from pilotlib.abandoned import JobRecovery, recover_abandoned
from pilotlib.containers import ContainerDefaults
from pilotlib.errors import ErrorCode, PilotError, process_exit_code
from pilotlib.info import InfoService
from pilotlib.jobsetup import CopytoolChoice, SetupResolver
from pilotlib.journal import Journal
from pilotlib.panda.base import JobRequest
from pilotlib.pipeline import JobRun, Pipeline
from pilotlib.recovery import FinalRetry, FinalStore, recover
from pilotlib.report import PilotIdentity
from pilotlib.space import MB
from pilotlib.stages import InputStager, LogStager, OutputStager, Stages, standard_stages
from pilotlib.stop import Stop
from pilotlib.workflow.events import EventServiceExecutor, EventSettings, KillableExecutor, event_outputs
from pilotlib.workflow.modes import ModeParts
from pilotlib.workflow.queue import DEFAULT_LIFETIME, check_queue, pilot_limits
from pilotlib.workflow.retrieval import Retriever
from pilotlib.workflow.state import PilotState, WorkAreaSpace, tail

__all__ = [
    "RECOVERY_FAILED",
    "Outcome",
    "PilotConfig",
    "PilotKit",
    "exit_code",
    "recover_state",
    "run_pilot",
    "summary",
    "this_pilot",
]

log = logging.getLogger(__name__)

#: The exit status when a final update of an earlier pilot's job (one left unsent, or of a job a lost pilot abandoned)
#: could still not be delivered: 79, pilot3's "PanDA server communication failure" (``pilot/util/auxiliary.py``
#: ``get_error_code_translation_dictionary``: COMMUNICATIONFAILURE). The update stays in the state directory.
RECOVERY_FAILED = process_exit_code(ErrorCode.COMMUNICATIONFAILURE)


@attrs.frozen
class PilotConfig:
    """How long a pilot lives and how it treats its jobs.

    Attributes:
        workdir: the work area; each job runs in ``<workdir>/<PandaID>`` (may be a RAM disk: the pilot's own state
            lives in its :class:`~pilotlib.workflow.state.PilotState`, apart).
        lifetime: seconds the pilot may live (the queue's ``maxtime`` shortens it).
        timefloor: seconds during which a multi-job pilot keeps asking for jobs (None: the queue's, else 0).
        max_jobs: the most jobs this pilot runs (0: as many as the lifetime allows).
        in_flight: jobs between retrieval and report at once (2 lets the next job be fetched during a payload).
        heartbeat: seconds between heartbeats.
        final_retry: seconds to keep trying a final update.
        cleanup: remove a job's work directory once its final update is acknowledged and its log staged out.
        free_space_limit: bytes the work area must have free before a job is asked for (pilot3
            ``free_space_limit``, 2 GB).
    """

    workdir: Path
    lifetime: float = DEFAULT_LIFETIME
    timefloor: float | None = None
    max_jobs: int = 0
    in_flight: int = 1
    heartbeat: float = 1800.0
    final_retry: float = 600.0
    cleanup: bool = True
    free_space_limit: int = 2000 * MB


@attrs.frozen
class PilotKit:
    """Everything one pilot is made of: where jobs come from and updates go, how its jobs' files move and how their
    payloads run, and where it keeps its own state.

    Attributes:
        mode: the job source, the reporter and what happens at the end (:mod:`pilotlib.workflow.modes`).
        config: the pilot's limits and habits.
        state: the state directory (final updates, journal, logs) and its reserve.
        identity: who reports.
        request: what jobs to ask for.
        stage_in, stage_out, log_out: the stagers (:class:`~pilotlib.workflow.transfers.TransferStages` is all
            three).
        payload: starts the payloads (:class:`~pilotlib.workflow.executor.RunnerExecutor`).
        info: the information service (None: no queue description; the pilot's choices say everything).
        copytools: the pilot's own copytools, above the queue's.
        containers: the pilot's own container runtime and images, below the job's and the queue's.
        events: how event-service jobs run (the workflow is chosen from each job's definition).
    """

    mode: ModeParts
    config: PilotConfig
    state: PilotState
    identity: PilotIdentity
    request: JobRequest
    stage_in: InputStager
    stage_out: OutputStager
    log_out: LogStager
    payload: KillableExecutor
    info: InfoService | None = attrs.field(default=None, eq=False)
    copytools: CopytoolChoice = attrs.field(factory=CopytoolChoice)
    containers: ContainerDefaults = attrs.field(factory=ContainerDefaults)
    events: EventSettings = attrs.field(factory=EventSettings)


@attrs.frozen
class Outcome:
    """What the pilot did: the finished runs, the error that ended retrieval, if any, the earlier final updates it
    delivered (``recovered``: left unsent, or of jobs a lost pilot abandoned) and those it could not
    (``unrecovered``, still in the state directory)."""

    runs: tuple[JobRun, ...]
    retrieve_error: PilotError | None
    recovered: tuple[int, ...] = ()
    unrecovered: tuple[int, ...] = ()


def this_pilot(site_name: str, program: str, batch_id: str = "") -> PilotIdentity:
    """This process as a pilot: the node's name, ``pilotID`` ``<program>-<pid>``, the batch job's id."""
    return PilotIdentity(site_name=site_name, node=socket.gethostname(), pilot_id=f"{program}-{os.getpid()}",
                         batch_id=batch_id)


def _stages(kit: PilotKit, store: FinalStore) -> Stages:
    payload = EventServiceExecutor(kit.payload, kit.mode.events,
                                   event_outputs(kit.mode.events, kit.mode.event_place, kit.stage_out), kit.events)
    return Stages(stage_in=kit.stage_in, payload=payload, stage_out=kit.stage_out, log_out=kit.log_out,
                  reporter=kit.mode.reporter, identity=kit.identity, store=store,
                  heartbeat_interval=kit.config.heartbeat, final_retry=FinalRetry(deadline=kit.config.final_retry),
                  pilot_log=lambda: tail(kit.state.pilot_log), cleanup=kit.config.cleanup)


def _open_journal(kit: PilotKit) -> Journal | None:
    try:
        return Journal(kit.state.path, kit.identity.pilot_id, guard=kit.state.reserve.retrying)
    except OSError as exc:
        log.error("no journal: the jobs of this pilot cannot be recovered if it is lost error=%s", exc)
        return None


def _recover_abandoned(kit: PilotKit, stages: Stages, setups: SetupResolver, journal: Journal | None,
                       stop: Stop) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Report the jobs of lost pilots failed (their log staged out first), before any new work is taken."""
    recovery = JobRecovery(stages.log_out, kit.mode.reporter, stages.store, stages.identity,
                           FinalRetry(deadline=min(60.0, kit.config.final_retry)),
                           job_log=lambda panda_id: tail(kit.state.job_log(panda_id)),
                           cleanup=kit.config.cleanup, on_job=kit.mode.recovering,
                           setup_of=lambda job: setups.settle(job)[0])
    outcome = recover_abandoned(kit.state.path, recovery, journal, stopping=stop, guard=kit.state.reserve.retrying)
    if outcome.sent or outcome.unsent:
        log.warning("recovered jobs of lost pilots reported=%s unsent=%s", ",".join(map(str, outcome.sent)),
                    ",".join(map(str, outcome.unsent)))
    return outcome.sent, outcome.unsent


def _end_journal(journal: Journal | None, run: JobRun, store: FinalStore) -> None:
    """Close the job's journal entry once its final update is saved (or was acknowledged without a copy)."""
    if journal is None or not (run.final_sent or store.has(run.job.panda_id)):
        return
    try:
        journal.end(run.job.panda_id)
    except OSError as exc:  # the entry stays open: a later pilot finds the saved final update and only closes it
        log.error("journal entry not closed panda_id=%d error=%s", run.job.panda_id, exc)


def _log_when_stopping(stop: Stop) -> threading.Event:
    """Log the stop's reason (a signal) from a thread as soon as it is set (never from the signal handler, where
    logging could deadlock); set the returned event to end the thread."""
    ended = threading.Event()
    stop.when_set(lambda _reason: ended.set())

    def watch() -> None:
        ended.wait()
        if stop.reason is not None:
            log.warning("pilot stopping code=%d reason=%s", int(stop.reason.code), stop.reason)

    threading.Thread(target=watch, name="stop-log", daemon=True).start()
    return ended


def _recover_unsent(kit: PilotKit, store: FinalStore, stop: Stop) -> tuple[list[int], tuple[int, ...]]:
    earlier = store.pending()
    recovered = recover(store, kit.mode.reporter, FinalRetry(deadline=min(60.0, kit.config.final_retry)),
                        stopping=stop)
    if recovered:
        log.info("recovered final updates panda_ids=%s", ",".join(map(str, recovered)))
    unrecovered = tuple(p for p in earlier if p not in recovered)
    if unrecovered:
        log.error("final updates of earlier jobs still not delivered panda_ids=%s", ",".join(map(str, unrecovered)))
    return list(recovered), unrecovered


def recover_state(kit: PilotKit, state: PilotState, stop: Stop) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Do for another pilot's state directory what :func:`run_pilot` does first for its own: send the final updates
    left there unsent, then report the jobs of its journals whose owner is gone failed (KILLSIGNAL 1200, their logs
    staged out first), with ``kit``'s reporter and stagers. A journal still locked (its pilot lives) is left alone.

    Returns:
        The PandaIDs whose final update was delivered, and those still not delivered (kept in ``state``).
    """
    other = attrs.evolve(kit, state=state)
    store = FinalStore(state.path, guard=state.reserve.retrying)
    recovered, unrecovered = _recover_unsent(other, store, stop)
    setups = SetupResolver(kit.info, kit.copytools, kit.containers)
    sent, unsent = _recover_abandoned(other, _stages(other, store), setups, None, stop)
    return (*recovered, *sent), (*unrecovered, *unsent)


def run_pilot(kit: PilotKit, stop: Stop, started: float | None = None, *,
              on_done: Callable[[JobRun], None] | None = None) -> Outcome:
    """Run the pilot made of ``kit`` until there is no more work, its lifetime ends or ``stop`` (see the module);
    ``on_done`` is called with each finished job (e.g. to close its log file). A recovery that fails does not keep
    the pilot from taking new work; the exit status tells (:data:`RECOVERY_FAILED`).

    The state directory keeps its reserve; a pilot that asks for jobs stops asking when the work area has too
    little free space (NOLOCALSPACE 1098)."""
    started = time.monotonic() if started is None else started
    started_epoch = time.time() - (time.monotonic() - started)
    config, state = kit.config, kit.state
    make_private_dir(config.workdir)
    make_private_dir(state.path)
    state.reserve.ensure()
    store = FinalStore(state.path, guard=state.reserve.retrying)
    recovered, unrecovered = _recover_unsent(kit, store, stop)
    try:
        queue = check_queue(kit.info)
    except PilotError as exc:
        kit.mode.at_end()
        return Outcome((), exc, tuple(recovered), unrecovered)
    limits = pilot_limits(config.lifetime, config.timefloor, queue, started_epoch)
    setups = SetupResolver(kit.info, kit.copytools, kit.containers)
    stages = _stages(kit, store)
    journal = _open_journal(kit)
    sent, unsent = _recover_abandoned(kit, stages, setups, journal, stop)
    recovered, unrecovered = [*recovered, *sent], (*unrecovered, *unsent)
    space = WorkAreaSpace.of_queue(config.workdir, config.free_space_limit, state.reserve, placed=kit.mode.placed,
                                   queue=queue)
    retriever = Retriever(kit.mode.source, kit.request, config.workdir, started, limits=limits,
                          max_jobs=config.max_jobs, setups=setups, journal=journal, space=space)

    def finished(run: JobRun) -> None:
        _end_journal(journal, run, store)
        if on_done is not None:
            on_done(run)

    pipeline = Pipeline(retriever, standard_stages(stages), stop, in_flight=config.in_flight, on_done=finished)
    stopping_logged = _log_when_stopping(stop)
    runs = pipeline.run()
    stopping_logged.set()
    if journal is not None:
        journal.close()
    kit.mode.at_end()
    return Outcome(tuple(runs), pipeline.retrieve_error, tuple(recovered), tuple(unrecovered))


def exit_code(outcome: Outcome, stop: Stop) -> int:
    """The process exit status for a wrapper: signals 128+N, pilot errors 64-83, other failures 1, else 0.

    A job that failed because the disk was full gives NOLOCALSPACE's status (69), as pilot3 does (its traces' error
    code, ``pilot.py`` ``get_proper_exit_code``); an earlier job's final update still not delivered gives
    :data:`RECOVERY_FAILED` (79); a job of this pilot whose final update was not acknowledged or whose log was not
    staged out gives 1.
    """
    if stop.reason is not None:
        return process_exit_code(stop.reason)
    if outcome.retrieve_error is not None:
        return process_exit_code(outcome.retrieve_error)
    full = next((r.failure for r in outcome.runs
                 if r.failure is not None and r.failure.code == ErrorCode.NOLOCALSPACE), None)
    if full is not None:
        return process_exit_code(full)
    if outcome.unrecovered:
        return RECOVERY_FAILED
    lost = [r for r in outcome.runs if not r.final_sent or _log_not_out(r)]
    return 1 if lost else 0


def _log_not_out(run: JobRun) -> bool:
    return run.job.log is not None and run.log_result is not None and not run.log_result.ok


def summary(outcome: Outcome, state: PilotState, status: int) -> str:
    """What the pilot did, a line per job and per recovery, for its last words on stdout."""
    lines = []
    for run in outcome.runs:
        code = int(run.failure.code) if run.failure is not None else 0
        result = "failed" if run.failure is not None else "finished"
        sent = "acknowledged" if run.final_sent else "kept for recovery"
        lines.append(f"job {run.job.panda_id}: {result} pilotErrorCode={code} final update {sent}; "
                     f"work directory {run.workdir}")
    if outcome.recovered:
        lines.append(f"recovered final updates of jobs {', '.join(map(str, outcome.recovered))}")
    if outcome.unrecovered:
        lines.append(f"final updates of earlier jobs still not delivered (kept for the next pilot): "
                     f"{', '.join(map(str, outcome.unrecovered))}")
    if not outcome.runs:
        lines.append("no job was run")
    if outcome.retrieve_error is not None:
        error = outcome.retrieve_error
        lines.append(f"stopped asking for jobs: {type(error).__name__} code={int(error.code)}: {error}")
    lines.append(f"pilot log {state.pilot_log}; exit status {status}")
    return "\n".join(lines)
