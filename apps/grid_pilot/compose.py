"""The grid pilot's composition: settings -> the parts of :mod:`pilotlib.workflow` -> run.

Nothing here decides how a pilot works; it only says which library part each setting chooses. The mode is chosen
here once (STYLE R2): each mode is a job source and a reporter (:mod:`pilotlib.workflow.modes`); the rest is the
same for all.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import attrs

from apps.grid_pilot.settings import HARVESTER_FILES, Mode, Settings
from pilotlib._tls import tls_verify
from pilotlib.containers import ContainerDefaults
from pilotlib.errors import PilotError
from pilotlib.jobsetup import CopytoolChoice
from pilotlib.panda.base import JobRequest
from pilotlib.panda.harvester import HarvesterFiles
from pilotlib.payload import Lifeline, PayloadSettings
from pilotlib.pipeline import JobRun
from pilotlib.space import MB
from pilotlib.stop import Stop
from pilotlib.transfer.registry import default_registry
from pilotlib.workflow import (
    DataPlaces,
    DescriptionPlaces,
    ModeParts,
    Outcome,
    PilotConfig,
    PilotKit,
    PilotState,
    RunnerExecutor,
    TransferStages,
    arc_parts,
    build_info_service,
    harvester_parts,
    harvester_places,
    run_pilot,
    server_parts,
    this_pilot,
)

__all__ = ["build_kit", "harvester_files", "payload_settings", "pilot_state", "run_grid_pilot"]

log = logging.getLogger(__name__)

def pilot_state(settings: Settings) -> PilotState:
    """The state directory of the settings (``--state-dir``) with its reserve (``--state-reserve`` MB)."""
    return PilotState.at(settings.state_path, settings.state_reserve_mb * MB)


def harvester_files(settings: Settings) -> HarvesterFiles:
    """The access point and Harvester's file names of the settings (unset names keep Harvester's defaults)."""
    assert settings.harvester_workdir is not None
    attribute = {option: attr for option, _key, attr in HARVESTER_FILES}
    names = {attribute[option]: name for option, name in settings.harvester_names.items()}
    return HarvesterFiles(settings.harvester_workdir, per_job_dirs=settings.harvester_per_job_dirs, **names)


def _mode(settings: Settings, stop: Stop) -> ModeParts:
    if settings.mode is Mode.HARVESTER:
        return harvester_parts(harvester_files(settings), lambda panda_id: settings.workdir / str(panda_id),
                               wait_timeout=max(1.0, settings.timefloor or 60.0), stop=stop)
    if settings.mode is Mode.ARC:
        assert settings.launch_dir is not None
        return arc_parts(settings.launch_dir)
    return server_parts(settings.url, settings.api, environ=settings.environ, proxy=settings.proxy,
                        ca_dir=settings.ca_path, stop=stop)


def _places(settings: Settings) -> DataPlaces:
    """Where files are when their storage is not described, and the copytools: the command line's, with the
    mode's where it leaves them open; outputs default to ``<workdir>/storage``."""
    places = DataPlaces(settings.input_url, settings.output_url,
                        CopytoolChoice(settings.copytool_in, settings.copytool_out))
    if settings.mode is Mode.HARVESTER:
        places = harvester_places(harvester_files(settings), places,
                                  harvester_stages_out=settings.harvester_stageout == "harvester")
    return attrs.evolve(places, outputs=places.outputs or str(settings.workdir / "storage"))


def payload_settings(settings: Settings) -> PayloadSettings:
    """How payload commands are built: the pilot's environment (the site's) as the payload's base, less the pilot's
    private variables (:func:`pilotlib.payload.payload_environment` removes them); the PanDA resource, ``--proxy``,
    ``--token-file`` and ``--capath`` as paths; ``--capath`` also verifies transformation downloads."""
    return PayloadSettings(base_env=settings.environ, proxy_path=settings.proxy, token_path=settings.token_file,
                           ca_path=settings.ca_path, panda_resource=settings.site_name,
                           verify_tls=str(settings.ca_path) if settings.ca_path else True)


def build_kit(settings: Settings, stop: Stop, *, lifeline: Lifeline | None = None,
              state: PilotState | None = None) -> PilotKit:
    """The grid pilot of the settings as a :class:`~pilotlib.workflow.PilotKit`.

    Raises:
        PilotError: a part cannot be made (e.g. a ``--proxy`` or ``--capath`` that is not there).
    """
    if settings.ca_path is not None:  # checked at the start in every mode, not at the first download
        tls_verify(str(settings.ca_path), what="--capath")
    state = state or pilot_state(settings)
    places = _places(settings)
    transfers = TransferStages(default_registry(settings.environ), places.inputs, places.outputs, state=state)
    executor = RunnerExecutor(payload_settings(settings), grace=settings.payload_grace,
                              looping_limit=settings.looping_limit, memory_limit_kb=settings.memory_limit_kb,
                              sample_interval=min(60.0, settings.heartbeat), lifeline=lifeline,
                              free_space_limit=settings.free_space_limit_running_mb * MB)
    descriptions = DescriptionPlaces(cache_dir=settings.cache_dir or settings.workdir,
                                     queue_file=settings.queuedata_file, queue_url=settings.queuedata_source,
                                     storage_file=settings.storagedata_file, storage_url=settings.storagedata_source,
                                     ca_path=settings.ca_path)
    config = PilotConfig(settings.workdir, lifetime=settings.lifetime, timefloor=settings.timefloor,
                         max_jobs=settings.max_jobs, in_flight=settings.in_flight, heartbeat=settings.heartbeat,
                         final_retry=settings.final_retry, cleanup=settings.cleanup,
                         free_space_limit=settings.free_space_limit_mb * MB)
    request = JobRequest(site_name=settings.site_name, queue=settings.queue, prod_source_label=settings.job_label,
                         node=socket.gethostname())
    return PilotKit(_mode(settings, stop), config, state,
                    this_pilot(settings.site_name, "grid-pilot", settings.batch_id), request,
                    stage_in=transfers, stage_out=transfers, log_out=transfers, payload=executor,
                    info=build_info_service(descriptions, settings.queue, stop=stop), copytools=places.copytools,
                    containers=ContainerDefaults(settings.container_runtime, settings.container_image,
                                                 images=settings.platform_images,
                                                 middleware_image=settings.middleware_image))


def run_grid_pilot(settings: Settings, stop: Stop, started: float | None = None, *,
              on_done: Callable[[JobRun], None] | None = None, lifeline: Lifeline | None = None,
              state: PilotState | None = None) -> Outcome:
    """Run the grid pilot of the settings (:func:`pilotlib.workflow.run_pilot`); a part that cannot be made ends
    it with its code, no job fetched."""
    started = time.monotonic() if started is None else started
    try:
        kit = build_kit(settings, stop, lifeline=lifeline, state=state)
    except PilotError as exc:  # e.g. a --proxy that is not there: the pilot's code, no job fetched
        log.error("pilot cannot start code=%d error=%s", int(exc.code), exc)
        return Outcome((), exc, ())
    return run_pilot(kit, stop, started, on_done=on_done)
