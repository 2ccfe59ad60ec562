"""The v1 dialect of the dispatcher client: ``{server}/api/v1/<module>/<method>``, snake_case JSON.

Names and answers follow panda-server's ``pandaserver/api/v1/``: ``pilot_api.acquire_jobs`` (``site_name``,
``memory``, ``disk_space``, ``prod_source_label``, ``node``, ``computing_element``, ``task_id``, ``n_jobs``,
``resource_type``, ``harvester_id``, ``worker_id``, ``job_type``; "no jobs" is ``success: false``),
``pilot_api.update_job`` (``job_id``, ``job_status``, ``job_output_report`` for the legacy ``xml``, the other
arguments being the snake_case of the legacy names; arguments it does not declare are not sent),
``pilot_api.update_jobs_bulk`` (``job_list``), ``pilot_api.update_worker_status``,
``event_api.acquire_event_ranges`` (``job_id``, ``jobset_id``, ``task_id``, ``n_ranges``),
``event_api.update_event_ranges`` (``event_ranges`` as a JSON string, ``version``), and the GET calls
``credential_management_api.get_key_pair``/``get_proxy``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pilotlib.errors import MissingFieldError
from pilotlib.job import Job
from pilotlib.panda import _answers as ans
from pilotlib.panda import _event_updates as ev
from pilotlib.panda._times import server_time
from pilotlib.panda._transport import Transport
from pilotlib.panda.base import EventRange, EventRangeUpdate, JobRequest, JobUpdate, UpdateAnswer, ZipRecord
from pilotlib.panda.errors import ServerAnswerError, ServerHTTPError, ServerRefusedError

log = logging.getLogger(__name__)

#: The arguments ``pilot_api.update_job`` declares.
UPDATE_ARGUMENTS = frozenset([
    "job_id", "job_status", "job_output_report", "node", "cpu_consumption_time", "cpu_consumption_unit",
    "scheduler_id", "pilot_id", "site_name", "pilot_log", "meta_data", "cpu_conversion_factor",
    "trans_exit_code", "pilot_error_code", "pilot_error_diag", "exe_error_code", "exe_error_diag",
    "pilot_timing", "start_time", "end_time", "n_events", "n_input_files", "batch_id", "attempt_nr",
    "job_metrics", "stdout", "job_sub_status", "core_count", "max_rss", "max_vmem", "max_swap", "max_pss",
    "avg_rss", "avg_vmem", "avg_swap", "avg_pss", "tot_rchar", "tot_wchar", "tot_rbytes", "tot_wbytes",
    "rate_rchar", "rate_wchar", "rate_rbytes", "rate_wbytes", "corrupted_files", "mean_core_count",
    "cpu_architecture_level", "grid", "source_site", "destination_site", "timeout",
])

#: ``update_job`` arguments declared ``int``, ``int | float`` and epoch-or-text times; every other one is ``str``.
_INT_ARGUMENTS = frozenset([
    "cpu_consumption_time", "trans_exit_code", "pilot_error_code", "exe_error_code", "n_events", "n_input_files",
    "attempt_nr", "core_count", "mean_core_count", "timeout",
])
_NUMBER_ARGUMENTS = frozenset(
    ["cpu_conversion_factor"]
    + [f"{kind}_{what}" for kind in ("max", "avg") for what in ("rss", "vmem", "swap", "pss")]
    + [f"{kind}_{what}" for kind in ("tot", "rate") for what in ("rchar", "wchar", "rbytes", "wbytes")]
)
_TIME_ARGUMENTS = frozenset(["start_time", "end_time"])

#: At most this many attempts of ``event/update_event_ranges`` (panda-server 1.x answers each one with HTTP 500).
UPDATE_RANGES_ATTEMPTS = 2
#: How panda-server 1.x's 500 after applying an event range update reads: ``str(exc)`` of building its answer
#: (``event_api.py:266`` at 9cc36033: a set of the returns fails with a list, ``json.dumps`` with a set). Any other 500
#: (an HTML error page of a proxy, a server that failed before applying) is a failure, sent again later.
_APPLIED_THEN_FAILED = (b"unhashable type", b"is not JSON serializable")
_POSSIBLY_APPLIED = ("HTTP 500 after the update: panda-server 1.x applies event range updates, then fails building "
                     "its answer; possibly applied")

_SPECIAL = {"xml": "job_output_report", "jobId": "job_id", "state": "job_status"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_name(name: str) -> str:
    """The v1 argument name of a legacy ``updateJob`` field (``maxRSS`` -> ``max_rss``, ``xml`` ->
    ``job_output_report``)."""
    return _SPECIAL.get(name) or _CAMEL.sub("_", name).lower()


def _call(transport: Transport, call: str, path: str, body: Mapping[str, Any],
          max_attempts: int | None = None) -> tuple[bool, str, Any]:
    decode = functools.partial(ans.decode_v1, call)
    return decode(transport.send(call, f"api/v1/{path}", json_body=body, max_attempts=max_attempts, check=decode))


def _get(transport: Transport, call: str, path: str, query: Mapping[str, Any]) -> Any:
    decode = functools.partial(ans.decode_v1, call)
    success, message, data = decode(transport.send(call, f"api/v1/{path}", method="GET", query=query, check=decode))
    if not success:
        raise ServerRefusedError(call, message)
    return data


def typed_argument(name: str, value: Any) -> Any:
    """``value`` in the type ``pilot_api.update_job`` declares for ``name`` (its ``request_validation`` refuses the
    whole update for one mistyped argument); None when it cannot be converted (the argument is then not sent).

    Epoch times become the ``%Y-%m-%d %H:%M:%S`` UTC text the server parses (``time.strptime`` in ``update_job``);
    mappings and lists (a job report) become JSON text.
    """
    if value is None or name in _INT_ARGUMENTS | _NUMBER_ARGUMENTS:
        return _number(value, integer=name in _INT_ARGUMENTS)
    if name in _TIME_ARGUMENTS and isinstance(value, int | float):
        return server_time(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value)
    return value if isinstance(value, str) else str(value)


def _number(value: Any, integer: bool) -> int | float | None:
    """``value`` as an int (or a float when not ``integer`` and not integral); None when it is not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if integer or number.is_integer() else number


