"""The legacy dialect: ``POST /server/panda/<method>``, answered as PanDA's JobDispatcher answered.

Facts this module follows (panda-server, ``pandaserver/jobdispatcher/JobDispatcher.py`` as of commit 2e1a1449, the last
version before the module was retired, and ``pandaserver/jobdispatcher/Protocol.py``):

- every answer is ``Protocol.Response``: a dictionary starting with ``StatusCode`` (0 success, 10 timeout, 20 no jobs,
  30 failed, 50 invalid, 60 role, 70 permission denied, 80 key missing, 90 proxy error), url-encoded with
  ``urlencode`` unless the request sends ``Accept: application/json``, then JSON (``Response.encode``);
- ``getJob`` with ``nJobs`` answers ``StatusCode=0`` and ``jobs`` (a JSON *string* inside the url-encoded answer, a
  list in JSON), each job carrying its own ``StatusCode`` and ``nSent``; without ``nJobs`` the one job's fields are
  the answer itself; no job is ``StatusCode=20`` (with ``errorDialog`` "no jobs in PanDA" in JSON only);
- ``updateJob`` answers ``StatusCode=0`` and ``command`` (the back-channel, ``NULL`` when there is none); a final
  state (``finished``/``failed``) puts the job in ``holding`` on the server; ``jobId=NULL`` and an invalid state are
  acknowledged with a bare ``StatusCode=0``; a PandaID the server does not know is 30 (``updateJobStatus`` fails);
- ``updateJobsInBulk`` answers ``json.dumps((True, [<each updateJob answer, encoded>]))``, not a Response;
- ``getEventRanges`` answers ``eventRanges`` (a JSON string unless JSON was accepted: ``DBProxy.getEventRanges``),
  each range ``{eventRangeID, startEvent, lastEvent, LFN, GUID, scope}`` (``task_event_module.py``);
- ``updateEventRanges`` answers ``Returns`` and ``Command`` as JSON strings (``TaskBuffer.updateEventRanges``,
  version 0), one return per range: True for a final status, None for running/transferring, False for a bad one;
  the PandaID is the second dash-separated part of the ``eventRangeID``; with ``version`` 1 or 2 (groups of ranges
  sharing a ``zipFile``, as pilot3's event-service executors send them) ``Returns`` and ``Command`` are the lists
  themselves (``TaskBuffer.py:1733`` at 0.8.1: no ``json.dumps``), so url-encoded they read as Python text;
- ``checkEventsAvailability``, ``getProxy`` always answer JSON; ``getKeyPair``/``getProxy`` need a DN (HTTPS) or
  answer ``StatusCode=70`` "Cannot extract DN from proxy. not HTTPS?"; a missing key is 80, a missing proxy 90;
- ``updateWorkerPilotStatus`` accepts only ``started``/``finished`` and answers a plain message otherwise.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from panda_devserver._logic import Context, Outcome, event_range_panda_id
from panda_devserver._signatures import LEGACY_ARGUMENTS

SC_SUCCESS, SC_NOJOBS, SC_FAILED, SC_PERMS, SC_MISSKEY, SC_PROXYERROR = 0, 20, 30, 70, 80, 90

#: The job states ``updateJob`` accepts (JobDispatcher.updateJob's list).
VALID_STATES = frozenset(
    {"running", "failed", "finished", "holding", "starting", "transferring"}
)


def encode(data: Mapping[str, Any], accept_json: bool) -> Outcome:
    """Encode a Response the way ``Protocol.Response.encode`` does."""
    if accept_json:
        return Outcome(200, "application/json", json.dumps(dict(data)).encode())
    return Outcome(200, "text/plain", urllib.parse.urlencode(dict(data)).encode())


def _response(code: int, accept_json: bool, dialog: str | None = None, **nodes: Any) -> Outcome:
    data: dict[str, Any] = {"StatusCode": code}
    if dialog is not None:
        data["errorDialog"] = dialog
    data.update(nodes)
    return encode(data, accept_json)


def _int(params: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except (TypeError, ValueError):
        return default


def get_job(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``getJob``: hand out the next job(s)."""
    bulk = params.get("nJobs") not in (None, "")
    jobs = ctx.store.take_jobs(max(1, _int(params, "nJobs", 1)), pilot=str(params.get("node", "")))
    if not jobs:
        return _response(SC_NOJOBS, accept_json, "no jobs in PanDA" if accept_json else None)
    answers = [{"StatusCode": SC_SUCCESS, **job, "nSent": 0} for job in jobs]
    if not bulk:
        return encode(answers[0], accept_json)
    return _response(SC_SUCCESS, accept_json, jobs=answers if accept_json else json.dumps(answers))


#: The keyword arguments of the legacy ``updateJob`` (facts from panda-server 0.7.2, kept in ``_signatures``): the
#: request's fields are passed as keywords, so any other field is a TypeError: an HTTP 500 for ``updateJob``, a
#: failed ``updateJobsInBulk``.
UPDATE_JOB_ARGUMENTS = LEGACY_ARGUMENTS["updateJob"][1]


