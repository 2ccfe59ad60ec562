"""The legacy dialect of the dispatcher client: ``POST {server}/server/panda/<method>``.

Requests are gzip-compressed JSON bodies with the camelCase names and ``Content-Type: application/json`` (pilot3
``pilot/util/https.py`` ``request2``; panda-server's legacy ``server/panda.py`` ``parse_json_parameters_legacy``
gunzips every JSON body) and ``Accept: application/json``; answers are decoded in either form (see
:mod:`pilotlib.panda._answers`). Names and answers follow panda-server's ``jobdispatcher/JobDispatcher.py`` (last
version, commit 2e1a1449): ``getJob`` (no job is ``StatusCode=20``, ``jobs`` when ``nJobs`` is sent), ``updateJob``
(``command``), ``updateJobsInBulk`` (``jobList``, answer ``[bool, [answers]]``),
``getEventRanges``/``updateEventRanges`` (``eventRanges`` JSON string, ``Returns``, ``Command``), ``getKeyPair``
(``publicKey``/``privateKey``), ``getProxy`` (``userProxy``), ``updateWorkerPilotStatus``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pilotlib.job import Job
from pilotlib.panda import _answers as ans
from pilotlib.panda import _event_updates as ev
from pilotlib.panda._times import update_field
from pilotlib.panda._transport import Transport
from pilotlib.panda.base import EventRange, EventRangeUpdate, JobRequest, JobUpdate, UpdateAnswer, ZipRecord
from pilotlib.panda.errors import ServerAnswerError, ServerRefusedError

log = logging.getLogger(__name__)

SC_NOJOBS = 20


# The keyword arguments of the legacy ``updateJob`` (panda-server ``pandaserver/jobdispatcher/JobDispatcher.py`` at
# 2e1a1449, ``def updateJob``): the server passes the request's fields as keywords, so an unknown one is a TypeError
# there (an HTTP 500), and ``startTime``/``endTime`` are parsed with ``time.strptime(value, "%Y-%m-%d %H:%M:%S")``
# (anything else is silently dropped).
UPDATE_JOB_FIELDS = frozenset({
    "jobId", "state", "token", "transExitCode", "pilotErrorCode", "pilotErrorDiag", "timestamp", "timeout", "xml",
    "node", "workdir", "cpuConsumptionTime", "cpuConsumptionUnit", "remainingSpace", "schedulerID", "pilotID",
    "siteName", "messageLevel", "pilotLog", "metaData", "cpuConversionFactor", "exeErrorCode", "exeErrorDiag",
    "pilotTiming", "computingElement", "startTime", "endTime", "nEvents", "nInputFiles", "batchID", "attemptNr",
    "jobMetrics", "stdout", "jobSubStatus", "coreCount", "maxRSS", "maxVMEM", "maxSWAP", "maxPSS", "avgRSS",
    "avgVMEM", "avgSWAP", "avgPSS", "totRCHAR", "totWCHAR", "totRBYTES", "totWBYTES", "rateRCHAR", "rateWCHAR",
    "rateRBYTES", "rateWBYTES", "corruptedFiles", "meanCoreCount", "cpu_architecture_level", "grid", "source_site",
    "destination_site",
})


def legacy_update_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``updateJob`` fields the legacy server accepts, with epoch times in its ``%Y-%m-%d %H:%M:%S`` UTC form."""
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in UPDATE_JOB_FIELDS:
            log.debug("updateJob field not sent: the legacy server has no such argument field=%s", key)
            continue
        body[key] = update_field(key, value)
    return body


def _path(method: str) -> str:
    return f"server/panda/{method}"