def update_arguments(update: JobUpdate) -> dict[str, Any]:
    """The ``update_job`` arguments of an update, each in its declared type."""
    body: dict[str, Any] = {}
    for key, value in update.fields.items():
        name = snake_name(key)
        typed = typed_argument(name, value) if name in UPDATE_ARGUMENTS else None
        if typed is not None:
            body[name] = typed
        else:
            log.debug("field not sent in the v1 dialect field=%s", key)
    body.update(job_id=int(update.panda_id), job_status=update.state)
    return body


def _worker_id(worker_id: str) -> int | None:
    """``acquire_jobs`` declares ``worker_id: int``: a Harvester worker id, sent only when it is a number."""
    if worker_id.strip().isdigit():
        return int(worker_id)
    if worker_id:
        log.warning("worker id not sent in the v1 dialect (not a number) worker_id=%s", worker_id[:40])
    return None


def _update_answer(call: str, success: bool, message: str, data: Any) -> UpdateAnswer:
    if not isinstance(data, dict) or "StatusCode" not in data:
        if not success:
            raise ServerRefusedError(call, message)
        raise ServerAnswerError(call, "data has no StatusCode")
    code = ans.status_code(call, data)
    if not success or code != 0:
        raise ServerRefusedError(call, message, code)
    command, text = ans.command(data.get("command"))
    return UpdateAnswer(accepted=True, command=command, command_text=text, message=message)


