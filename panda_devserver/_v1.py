"""The current dialect: ``/api/v1/<module>/<method>``, snake_case JSON in, ``{"success", "message", "data"}`` out.

Facts this module follows (panda-server ``pandaserver/api/v1/``):

- ``common.generate_response`` makes every answer ``{"success": bool, "message": str, "data": ...}``;
  ``request_validation`` refuses a wrong HTTP method with ``success: false`` and "expecting GET, received POST", and
  unknown, missing or mistyped arguments (:mod:`panda_devserver._signatures`);
- ``pilot_api.acquire_jobs(site_name, ..., n_jobs=1, ...)``: no job is ``success: false`` with "No jobs in PanDA";
  jobs are ``data = {"StatusCode": 0, "jobs": [job, ...]}``, each job with ``StatusCode`` and ``nSent``;
- ``pilot_api.update_job(job_id, job_status, job_output_report, ...)``: an invalid status is ``success: false`` with
  ``data = {"StatusCode": 50}``; a database failure ``success: true`` with ``data = {"StatusCode": 30}``; otherwise
  ``data = {"StatusCode": 0, "command": <str or None>}``. The argument names map to the legacy columns as listed in
  its ``fields`` table (``job_output_report`` is the legacy ``xml``, ``core_count`` is ``coreCount``, ...);
- ``pilot_api.update_jobs_bulk(job_list)``: ``data`` is the list of each ``update_job`` answer;
- ``pilot_api.update_worker_status(worker_id, harvester_id, status, node_id)``;
- ``event_api.acquire_event_ranges(job_id, jobset_id, task_id, n_ranges)``: ``data`` is the list of ranges;
  ``event_api.update_event_ranges(event_ranges: JSON string, version)``: its docstring promises
  ``data = {"Returns": [...], "Commands": {...}}``; the code (``event_api.py:266`` at 9cc36033) builds a Python *set*
  instead (``{"Returns", returns, "Commands", commands}``), which fails for version 1 (a set holding a list) and
  cannot be serialised for version 0 (``server/panda.py:405``): the real server applies the update and then answers
  HTTP 500. We serve the documented shape; the ``apply_http500`` fault plays the real server;
  ``event_api.get_available_event_range_count`` answers the count as ``data``;
- ``credential_management_api.get_key_pair(public_key_name, private_key_name)`` and ``get_proxy(role, dn)`` are
  GET calls answering ``{"public_key", "private_key"}`` and ``{"user_proxy"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from panda_devserver._legacy import VALID_STATES
from panda_devserver._logic import SC_SUCCESS, Context, Outcome
from panda_devserver._signatures import check_mapping

#: v1 path -> the legacy method name (used for fault injection and request counts).
PATHS = {
    "pilot/acquire_jobs": "getJob",
    "pilot/update_job": "updateJob",
    "pilot/update_jobs_bulk": "updateJobsInBulk",
    "pilot/update_worker_status": "updateWorkerPilotStatus",
    "event/acquire_event_ranges": "getEventRanges",
    "event/update_event_ranges": "updateEventRanges",
    "event/get_available_event_range_count": "checkEventsAvailability",
    "creds/get_key_pair": "getKeyPair",
    "creds/get_proxy": "getProxy",
}

#: The HTTP method each call requires (``request_validation(request_method=...)``).
METHODS = {"creds/get_key_pair": "GET", "creds/get_proxy": "GET", "event/get_available_event_range_count": "GET"}

#: update_job argument -> legacy name, where it is not the plain camelCase of the snake_case name.
_UPDATE_NAMES = {
    "job_id": "jobId",
    "job_status": "state",
    "job_output_report": "xml",
    "scheduler_id": "schedulerID",
    "pilot_id": "pilotID",
    "batch_id": "batchID",
    "cpu_architecture_level": "cpu_architecture_level",
    "source_site": "source_site",
    "destination_site": "destination_site",
}
_UPPER_SUFFIX = re.compile(r"_(rss|vmem|swap|pss|rchar|wchar|rbytes|wbytes)$")


def legacy_name(name: str) -> str:
    """The legacy ``updateJob`` field name of a v1 ``update_job`` argument."""
    if name in _UPDATE_NAMES:
        return _UPDATE_NAMES[name]
    name = _UPPER_SUFFIX.sub(lambda match: "_" + match.group(1).upper(), name)
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def envelope(success: bool, message: str = "", data: Any = None) -> Outcome:
    """``generate_response``."""
    body = {"success": success, "message": message, "data": data}
    return Outcome(200, "application/json", json.dumps(body).encode())


def _int(params: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except (TypeError, ValueError):
        return default


def acquire_jobs(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``pilot/acquire_jobs``."""
    if not params.get("site_name"):
        return envelope(False, "missing argument: site_name")
    jobs = ctx.store.take_jobs(max(1, _int(params, "n_jobs", 1)), pilot=str(params.get("node", "")))
    if not jobs:
        return envelope(False, "No jobs in PanDA")
    answers = [{"StatusCode": SC_SUCCESS, **job, "nSent": 0} for job in jobs]
    return envelope(True, data={"StatusCode": SC_SUCCESS, "jobs": answers})


