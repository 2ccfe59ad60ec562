"""The argument checks panda-server's v1 API makes before a call runs (the development server refuses the same).

Facts (panda-server ``pandaserver/api/v1/common.py`` ``request_validation``): the arguments are bound to the
function's signature (an unknown or a missing argument is ``success: false`` with ``Argument error: ...``); then each
annotated argument whose value is not its default must be an instance of its annotation (``Type error: '<name>' must be
of type <type>, got <type>.``); GET arguments arrive as strings and are cast first (``int(float(value))`` for ints).
The signatures are those of ``pilot_api.py``, ``event_api.py`` and ``credential_management_api.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Marks an argument without a default (required).
REQUIRED = object()

_S, _I, _N, _B, _L = (str,), (int,), (int, float), (bool,), (list,)
_ANY: tuple[type, ...] = ()

_UPDATE_JOB: dict[str, tuple[tuple[type, ...], Any]] = {
    "job_id": (_I, REQUIRED), "job_status": (_S, REQUIRED), "job_output_report": (_S, ""), "node": (_S, None),
    "cpu_consumption_time": (_I, None), "cpu_consumption_unit": (_S, None), "scheduler_id": (_S, None),
    "pilot_id": (_S, None), "site_name": (_S, None), "pilot_log": (_S, ""), "meta_data": (_S, ""),
    "cpu_conversion_factor": (_N, None), "trans_exit_code": (_I, None), "pilot_error_code": (_I, None),
    "pilot_error_diag": (_S, None), "exe_error_code": (_I, None), "exe_error_diag": (_S, None),
    "pilot_timing": (_S, None), "start_time": (_S, None), "end_time": (_S, None), "n_events": (_I, None),
    "n_input_files": (_I, None), "batch_id": (_S, None), "attempt_nr": (_I, None), "job_metrics": (_S, None),
    "stdout": (_S, ""), "job_sub_status": (_S, None), "core_count": (_I, None),
    **{f"{kind}_{what}": (_N, None) for kind in ("max", "avg") for what in ("rss", "vmem", "swap", "pss")},
    **{f"{kind}_{what}": (_N, None) for kind in ("tot", "rate") for what in ("rchar", "wchar", "rbytes", "wbytes")},
    "corrupted_files": (_S, None), "mean_core_count": (_I, None), "cpu_architecture_level": (_S, None),
    "grid": (_S, None), "source_site": (_S, None), "destination_site": (_S, None), "timeout": (_I, 60),
}

#: v1 path -> {argument: (accepted types (empty: any), default or REQUIRED)}.
SIGNATURES: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "pilot/acquire_jobs": {
        "site_name": (_S, REQUIRED), "timeout": (_I, 60), "memory": (_I, None), "disk_space": (_I, None),
        "prod_source_label": (_S, None), "node": (_S, None), "computing_element": (_S, None),
        "prod_user_id": (_S, None), "get_proxy_key": (_S, None), "task_id": (_I, None), "n_jobs": (_I, 1),
        "background": (_B, None), "resource_type": (_S, None), "harvester_id": (_S, None), "worker_id": (_I, None),
        "scheduler_id": (_S, None), "job_type": (_S, None), "via_topic": (_B, None), "remaining_time": (_ANY, None),
        "target_architecture": ((dict, str), None),
    },
    "pilot/update_job": _UPDATE_JOB,
    "pilot/update_jobs_bulk": {"job_list": (_L, REQUIRED), "harvester_id": (_S, None)},
    "pilot/update_worker_status": {
        "worker_id": (_ANY, REQUIRED), "harvester_id": (_ANY, REQUIRED), "status": (_ANY, REQUIRED),
        "timeout": (_ANY, 60), "node_id": (_ANY, None),
    },
    "event/acquire_event_ranges": {
        "job_id": (_I, REQUIRED), "jobset_id": (_I, REQUIRED), "task_id": (_I, None), "n_ranges": (_I, 10),
        "timeout": (_I, 60), "scattered": (_B, False), "segment_id": (_I, None),
    },
    "event/update_event_ranges": {"event_ranges": (_S, REQUIRED), "timeout": (_I, 120), "version": (_I, 0)},
    "event/get_available_event_range_count": {
        "job_id": (_I, REQUIRED), "jobset_id": (_I, REQUIRED), "task_id": (_I, REQUIRED), "timeout": (_ANY, 60),
    },
    "creds/get_key_pair": {"public_key_name": (_S, REQUIRED), "private_key_name": (_S, REQUIRED)},
    "creds/get_proxy": {"role": (_S, None), "dn": (_S, None)},
}


def check(key: str, params: dict[str, Any], method: str = "POST") -> str | None:
    """Validate (and, for GET, cast in place) the arguments of v1 call ``key``; the refusal message, or None."""
    signature = SIGNATURES[key]
    unknown = sorted(set(params) - set(signature))
    if unknown:
        return f"Argument error: got an unexpected keyword argument '{unknown[0]}'"
    missing = [name for name, (_, default) in signature.items() if default is REQUIRED and name not in params]
    if missing:
        return f"Argument error: missing a required argument: '{missing[0]}'"
    for name, received in list(params.items()):
        types, default = signature[name]
        if not types or received == default:
            continue
        value = received
        if method == "GET" and isinstance(received, str) and types == _I:
            try:
                params[name] = value = int(float(received))
            except ValueError:
                return f"Type error: '{name}' with value '{received}' could not be casted to type int from str."
        if not isinstance(value, types) and not (value is None and default is None):
            wanted = " | ".join(t.__name__ for t in types)
            return f"Type error: '{name}' must be of type {wanted}, got {type(value).__name__}."
    return None


def check_mapping(key: str, params: Mapping[str, Any]) -> str | None:
    """:func:`check` on a copy (for the elements of a bulk call)."""
    return check(key, dict(params))


#: The legacy dispatcher's arguments, which panda-server 1.x no longer ships: legacy method ->
#: (required, all accepted) argument names. Facts from PanDAWMS/panda-server tag 0.7.2 (the last 0.x release),
#: ``pandaserver/jobdispatcher/JobDispatcher.py`` (the functions that ``pandaserver/server/panda.py`` exposes under
#: ``/server/panda/<method>``; ``req`` is the request itself): ``getJob`` line 843, ``updateJob`` 969,
#: ``updateJobsInBulk`` 1223, ``getStatus`` 1255, ``getEventRanges`` 1266, ``updateEventRanges`` 1365,
#: ``checkEventsAvailability`` 1394, ``getKeyPair`` 1416, ``getProxy`` 1432, ``updateWorkerPilotStatus`` 1576.
LEGACY_ARGUMENTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "getJob": (frozenset({"siteName"}), frozenset({
        "siteName", "token", "timeout", "cpu", "mem", "diskSpace", "prodSourceLabel", "node", "computingElement",
        "AtlasRelease", "prodUserID", "getProxyKey", "countryGroup", "workingGroup", "allowOtherCountry", "taskID",
        "nJobs", "background", "resourceType", "harvester_id", "worker_id", "schedulerID", "jobType", "viaTopic",
        "remaining_time"})),
    "updateJob": (frozenset({"jobId", "state"}), frozenset({
        "jobId", "state", "token", "transExitCode", "pilotErrorCode", "pilotErrorDiag", "timestamp", "timeout", "xml",
        "node", "workdir", "cpuConsumptionTime", "cpuConsumptionUnit", "remainingSpace", "schedulerID", "pilotID",
        "siteName", "messageLevel", "pilotLog", "metaData", "cpuConversionFactor", "exeErrorCode", "exeErrorDiag",
        "pilotTiming", "computingElement", "startTime", "endTime", "nEvents", "nInputFiles", "batchID", "attemptNr",
        "jobMetrics", "stdout", "jobSubStatus", "coreCount", "maxRSS", "maxVMEM", "maxSWAP", "maxPSS", "avgRSS",
        "avgVMEM", "avgSWAP", "avgPSS", "totRCHAR", "totWCHAR", "totRBYTES", "totWBYTES", "rateRCHAR", "rateWCHAR",
        "rateRBYTES", "rateWBYTES", "corruptedFiles", "meanCoreCount", "cpu_architecture_level", "grid",
        "source_site", "destination_site"})),
    "updateJobsInBulk": (frozenset({"jobList"}), frozenset({"jobList", "harvester_id"})),
    "getStatus": (frozenset({"ids"}), frozenset({"ids", "timeout"})),
    "getEventRanges": (frozenset({"pandaID", "jobsetID"}), frozenset({
        "pandaID", "jobsetID", "taskID", "nRanges", "timeout", "scattered", "segment_id"})),
    "updateEventRanges": (frozenset({"eventRanges"}), frozenset({"eventRanges", "timeout", "version", "pandaID"})),
    "checkEventsAvailability": (frozenset({"pandaID", "jobsetID", "taskID"}), frozenset({
        "pandaID", "jobsetID", "taskID", "timeout"})),
    "getKeyPair": (frozenset({"publicKeyName", "privateKeyName"}), frozenset({"publicKeyName", "privateKeyName"})),
    "getProxy": (frozenset(), frozenset({"role", "dn"})),
    "updateWorkerPilotStatus": (frozenset({"site", "workerID", "harvesterID", "status"}), frozenset({
        "site", "workerID", "harvesterID", "status", "timeout", "node_id"})),
}