class V1Dialect:
    """The calls of the v1 API."""

    name = "v1"

    def get_jobs(self, transport: Transport, request: JobRequest) -> list[dict[str, Any]]:
        """``pilot/acquire_jobs``."""
        body: dict[str, Any] = {
            "site_name": request.site_name, "computing_element": request.queue,
            "prod_source_label": request.prod_source_label, "node": request.node, "memory": request.mem_mb,
            "disk_space": request.disk_mb, "n_jobs": request.n_jobs,
        }
        optional = {"resource_type": request.resource_type, "job_type": request.job_type,
                    "harvester_id": request.harvester_id, "worker_id": _worker_id(request.worker_id),
                    "task_id": request.task_id}
        body.update({key: value for key, value in optional.items() if value not in ("", None)})
        success, message, data = _call(transport, "getJob", "pilot/acquire_jobs", body)
        if not success:
            if message.lower().startswith("no jobs"):
                return []
            raise ServerRefusedError("getJob", message)
        if not isinstance(data, dict):
            raise ServerAnswerError("getJob", "data is not an object")
        ans.expect_success("getJob", {**data, "StatusCode": ans.status_code("getJob", data)})
        jobs = data.get("jobs", [])
        if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
            raise ServerAnswerError("getJob", "jobs is not a list of objects")
        return jobs

    def update_job(self, transport: Transport, update: JobUpdate) -> UpdateAnswer:
        """``pilot/update_job``."""
        return _update_answer("updateJob", *_call(transport, "updateJob", "pilot/update_job",
                                                  update_arguments(update)))

    def update_jobs(self, transport: Transport, updates: Sequence[JobUpdate]) -> list[UpdateAnswer]:
        """``pilot/update_jobs_bulk``."""
        body = {"job_list": [update_arguments(update) for update in updates]}
        success, message, data = _call(transport, "updateJobsInBulk", "pilot/update_jobs_bulk", body)
        if not success:
            raise ServerRefusedError("updateJobsInBulk", message)
        if not isinstance(data, list) or len(data) != len(updates) or not all(isinstance(x, dict) for x in data):
            raise ServerAnswerError("updateJobsInBulk", "data is not one answer per update")
        return [_update_answer("updateJob", bool(item.get("success")), str(item.get("message") or ""),
                               item.get("data")) for item in data]

    def get_event_ranges(self, transport: Transport, job: Job, n_ranges: int) -> list[EventRange]:
        """``event/acquire_event_ranges``.

        Raises:
            pilotlib.errors.MissingFieldError: the job has no ``jobsetID`` (the handler declares ``jobset_id: int``
                and its validation refuses anything else), raised before anything is sent.
        """
        if job.jobset_id is None:
            raise MissingFieldError("jobsetID", None, "event/acquire_event_ranges needs the job's jobset_id (an "
                                    f"integer); job {job.panda_id} has none")
        body = {"job_id": job.panda_id, "jobset_id": job.jobset_id, "task_id": job.task_id, "n_ranges": n_ranges}
        success, message, data = _call(transport, "getEventRanges", "event/acquire_event_ranges", body)
        if not success:
            raise ServerRefusedError("getEventRanges", message)
        ranges = ans.nested("getEventRanges", data if data is not None else [], list, "data")
        return [ans.event_range("getEventRanges", item) for item in ranges]

    def update_event_ranges(self, transport: Transport, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """``event/update_event_ranges`` (version 0); an HTTP 500 is answered as in :func:`_send_ranges`."""
        return _send_ranges(transport, ev.range_entries(updates), ev.PLAIN, len(updates))

    def update_zipped_ranges(self, transport: Transport, zip_file: ZipRecord,
                             updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """``event/update_event_ranges`` (version 1): one group, the ranges whose outputs ``zip_file`` holds; an
        HTTP 500 is answered as in :func:`_send_ranges`."""
        return _send_ranges(transport, [ev.zip_group(zip_file, updates)], ev.ZIPPED, len(updates))

    def get_key_pair(self, transport: Transport, public_name: str, private_name: str) -> tuple[str, str]:
        """``creds/get_key_pair`` (GET)."""
        data = _get(transport, "getKeyPair", "creds/get_key_pair",
                    {"public_key_name": public_name, "private_key_name": private_name})
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("public_key", "private_key")):
            raise ServerAnswerError("getKeyPair", "no public_key/private_key in data", secret=True)
        return str(data["public_key"]), str(data["private_key"])

    def get_proxy(self, transport: Transport, role: str | None) -> str:
        """``creds/get_proxy`` (GET)."""
        data = _get(transport, "getProxy", "creds/get_proxy", {"role": role} if role else {})
        if not isinstance(data, dict) or not isinstance(data.get("user_proxy"), str):
            raise ServerAnswerError("getProxy", "no user_proxy in data", secret=True)
        return str(data["user_proxy"])

    def update_worker_status(self, transport: Transport, *, site: str, worker_id: str, harvester_id: str,
                             status: str, node_id: str) -> None:
        """``pilot/update_worker_status``."""
        body = {"worker_id": worker_id, "harvester_id": harvester_id, "status": status, "node_id": node_id}
        success, message, _ = _call(transport, "updateWorkerPilotStatus", "pilot/update_worker_status", body)
        if not success:
            raise ServerRefusedError("updateWorkerPilotStatus", message)


def _send_ranges(transport: Transport, ranges: list[dict[str, Any]], version: int, sent: int) -> UpdateAnswer:
    """``event/update_event_ranges`` of one list (``sent`` range updates in all).

    An HTTP 500 on every one of at most :data:`UPDATE_RANGES_ATTEMPTS` attempts is answered as accepted and
    ``possibly_applied``: panda-server 1.x (``api/v1/event_api.py:266`` at 9cc36033) applies the update, then fails
    building its answer (it makes a set of the answer's parts, which JSON cannot encode: ``server/panda.py:405``;
    for version 1 the set cannot even hold the list of answers), so a 500 there means "applied" far more often than
    "lost", and re-sending cannot succeed either.
    """
    body = {"event_ranges": json.dumps(ranges), "version": version}
    try:
        success, message, data = _call(transport, "updateEventRanges", "event/update_event_ranges", body,
                                       max_attempts=UPDATE_RANGES_ATTEMPTS)
    except ServerHTTPError as exc:
        if exc.status_code != 500 or not any(sign in exc.body for sign in _APPLIED_THEN_FAILED):
            raise
        log.warning("event range update answered HTTP 500, possibly applied ranges=%d version=%d", sent, version)
        return UpdateAnswer(accepted=True, possibly_applied=True, message=_POSSIBLY_APPLIED)
    if not success:
        raise ServerRefusedError("updateEventRanges", message)
    if not isinstance(data, dict):
        raise ServerAnswerError("updateEventRanges", "data is not an object")
    return ev.range_answer("updateEventRanges", data.get("Returns", []), data.get("Commands", {}), sent)