def _update_job_data(ctx: Context, params: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    status = str(params.get("job_status", ""))
    if status not in VALID_STATES:
        return False, f"Invalid job status: {status}", {"StatusCode": 50}
    fields = {legacy_name(key): value for key, value in params.items()}
    code, command = ctx.update_job(str(params.get("job_id", "")), fields)
    if code != SC_SUCCESS:
        return True, "Database error", {"StatusCode": code}
    return True, "", {"StatusCode": SC_SUCCESS, "command": command}


def update_job(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``pilot/update_job``."""
    return envelope(*_update_job_data(ctx, params))


def update_jobs_bulk(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``pilot/update_jobs_bulk``."""
    job_list = params.get("job_list")
    if not isinstance(job_list, list) or not all(isinstance(item, Mapping) for item in job_list):
        return envelope(False, "failed with TypeError job_list is not a list of objects", [])
    answers = []
    for item in job_list:
        refusal = check_mapping("pilot/update_job", item)  # update_job validates each element's arguments
        success, message, data = (False, refusal, None) if refusal else _update_job_data(ctx, item)
        answers.append({"success": success, "message": message, "data": data})
    return envelope(True, "", answers)


def update_worker_status(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``pilot/update_worker_status``."""
    valid = ("started", "finished")
    if params.get("status") not in valid:
        return envelope(False, f"Invalid worker state. The worker state has to be in {valid}")
    ctx.store.record_worker_status(dict(params))
    return envelope(True)


def acquire_event_ranges(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``event/acquire_event_ranges``."""
    ranges = ctx.store.take_event_ranges(_int(params, "job_id", 0), max(0, _int(params, "n_ranges", 10)))
    return envelope(True, data=ranges)


def update_event_ranges(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``event/update_event_ranges``."""
    try:
        ranges = json.loads(str(params.get("event_ranges", "")))
        if not isinstance(ranges, list):
            raise TypeError("not a list")
    except (ValueError, TypeError):
        return envelope(False, "failed to convert event_ranges with json")
    returns, commands = ctx.update_event_ranges(ranges, _int(params, "version", 0))
    return envelope(True, data={"Returns": returns, "Commands": commands})


def get_available_event_range_count(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``event/get_available_event_range_count``."""
    return envelope(True, data=ctx.store.count_event_ranges(_int(params, "job_id", 0)))


def get_key_pair(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``creds/get_key_pair``."""
    if ctx.client_dn is None:
        return envelope(False, "Failed since DN cannot be extracted")
    public, private = str(params.get("public_key_name", "")), str(params.get("private_key_name", ""))
    for name in (public, private):
        if name not in ctx.key_pairs:
            return envelope(False, f"Failed since {name} is missing")
    return envelope(True, data={"public_key": ctx.key_pairs[public], "private_key": ctx.key_pairs[private]})


def get_proxy(ctx: Context, params: Mapping[str, Any]) -> Outcome:
    """``creds/get_proxy``."""
    if ctx.client_dn is None:
        return envelope(False, "Failed since DN cannot be extracted")
    if ctx.user_proxy is None:
        return envelope(False, f"'proxy' not found for {params.get('dn') or ctx.client_dn}")
    return envelope(True, data={"user_proxy": ctx.user_proxy})


HANDLERS: dict[str, Callable[[Context, Mapping[str, Any]], Outcome]] = {
    "pilot/acquire_jobs": acquire_jobs,
    "pilot/update_job": update_job,
    "pilot/update_jobs_bulk": update_jobs_bulk,
    "pilot/update_worker_status": update_worker_status,
    "event/acquire_event_ranges": acquire_event_ranges,
    "event/update_event_ranges": update_event_ranges,
    "event/get_available_event_range_count": get_available_event_range_count,
    "creds/get_key_pair": get_key_pair,
    "creds/get_proxy": get_proxy,
}