def _call(transport: Transport, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
    decode = functools.partial(ans.decode_legacy, method)
    return decode(transport.send(method, _path(method), json_body=body, compress=True, check=decode))


def job_request_fields(request: JobRequest) -> dict[str, Any]:
    """The ``getJob`` fields of a request (PANDA.md section 1; pilot3 ``pilot/control/job.py`` getjob data)."""
    fields: dict[str, Any] = {
        "siteName": request.site_name, "computingElement": request.queue,
        "prodSourceLabel": request.prod_source_label, "node": request.node, "mem": request.mem_mb,
        "diskSpace": request.disk_mb, "cpu": request.cpu_mhz, "workingGroup": request.working_group,
        "nJobs": request.n_jobs,
    }
    optional = {"resourceType": request.resource_type, "jobType": request.job_type,
                "harvester_id": request.harvester_id, "worker_id": request.worker_id, "taskID": request.task_id}
    fields.update({key: value for key, value in optional.items() if value not in ("", None)})
    return fields


class LegacyDialect:
    """The calls of the legacy API."""

    name = "legacy"

    def get_jobs(self, transport: Transport, request: JobRequest) -> list[dict[str, Any]]:
        """``getJob``: the raw job definitions (empty when there is no job)."""
        answer = _call(transport, "getJob", job_request_fields(request))
        if answer["StatusCode"] == SC_NOJOBS:
            return []
        ans.expect_success("getJob", answer)
        if "jobs" not in answer:
            return [answer] if "PandaID" in answer else []
        jobs = ans.nested("getJob", answer["jobs"], list, "jobs")
        if not all(isinstance(job, dict) for job in jobs):
            raise ServerAnswerError("getJob", "a job in jobs is not an object")
        return list(jobs)

    def update_job(self, transport: Transport, update: JobUpdate) -> UpdateAnswer:
        """``updateJob``."""
        return self._update_answer("updateJob", _call(transport, "updateJob", self._update_body(update)))

    @staticmethod
    def _update_body(update: JobUpdate) -> dict[str, Any]:
        return {**legacy_update_fields(update.fields), "jobId": update.panda_id, "state": update.state}

    @staticmethod
    def _update_answer(call: str, answer: Mapping[str, Any]) -> UpdateAnswer:
        ans.expect_success(call, answer)
        command, text = ans.command(answer.get("command"))
        return UpdateAnswer(accepted=True, command=command, command_text=text)

    def update_jobs(self, transport: Transport, updates: Sequence[JobUpdate]) -> list[UpdateAnswer]:
        """``updateJobsInBulk``: one answer per update, in order."""
        body = {"jobList": json.dumps([self._update_body(update) for update in updates])}
        text = transport.send("updateJobsInBulk", _path("updateJobsInBulk"), json_body=body, compress=True)
        result = ans.nested("updateJobsInBulk", text, list, "the answer")
        if len(result) != 2 or not isinstance(result[0], bool):
            raise ServerAnswerError("updateJobsInBulk", "not a [status, answers] pair", text)
        if not result[0] or not isinstance(result[1], list) or len(result[1]) != len(updates):
            raise ServerRefusedError("updateJobsInBulk", str(result[1])[:200])
        return [self._update_answer("updateJob", ans.decode_legacy("updateJob", _inner(item))) for item in result[1]]

    def get_event_ranges(self, transport: Transport, job: Job, n_ranges: int) -> list[EventRange]:
        """``getEventRanges``."""
        body = {"pandaID": job.panda_id, "jobsetID": job.jobset_id, "taskID": job.task_id, "nRanges": n_ranges}
        answer = _call(transport, "getEventRanges", body)
        ans.expect_success("getEventRanges", answer)
        ranges = ans.nested("getEventRanges", answer.get("eventRanges", "[]"), list, "eventRanges")
        return [ans.event_range("getEventRanges", item) for item in ranges]

    def update_event_ranges(self, transport: Transport, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """``updateEventRanges`` (version 0)."""
        return _send_ranges(transport, ev.range_entries(updates), ev.PLAIN, len(updates))

    def update_zipped_ranges(self, transport: Transport, zip_file: ZipRecord,
                             updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """``updateEventRanges`` (version 1): one group, the ranges whose outputs ``zip_file`` holds."""
        return _send_ranges(transport, [ev.zip_group(zip_file, updates)], ev.ZIPPED, len(updates))

    def get_key_pair(self, transport: Transport, public_name: str, private_name: str) -> tuple[str, str]:
        """``getKeyPair``."""
        answer = _call(transport, "getKeyPair", {"publicKeyName": public_name, "privateKeyName": private_name})
        ans.expect_success("getKeyPair", answer)
        return _text("getKeyPair", answer, "publicKey"), _text("getKeyPair", answer, "privateKey")

    def get_proxy(self, transport: Transport, role: str | None) -> str:
        """``getProxy``."""
        answer = _call(transport, "getProxy", {"role": role or ""})
        ans.expect_success("getProxy", answer)
        return _text("getProxy", answer, "userProxy")

    def update_worker_status(self, transport: Transport, *, site: str, worker_id: str, harvester_id: str,
                             status: str, node_id: str) -> None:
        """``updateWorkerPilotStatus``."""
        body = {"site": site, "workerID": worker_id, "harvesterID": harvester_id, "status": status,
                "node_id": node_id}
        text = transport.send("updateWorkerPilotStatus", _path("updateWorkerPilotStatus"), json_body=body,
                              compress=True)
        if "StatusCode" not in text:  # the server answers a plain message for a refused state
            raise ServerRefusedError("updateWorkerPilotStatus", text[:200])
        ans.expect_success("updateWorkerPilotStatus", ans.decode_legacy("updateWorkerPilotStatus", text))


def _inner(item: Any) -> str:
    """A bulk answer's element: an encoded answer, or ``{"type": "json", "content": ...}``."""
    if isinstance(item, dict) and isinstance(item.get("content"), str):
        return str(item["content"])
    if isinstance(item, str):
        return item
    raise ServerAnswerError("updateJobsInBulk", "an answer in the list is neither text nor {type, content}")


def _text(call: str, answer: Mapping[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise ServerAnswerError(call, f"no {key} in the answer", secret=True)
    return value


def _send_ranges(transport: Transport, ranges: list[dict[str, Any]], version: int, sent: int) -> UpdateAnswer:
    """``updateEventRanges`` of one list; version 0 answers JSON text inside the answer, versions 1 and 2 lists
    (``TaskBuffer.updateEventRanges`` hands them back without ``json.dumps``, ``TaskBuffer.py:1733-1735`` at 0.8.1)."""
    answer = _call(transport, "updateEventRanges", {"eventRanges": json.dumps(ranges), "version": version})
    ans.expect_success("updateEventRanges", answer)
    return ev.range_answer("updateEventRanges", answer.get("Returns", []), answer.get("Command", {}), sent)
