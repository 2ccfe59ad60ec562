"""Turning a job's progress and outcome into :class:`~pilotlib.panda.base.JobUpdate` values.

The field names are the legacy ``updateJob`` ones (each reporter translates them to its own wire form). Facts relied
on, from PanDAWMS/pilot3 ``pilot/control/job.py`` (``get_data_structure``, ``add_data_structure_ids``,
``add_timing_and_extracts``): every update carries ``jobId``, ``state``, ``timestamp``, ``siteName``, ``node``,
``attemptNr``, the scheduler/pilot/batch ids, ``startTime``, ``coreCount`` and the CPU figures; the final one adds
``xml`` (by :func:`pilotlib.transfer.report.output_file_info_json`), ``metaData``, ``pilotTiming``
(``getjob|stagein|payload|stageout|initial_setup|setup``, whole seconds), ``pilotLog`` (a short extract, at most 1024
characters, for failed jobs) and ``endTime``. ``startTime`` and ``endTime`` are epoch seconds; ``timestamp`` is
ISO 8601 with the zone offset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import attrs

from pilotlib.errors import PilotError, truncate_diag
from pilotlib.panda.base import JobUpdate
from pilotlib.pipeline import TIMING_KEYS, JobRun
from pilotlib.transfer.report import output_file_info_json

__all__ = [
    "PilotIdentity",
    "final_state",
    "final_update",
    "heartbeat_update",
    "pilot_timing",
    "starting_update",
]

PILOT_LOG_LIMIT = 1024


@attrs.frozen
class PilotIdentity:
    """Who reports: the site, the node and the ids a wrapper or batch system gave this pilot."""

    site_name: str
    node: str
    pilot_id: str = ""
    scheduler_id: str = ""
    batch_id: str = ""
    cpu_consumption_unit: str = "s"
    cpu_conversion_factor: float = 1.0


def _stamp(epoch: float) -> str:
    """The ``timestamp`` form: ISO 8601 with the zone offset (pilot3 ``pilot/util/timing.py`` ``time_stamp``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _common(run: JobRun, identity: PilotIdentity, state: str) -> dict[str, object]:
    fields: dict[str, object] = {
        "jobId": run.job.panda_id,
        "state": state,
        "timestamp": _stamp(time.time()),
        "siteName": identity.site_name,
        "node": identity.node,
        "attemptNr": run.job.attempt_nr,
        "startTime": round(run.started, 3),
        "coreCount": run.job.core_count,
        "cpuConsumptionUnit": identity.cpu_consumption_unit,
        "cpuConversionFactor": identity.cpu_conversion_factor,
    }
    ids = {"pilotID": identity.pilot_id, "schedulerID": identity.scheduler_id, "batchID": identity.batch_id}
    fields.update({key: value for key, value in ids.items() if value})
    return fields


def starting_update(run: JobRun, identity: PilotIdentity) -> JobUpdate:
    """The first update of a job (``starting``), sent when the pilot has taken it on."""
    return JobUpdate(run.job.panda_id, "starting", _common(run, identity, "starting"))


def heartbeat_update(run: JobRun, identity: PilotIdentity, usage: Mapping[str, object]) -> JobUpdate:
    """A ``running`` heartbeat with the payload's resource figures so far (CPU time, memory, ``jobMetrics``)."""
    fields = _common(run, identity, "running")
    fields.update(usage)
    return JobUpdate(run.job.panda_id, "running", fields)


def final_state(run: JobRun) -> str:
    """``finished`` when nothing failed, else ``failed``."""
    return "failed" if run.failure is not None else "finished"


def pilot_timing(timings: Mapping[str, float]) -> str:
    """``pilotTiming``: whole seconds for ``getjob|stagein|payload|stageout|initial_setup|setup``."""
    return "|".join(str(round(timings.get(key, 0.0))) for key in TIMING_KEYS)


def _error_diag(run: JobRun, failure: PilotError) -> str:
    """``pilotErrorDiag``: the failure's, and why the log was not staged out when that is another error."""
    log_error = run.log_result.error if run.log_result is not None else None
    if log_error is None or log_error is failure:
        return failure.diagnostics
    return truncate_diag(f"{failure.message}; log not staged out: {log_error.message}")


def final_update(run: JobRun, identity: PilotIdentity, pilot_log: str = "") -> JobUpdate:
    """The final update of a job: its final state, the outcome's codes and diagnostics, outputs, timing, metadata."""
    state = final_state(run)
    fields = _common(run, identity, state)
    payload = run.payload
    if payload is not None:
        fields.update(payload.usage)
        fields["transExitCode"] = payload.exit_code
        fields["exeErrorCode"] = payload.exe_error_code
        fields["exeErrorDiag"] = truncate_diag(payload.exe_error_diag)
        if payload.job_report is not None:
            fields["metaData"] = json.dumps(payload.job_report, separators=(",", ":"))
    outputs = run.stage_out + ((run.log_result,) if run.log_result is not None else ())
    fields["xml"] = output_file_info_json(outputs)
    fields["pilotTiming"] = pilot_timing(run.timings)
    fields["endTime"] = round(time.time(), 3)
    if run.failure is not None:
        fields["pilotErrorCode"] = int(run.failure.code)
        fields["pilotErrorDiag"] = _error_diag(run, run.failure)
        fields["pilotLog"] = pilot_log[-PILOT_LOG_LIMIT:]
    else:
        fields["pilotErrorCode"] = 0
    return JobUpdate(run.job.panda_id, state, fields, final=True)
