"""The pilot kit: the parts a pilot is composed of, and the run that joins them.

A pilot is a :class:`PilotKit` handed to :func:`run_pilot`::

    mode = server_parts(url, stop=stop)                        # or harvester_parts(...), arc_parts(...), your own
    state = PilotState.at(state_dir, 4 * MB)
    transfers = TransferStages(default_registry(environ), input_url, output_url, state=state)
    kit = PilotKit(mode, PilotConfig(workdir), state, this_pilot(site, "my-pilot"), JobRequest(site, queue),
                   stage_in=transfers, stage_out=transfers, log_out=transfers, payload=RunnerExecutor())
    outcome = run_pilot(kit, stop)
    status = exit_code(outcome, stop)

Where a new pilot plugs in: its own :class:`~pilotlib.panda.base.JobSource` and
:class:`~pilotlib.panda.base.JobReporter` (a :class:`ModeParts`), its own copytools (a registry, a
:class:`~pilotlib.jobsetup.CopytoolChoice`), its own payload set-up (a :class:`~pilotlib.payload.PayloadSettings`
for :class:`RunnerExecutor`, or another :class:`~pilotlib.stages.PayloadExecutor`). ``docs/architecture.rst`` draws
the parts and the data between them.
"""

from pilotlib.jobsetup import CopytoolChoice, JobSetup, SetupResolver
from pilotlib.workflow.executor import RunnerExecutor
from pilotlib.workflow.modes import (
    DISPATCHER_RETRY,
    HARVESTER_COPYTOOLS_IN,
    HARVESTER_COPYTOOLS_OUT,
    DataPlaces,
    ModeParts,
    arc_parts,
    find_proxy,
    harvester_parts,
    harvester_places,
    server_parts,
)
from pilotlib.workflow.pilot import (
    RECOVERY_FAILED,
    Outcome,
    PilotConfig,
    PilotKit,
    exit_code,
    recover_state,
    run_pilot,
    summary,
    this_pilot,
)
from pilotlib.workflow.pilotlog import configure_logging
from pilotlib.workflow.process import handle_signals, tie_payloads
from pilotlib.workflow.queue import DescriptionPlaces, PilotLimits, build_info_service, check_queue, pilot_limits
from pilotlib.workflow.retrieval import Retriever
from pilotlib.workflow.state import PilotState, WorkAreaSpace
from pilotlib.workflow.transfers import TransferStages

__all__ = [
    "DISPATCHER_RETRY",
    "HARVESTER_COPYTOOLS_IN",
    "HARVESTER_COPYTOOLS_OUT",
    "RECOVERY_FAILED",
    "CopytoolChoice",
    "DataPlaces",
    "DescriptionPlaces",
    "JobSetup",
    "ModeParts",
    "Outcome",
    "PilotConfig",
    "PilotKit",
    "PilotLimits",
    "PilotState",
    "Retriever",
    "RunnerExecutor",
    "SetupResolver",
    "TransferStages",
    "WorkAreaSpace",
    "arc_parts",
    "build_info_service",
    "check_queue",
    "configure_logging",
    "exit_code",
    "find_proxy",
    "handle_signals",
    "harvester_parts",
    "harvester_places",
    "pilot_limits",
    "recover_state",
    "run_pilot",
    "server_parts",
    "summary",
    "this_pilot",
    "tie_payloads",
]
