"""The HPC pilot's composition: settings + rank -> a rank's pilot kit (Harvester's mode) -> run; then, on rank 0,
the other ranks' outcomes and the worker-level files.

Nothing here decides how a pilot works: the kit's parts are the library's (:mod:`pilotlib.workflow`,
:mod:`pilotlib.hpc`); this module only says which part each setting chooses.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Sequence

import attrs

from apps.hpc_pilot.settings import Settings
from pilotlib._atomic import write_atomic
from pilotlib.containers import ContainerDefaults
from pilotlib.hpc import (
    RankBoard,
    RankJobSource,
    RankOutcome,
    RankPlace,
    RankStatus,
    SharedJobReporter,
    SiteInputStager,
    SiteProfile,
    allocation_end,
    outside_mpi,
)
from pilotlib.jobsetup import CopytoolChoice
from pilotlib.panda.base import JobRequest
from pilotlib.panda.harvester import HarvesterFiles, HarvesterReporter
from pilotlib.payload import Lifeline, PayloadSettings
from pilotlib.pipeline import JobRun
from pilotlib.space import MB
from pilotlib.stop import Stop
from pilotlib.transfer.registry import default_registry
from pilotlib.workflow import (
    DataPlaces,
    DescriptionPlaces,
    Outcome,
    PilotConfig,
    PilotKit,
    PilotState,
    RunnerExecutor,
    TransferStages,
    build_info_service,
    exit_code,
    harvester_parts,
    harvester_places,
    recover_state,
    run_pilot,
    this_pilot,
)
from pilotlib.workflow.queue import DEFAULT_LIFETIME

__all__ = ["RankRun", "build_rank_kit", "end_of_allocation", "harvester_files", "rank_state", "run_rank"]

log = logging.getLogger(__name__)


def rank_state(settings: Settings, rank: int) -> PilotState:
    """Rank ``rank``'s state directory, ``<state root>/rank-<N>`` (final reports, journal, logs)."""
    return PilotState.at(settings.state_root / f"rank-{rank}", settings.state_reserve_mb * MB)


def harvester_files(settings: Settings) -> HarvesterFiles:
    """The worker's access point and Harvester's file names (per-job directories unless ``--single-job-dir``)."""
    return HarvesterFiles(settings.harvester_workdir, per_job_dirs=settings.per_job_dirs)


def end_of_allocation(settings: Settings, started_epoch: float) -> float | None:
    """The allocation's end: ``--end-time``, else the batch system's, else ``--walltime`` from the start."""
    if settings.end_time is not None:
        return settings.end_time
    end = allocation_end(settings.environ)
    if end is None and settings.walltime is not None:
        end = started_epoch + settings.walltime
    return end


def build_rank_kit(settings: Settings, place: RankPlace, profile: SiteProfile, state: PilotState, stop: Stop, *,
                   lifetime: float, lifeline: Lifeline | None = None,
                   wait_for_others: Callable[[], Sequence[RankStatus]] = tuple) -> PilotKit:
    """The kit of one rank: Harvester's mode with the rank's jobs, the site's work area and preparation, outputs
    copied into the access point and declared there for Harvester to stage out. A job all ranks share (one
    event-service job) is reported by rank 0 alone, after ``wait_for_others``."""
    files = harvester_files(settings)
    area = profile.work_area(settings.harvester_workdir, place)
    source = RankJobSource(files, place, wait_timeout=settings.wait_timeout, stop=stop)
    mode = harvester_parts(files, lambda panda_id: area / str(panda_id), stop=stop, source=source, ends_worker=False,
                           heartbeats=place.rank == 0)  # one writer of the worker's one heartbeat file
    mode = attrs.evolve(mode, reporter=SharedJobReporter(mode.reporter, source.shared, place.rank, wait_for_others))
    places = harvester_places(files, DataPlaces(copytools=CopytoolChoice(profile.copytools_in)),
                              harvester_stages_out=True)
    transfers = TransferStages(default_registry(settings.environ), places.inputs, places.outputs, state=state)
    payload = PayloadSettings(base_env=outside_mpi(settings.environ), panda_resource=settings.site_name,
                              setup=profile.payload_setup)
    executor = RunnerExecutor(payload, grace=settings.grace, sample_interval=min(60.0, settings.heartbeat),
                              lifeline=lifeline, free_space_limit=profile.free_space_limit)
    # the timefloor is the whole lifetime: the rank takes its jobs until its source has none left (no server asked)
    config = PilotConfig(area, lifetime=lifetime, timefloor=lifetime, heartbeat=settings.heartbeat,
                         free_space_limit=0)
    info = build_info_service(DescriptionPlaces(cache_dir=state.path, queue_file=settings.queuedata_file),
                              settings.site_name, stop=stop)
    identity = this_pilot(settings.site_name, f"hpc-pilot-rank{place.rank}", settings.environ.get("SLURM_JOB_ID", ""))
    request = JobRequest(settings.site_name, settings.site_name, node=socket.gethostname())
    return PilotKit(mode, config, state, identity, request,
                    stage_in=SiteInputStager(profile, transfers), stage_out=transfers, log_out=transfers,
                    payload=executor, info=info, copytools=places.copytools,
                    containers=ContainerDefaults(settings.container_runtime, settings.container_image))


