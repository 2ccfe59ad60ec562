"""Composition: settings -> the job source, reporter, stages and pipeline of one mode; run them.

The mode is chosen here once (STYLE R2): each mode is a job source and a reporter; everything else is the same.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from apps.grid_pilot.data import TransferStages
from apps.grid_pilot.payload import RunnerExecutor, payload_settings
from apps.grid_pilot.queueinfo import JobSetups, PilotLimits, build_info_service, check_queue, pilot_limits
from apps.grid_pilot.server import server_parts
from apps.grid_pilot.settings import HARVESTER_FILES, Mode, Settings
from apps.grid_pilot.state import WorkAreaSpace, state_reserve
from pilotlib.abandoned import JobRecovery, recover_abandoned
from pilotlib.errors import ErrorCode, PilotError, process_exit_code
from pilotlib.job import Job, is_secret_field, job_to_wire
from pilotlib.journal import Journal
from pilotlib.logcontext import job_context
from pilotlib.panda.arc import ArcJobSource, ArcReporter
from pilotlib.panda.base import JobReporter, JobRequest, JobSource
from pilotlib.panda.harvester import HarvesterFiles, HarvesterJobSource, HarvesterReporter
from pilotlib.payload import Lifeline
from pilotlib.pipeline import JobRun, Pipeline
from pilotlib.recovery import FinalRetry, FinalStore, recover
from pilotlib.report import PilotIdentity
from pilotlib.reserve import SpaceReserve
from pilotlib.space import MB
from pilotlib.stages import Stages, standard_stages
from pilotlib.stop import Stop
from pilotlib.transfer.registry import default_registry

__all__ = ["PILOT_LOG", "RECOVERY_FAILED", "Outcome", "Parts", "Retriever", "build_parts", "exit_code", "job_log_path",
           "run_pilot"]

log = logging.getLogger(__name__)

PILOT_LOG = "pilotlog.txt"

#: The exit status when a final update of an earlier pilot's job (one left unsent, or of a job a lost pilot abandoned)
#: could still not be delivered: 79, pilot3's "PanDA server communication failure" (``pilot/util/auxiliary.py``
#: ``get_error_code_translation_dictionary``: COMMUNICATIONFAILURE). The update stays in the state directory.
RECOVERY_FAILED = process_exit_code(ErrorCode.COMMUNICATIONFAILURE)


@attrs.frozen
class Parts:
    """The mode's job source and reporter, and what to do when the pilot ends (Harvester: ``kill_worker.json``);
    ``recovering`` is told each abandoned job whose failure is about to be reported (Harvester's reporter needs it)."""

    source: JobSource
    reporter: JobReporter
    at_end: Callable[[], None] = lambda: None
    recovering: Callable[[Job], None] = lambda _job: None


@attrs.frozen
class Outcome:
    """What the pilot did: the finished runs, the error that ended retrieval, if any, the earlier final updates it
    delivered (``recovered``: left unsent, or of jobs a lost pilot abandoned) and those it could not
    (``unrecovered``, still in the state directory)."""

    runs: tuple[JobRun, ...]
    retrieve_error: PilotError | None
    recovered: tuple[int, ...] = ()
    unrecovered: tuple[int, ...] = ()


def _event_for(stop: Stop) -> threading.Event:
    event = threading.Event()
    stop.when_set(lambda _reason: event.set())
    return event


def harvester_files(settings: Settings) -> HarvesterFiles:
    """The access point and Harvester's file names of the settings (unset names keep Harvester's defaults)."""
    assert settings.harvester_workdir is not None
    attribute = {option: attr for option, _key, attr in HARVESTER_FILES}
    names = {attribute[option]: name for option, name in settings.harvester_names.items()}
    return HarvesterFiles(settings.harvester_workdir, per_job_dirs=settings.harvester_per_job_dirs, **names)


def _harvester_parts(settings: Settings, stop: Stop) -> Parts:
    files = harvester_files(settings)
    source = HarvesterJobSource(files, stop=_event_for(stop), wait_timeout=max(1.0, settings.timefloor or 60.0))
    recovering: dict[int, Job] = {}
    reporter = HarvesterReporter(files, job_of=lambda panda_id: source.served_job(panda_id) or recovering.get(panda_id),
                                 local_dir=lambda panda_id: settings.workdir / str(panda_id))
    return Parts(source, reporter, reporter.kill_worker, lambda job: recovering.update({job.panda_id: job}))


def _data_places(settings: Settings) -> tuple[str, str, tuple[str, ...]]:
    """Stage-in's fallback place, stage-out's, and stage-out's copytools: in harvester mode inputs are in the
    job's directory of the access point; with ``harvester_stageout = harvester`` outputs and the log are copied
    there (``cp``) and left to Harvester."""
    input_url, output_url = settings.input_url, settings.output_url or str(settings.workdir / "storage")
    tools_out = settings.copytool_out
    if settings.mode is Mode.HARVESTER and settings.harvester_workdir is not None:
        per_job = "/{panda_id}" if settings.harvester_per_job_dirs else ""
        input_url = settings.input_url or str(settings.harvester_workdir) + per_job
        if settings.harvester_stageout == "harvester":
            output_url = settings.output_url or str(settings.harvester_workdir)
            tools_out = tools_out or ("cp",)
    return input_url, output_url, tools_out


def _arc_parts(settings: Settings, stop: Stop) -> Parts:
    assert settings.launch_dir is not None
    return Parts(ArcJobSource(settings.launch_dir), ArcReporter(settings.launch_dir))


def _server_parts(settings: Settings, stop: Stop) -> Parts:
    source, reporter = server_parts(settings, stop)
    return Parts(source, reporter)


_MODES: dict[Mode, Callable[[Settings, Stop], Parts]] = {
    Mode.SERVER: _server_parts,
    Mode.HARVESTER: _harvester_parts,
    Mode.ARC: _arc_parts,
}


def build_parts(settings: Settings, stop: Stop) -> Parts:
    """The job source and reporter of the settings' mode."""
    return _MODES[settings.mode](settings, stop)


class Retriever:
    """Fetches the next job while the pilot's lifetime, timefloor and job limit allow (the pipeline's retrieve).

    The first job is always asked for. Another one is asked for while less than ``timefloor`` seconds passed since
    the start, or while fewer than ``max_jobs`` ran; never when less than ``reserve`` seconds of lifetime remain.
    ``space`` (when given) checks the work area before each request (too little free space raises NOLOCALSPACE
    1098: no job is asked for; it gives the ``diskSpace`` MB to ask with) and, in the launch-directory modes, after a
    placed job is read (too little fails that job, which is then reported).
    """

    def __init__(self, source: JobSource, request: JobRequest, settings: Settings, started: float,
                 *, reserve: float = 120.0, limits: PilotLimits | None = None, journal: Journal | None = None,
                 space: WorkAreaSpace | None = None) -> None:
        self._journal = journal
        self._source = source
        self._request = request
        self._settings = settings
        self._limits = limits or pilot_limits(settings, None)
        self._started = started
        self._reserve = reserve
        self._pending: list[Job] = []
        self._space = space
        self.count = 0

    def _may_fetch(self) -> bool:
        s, limits = self._settings, self._limits
        elapsed = time.monotonic() - self._started
        if limits.lifetime - elapsed < min(self._reserve, limits.lifetime / 2):
            return False
        if self.count == 0:
            return True
        if s.max_jobs:
            return self.count < s.max_jobs
        return elapsed < limits.timefloor

    def __call__(self, stop: Stop) -> JobRun | None:
        """The next job's run, or None when the pilot should take no more work."""
        if stop.is_set() or not self._may_fetch():
            return None
        begin = time.monotonic()
        if not self._pending:
            request = self._request if self._space is None else attrs.evolve(self._request,
                                                                              disk_mb=self._space.before_request())
            self._pending.extend(self._source.get_jobs(request))
        if not self._pending:
            log.info("no job to run jobs_done=%d", self.count)
            return None
        job = self._pending.pop(0)
        timings = {"getjob": time.monotonic() - begin}
        if self.count == 0:
            timings["initial_setup"] = begin - self._started
        self.count += 1
        log.info("job taken panda_id=%d number=%d", job.panda_id, self.count)
        workdir = self._settings.workdir / str(job.panda_id)
        self._record(job, workdir)
        run = JobRun(job, workdir, timings=timings)
        no_space = self._space.placed_job() if self._space is not None else None
        if no_space is None:
            return run
        with job_context(job.panda_id):
            log.error("job failed before it started code=%d error=%s", int(no_space.code), no_space)
        return run.failed(no_space)

    def _record(self, job: Job, workdir: Path) -> None:
        """Journal the job before its ``starting`` update (a pilot that cannot write it still runs the job), without
        its credential fields: the journal is a file on disk, and recovery needs none of them."""
        if self._journal is None:
            return
        definition = {key: value for key, value in job_to_wire(job).items() if not is_secret_field(key)}
        try:
            self._journal.start(job.panda_id, definition, workdir)
        except OSError as exc:
            log.error("job not journalled: it cannot be recovered if this pilot is lost panda_id=%d error=%s",
                      job.panda_id, exc)


def _stages(settings: Settings, reporter: JobReporter, store: FinalStore, setups: JobSetups,
            limits: PilotLimits, *, places: tuple[str, str], lifeline: Lifeline | None = None,
            reserve: SpaceReserve | None = None) -> Stages:
    data = TransferStages(default_registry(settings.environ), setups, *places,
                          job_log_of=lambda panda_id: job_log_path(settings, panda_id),
                          log_fallback_of=lambda panda_id: settings.state_path / str(panda_id) / "log",
                          reserve=reserve)
    executor = RunnerExecutor(payload_settings(settings, settings.environ), grace=settings.payload_grace,
                              looping_limit=settings.looping_limit, memory_limit_kb=settings.memory_limit_kb,
                              sample_interval=min(60.0, settings.heartbeat), setups=setups,
                              deadline=limits.deadline, lifeline=lifeline,
                              free_space_limit=settings.free_space_limit_running_mb * MB)
    identity = pilot_identity(settings)
    return Stages(stage_in=data, payload=executor, stage_out=data, log_out=data, reporter=reporter,
                  identity=identity, store=store, heartbeat_interval=settings.heartbeat,
                  final_retry=FinalRetry(deadline=settings.final_retry),
                  pilot_log=lambda: _tail(settings.state_path / PILOT_LOG), cleanup=settings.cleanup)


def pilot_identity(settings: Settings) -> PilotIdentity:
    """Who this pilot is in its updates (``pilotID`` ``grid-pilot-<pid>``, the batch job's id from the settings)."""
    return PilotIdentity(site_name=settings.site_name, node=socket.gethostname(),
                         pilot_id=f"grid-pilot-{os.getpid()}", batch_id=settings.batch_id)


def _open_journal(settings: Settings, reserve: SpaceReserve) -> Journal | None:
    try:
        return Journal(settings.state_path, pilot_identity(settings).pilot_id, guard=reserve.retrying)
    except OSError as exc:
        log.error("no journal: the jobs of this pilot cannot be recovered if it is lost error=%s", exc)
        return None


def _recover_abandoned(settings: Settings, parts: Parts, stages: Stages, journal: Journal | None,
                       stop: Stop, *, reserve: SpaceReserve) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Report the jobs of lost pilots failed (their log staged out first), before any new work is taken."""
    recovery = JobRecovery(stages.log_out, parts.reporter, stages.store, stages.identity,
                           FinalRetry(deadline=min(60.0, settings.final_retry)),
                           job_log=lambda panda_id: _tail(job_log_path(settings, panda_id)),
                           cleanup=settings.cleanup, on_job=parts.recovering)
    outcome = recover_abandoned(settings.state_path, recovery, journal, stopping=stop, guard=reserve.retrying)
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


def job_log_path(settings: Settings, panda_id: int) -> Path:
    """Where job ``panda_id``'s own pilot log is written while it runs (in the pilot's state directory, not in the
    job's work directory)."""
    return settings.state_path / f"pilotlog-{panda_id}.txt"


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _log_when_stopping(stop: Stop) -> threading.Event:
    """Log the stop's reason (a signal) from a thread as soon as it is set (never from the signal handler, where
    logging could deadlock); set the returned event to end the thread."""
    ended = _event_for(stop)

    def watch() -> None:
        ended.wait()
        if stop.reason is not None:
            log.warning("pilot stopping code=%d reason=%s", int(stop.reason.code), stop.reason)

    threading.Thread(target=watch, name="stop-log", daemon=True).start()
    return ended


def run_pilot(settings: Settings, stop: Stop, started: float | None = None, *,
              on_done: Callable[[JobRun], None] | None = None, lifeline: Lifeline | None = None,
              reserve: SpaceReserve | None = None) -> Outcome:
    """Recover unsent final updates, read the queue's description (a queue that is not active or cannot be
    described ends the pilot with its code, no job fetched), report the jobs of lost pilots failed
    (:mod:`pilotlib.abandoned`), then run jobs, each journalled before its ``starting`` update, until there is no
    more work, the lifetime ends or ``stop``; ``on_done`` is called with each finished job (e.g. to close its log
    file). A recovery that fails does not keep the pilot from taking new work; the exit status tells
    (:data:`RECOVERY_FAILED`).

    The state directory keeps its reserve (``reserve``, default the settings'); in server mode a work area with too
    little free space ends the pilot before it asks for a job (NOLOCALSPACE 1098)."""
    started = time.monotonic() if started is None else started
    started_epoch = time.time() - (time.monotonic() - started)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    settings.state_path.mkdir(parents=True, exist_ok=True)
    try:
        parts = build_parts(settings, stop)
    except PilotError as exc:  # e.g. a --proxy that is not there: the pilot's code, no job fetched
        log.error("pilot cannot start code=%d error=%s", int(exc.code), exc)
        return Outcome((), exc, ())
    reserve = reserve or state_reserve(settings)
    reserve.ensure()
    store = FinalStore(settings.state_path, guard=reserve.retrying)
    earlier = store.pending()
    recovered = recover(store, parts.reporter, FinalRetry(deadline=min(60.0, settings.final_retry)), stopping=stop)
    if recovered:
        log.info("recovered final updates panda_ids=%s", ",".join(map(str, recovered)))
    unrecovered = tuple(p for p in earlier if p not in recovered)
    if unrecovered:
        log.error("final updates of earlier jobs still not delivered panda_ids=%s", ",".join(map(str, unrecovered)))
    info = build_info_service(settings, stop=stop)
    try:
        queue = check_queue(info)
    except PilotError as exc:
        parts.at_end()
        return Outcome((), exc, tuple(recovered), unrecovered)
    limits = pilot_limits(settings, queue, started_epoch)
    request = JobRequest(site_name=settings.site_name, queue=settings.queue, prod_source_label=settings.job_label,
                         node=socket.gethostname())
    input_url, output_url, tools_out = _data_places(settings)
    setups = JobSetups(attrs.evolve(settings, copytool_out=tools_out), info)
    stages = _stages(settings, parts.reporter, store, setups, limits, places=(input_url, output_url),
                     lifeline=lifeline, reserve=reserve)
    journal = _open_journal(settings, reserve)
    sent, unsent = _recover_abandoned(settings, parts, stages, journal, stop, reserve=reserve)
    recovered, unrecovered = [*recovered, *sent], (*unrecovered, *unsent)
    retriever = Retriever(parts.source, request, settings, started, limits=limits, journal=journal,
                          space=WorkAreaSpace(settings, queue, reserve))

    def finished(run: JobRun) -> None:
        _end_journal(journal, run, store)
        setups.forget(run.job)  # a multi-job pilot keeps nothing of a finished job
        if on_done is not None:
            on_done(run)

    pipeline = Pipeline(retriever, standard_stages(stages), stop, in_flight=settings.in_flight, on_done=finished)
    stopping_logged = _log_when_stopping(stop)
    runs = pipeline.run()
    stopping_logged.set()
    if journal is not None:
        journal.close()
    parts.at_end()
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


def job_dirs(outcome: Outcome) -> Sequence[Path]:
    """The work directories of the jobs run."""
    return [r.workdir for r in outcome.runs]