def update_job(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``updateJob``: keep the update, answer with the back-channel command.

    ``jobId=NULL`` and a state outside :data:`VALID_STATES` are acknowledged with a bare ``StatusCode=0`` and not
    recorded (JobDispatcher.updateJob: "invalid state ... for updateJob" returns SC_Success).
    """
    unknown = sorted(set(params) - UPDATE_JOB_ARGUMENTS)
    if unknown:
        raise TypeError(f"updateJob() got an unexpected keyword argument '{unknown[0]}'")
    if str(params.get("jobId", "")) == "NULL" or str(params.get("state", "")) not in VALID_STATES:
        return _response(SC_SUCCESS, accept_json)
    code, command = ctx.update_job(str(params.get("jobId", "")), dict(params))
    if code != SC_SUCCESS:
        return _response(code, accept_json)
    return _response(SC_SUCCESS, accept_json, command=command or "NULL")


def update_jobs_in_bulk(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``updateJobsInBulk``: ``jobList`` is a JSON list of updates; the answer is ``[True, [answers]]``."""
    try:
        job_list = json.loads(str(params.get("jobList", "")))
        answers: list[Any] = []
        for item in job_list:
            outcome = update_job(ctx, item, accept_json)
            text = outcome.body.decode()
            answers.append({"type": "json", "content": text} if accept_json else text)
        result: tuple[bool, Any] = (True, answers)
    except (ValueError, TypeError, AttributeError) as exc:
        result = (False, f"updateJobsInBulk failed with {type(exc).__name__} {exc}")
    return Outcome(200, "text/plain", json.dumps(result).encode())


def get_event_ranges(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``getEventRanges``: hand out up to ``nRanges`` ranges of ``pandaID``."""
    ranges = ctx.store.take_event_ranges(_int(params, "pandaID", 0), max(0, _int(params, "nRanges", 10)))
    return _response(SC_SUCCESS, accept_json, eventRanges=ranges if accept_json else json.dumps(ranges))


def update_event_ranges(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``updateEventRanges``: ``eventRanges`` is a JSON list of ``{eventRangeID, eventStatus, ...}``."""
    try:
        ranges = json.loads(str(params.get("eventRanges", "")))
        if not isinstance(ranges, list):
            raise TypeError("not a list")
    except (ValueError, TypeError):
        return _response(SC_SUCCESS, accept_json, Returns=json.dumps("ERROR : failed to convert eventRanges with json"))
    version = _int(params, "version", 0)
    returns, commands = ctx.update_event_ranges(ranges, version)
    if version != 0:  # TaskBuffer.updateEventRanges hands versions 1 and 2 back without json.dumps
        return _response(SC_SUCCESS, accept_json, Returns=returns, Command=commands)
    return _response(SC_SUCCESS, accept_json, Returns=json.dumps(returns), Command=json.dumps(commands))


def check_events_availability(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``checkEventsAvailability``: how many ranges are left (always JSON)."""
    return _response(SC_SUCCESS, True, nEventRanges=ctx.store.count_event_ranges(_int(params, "pandaID", 0)))


def get_key_pair(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``getKeyPair``: the named public and private keys."""
    if ctx.client_dn is None:
        return _response(SC_PERMS, accept_json, "Cannot extract DN from proxy. not HTTPS?")
    public, private = str(params.get("publicKeyName", "")), str(params.get("privateKeyName", ""))
    for name in (public, private):
        if name not in ctx.key_pairs:
            return _response(SC_MISSKEY, accept_json, f"failed since {name} is missing")
    return _response(SC_SUCCESS, accept_json, publicKey=ctx.key_pairs[public], privateKey=ctx.key_pairs[private])


def get_proxy(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``getProxy``: the user proxy (always JSON)."""
    if ctx.client_dn is None:
        return _response(SC_PERMS, True, "Cannot extract DN from proxy. not HTTPS?")
    if ctx.user_proxy is None:
        return _response(SC_PROXYERROR, True, f"proxy not found for {params.get('dn') or ctx.client_dn}")
    return _response(SC_SUCCESS, True, "", userProxy=ctx.user_proxy)


def update_worker_pilot_status(ctx: Context, params: Mapping[str, Any], accept_json: bool) -> Outcome:
    """``updateWorkerPilotStatus``: ``started`` or ``finished``."""
    valid = ("started", "finished")
    if params.get("status") not in valid:
        message = f"Invalid worker state. The worker state has to be in {valid}"
        return Outcome(200, "text/plain", message.encode())
    ctx.store.record_worker_status(dict(params))
    return _response(SC_SUCCESS, accept_json)


HANDLERS = {
    "getJob": get_job,
    "updateJob": update_job,
    "updateJobsInBulk": update_jobs_in_bulk,
    "getEventRanges": get_event_ranges,
    "updateEventRanges": update_event_ranges,
    "checkEventsAvailability": check_events_availability,
    "getKeyPair": get_key_pair,
    "getProxy": get_proxy,
    "updateWorkerPilotStatus": update_worker_pilot_status,
}

__all__ = ["HANDLERS", "VALID_STATES", "encode", "event_range_panda_id"]