@attrs.frozen
class RankRun:
    """What one rank did: its outcome, its exit status and, on rank 0, the other ranks' statuses."""

    outcome: Outcome
    status: int
    others: tuple[RankStatus, ...] = ()


def _job_lines(outcome: Outcome) -> tuple[dict[str, object], ...]:
    return tuple({"pandaID": run.job.panda_id, "state": "failed" if run.failure is not None else "finished",
                  "pilotErrorCode": int(run.failure.code) if run.failure is not None else 0,
                  "finalSent": run.final_sent} for run in outcome.runs)


def _write_worker_files(settings: Settings, reporter: HarvesterReporter, own: RankOutcome,
                        others: tuple[RankStatus, ...]) -> None:
    """Rank 0's worker-level files: the summary of every rank (``<state root>/worker.json``), the heartbeat, and
    Harvester's "the worker is done" marker (``kill_worker.json``)."""
    ranks = [{"rank": own.rank, "status": "done", **own.to_json()}]
    ranks += [{"rank": s.rank, "status": s.status, "recovered": list(s.recovered),
               **(s.outcome.to_json() if s.outcome is not None else {})} for s in others]
    write_atomic(settings.state_root / "worker.json", json.dumps({"ranks": ranks}, sort_keys=True), mode=0o644)
    reporter.heartbeat()
    reporter.kill_worker()
    log.info("worker files written ranks=%d lost=%s", len(ranks),
             ",".join(str(s.rank) for s in others if s.status != "done"))


def run_rank(settings: Settings, place: RankPlace, profile: SiteProfile, stop: Stop, started: float, *,
             lifeline: Lifeline | None = None, on_done: Callable[[JobRun], None] | None = None) -> RankRun:
    """Run one rank: check in, run its jobs with the kit, clean the site's area, check out; rank 0 then gathers the
    others (reporting a lost rank's unfinished jobs) and writes the worker-level files."""
    started_epoch = time.time() - (time.monotonic() - started)
    end = end_of_allocation(settings, started_epoch)
    lifetime = DEFAULT_LIFETIME if end is None else max(1.0, end - settings.end_margin - started_epoch)
    state = rank_state(settings, place.rank)
    board = RankBoard(settings.state_root / "ranks", place)
    files = harvester_files(settings)
    reporter = HarvesterReporter(files)
    deadline = (end - 30.0) if end is not None else time.time() + DEFAULT_LIFETIME
    kits: list[PilotKit] = []
    gathered: list[tuple[RankStatus, ...]] = []

    def lost(rank: int) -> tuple[int, ...]:  # its unfinished jobs reported, then its work area cleaned
        recovered = recover_state(kits[0], rank_state(settings, rank), stop)[0]
        profile.finish(profile.work_area(settings.harvester_workdir, RankPlace(rank, place.size)))
        return recovered

    def others() -> tuple[RankStatus, ...]:  # once: before a shared job's final state, else at the end
        if not gathered:
            gathered.append(tuple(board.gather(deadline, lost, start_timeout=settings.start_timeout, stop=stop,
                                               tick=reporter.heartbeat)))
        return gathered[0]

    kits.append(build_rank_kit(settings, place, profile, state, stop, lifetime=lifetime, lifeline=lifeline,
                               wait_for_others=others))
    kit = kits[0]
    board.check_in()
    log.info("rank started rank=%d size=%d launcher=%s site=%s lifetime=%.0f", place.rank, place.size,
             place.launcher, settings.site, lifetime)
    outcome = run_pilot(kit, stop, started, on_done=on_done)
    profile.finish(kit.config.workdir)
    status = exit_code(outcome, stop)
    own = RankOutcome(place.rank, _job_lines(outcome), status, socket.gethostname())
    board.check_out(own)
    if place.rank != 0:
        return RankRun(outcome, status)
    others()
    _write_worker_files(settings, reporter, own, gathered[0])
    return RankRun(outcome, status, gathered[0])

