"""Runs inside .venv-panda (panda-server 1.0.4): builds job definitions and validates requests with its own code.

Test code of ours that imports panda-server's package; it reads one JSON command on stdin and writes one JSON
answer on stdout (``PANDA_HOME`` names the venv, whose ``etc/panda`` holds the configuration). Commands:

- ``{"do": "jobs"}``: for each kind (production, user, event service, merge, no input) a JobSpec with FileSpecs,
  passed through ``Protocol.Response.appendJob``; the answer holds both answer forms (the url-encoded text and the
  JSON text that ``Response.encode`` produces).
- ``{"do": "acquire", "body": {...}}``: the real v1 ``pilot/acquire_jobs`` handler called with our request body, a
  stand-in site mapper and a stand-in task buffer handing out the same jobs; its answer and ``getJobs``' arguments.
- ``{"do": "signatures", "paths": [...]}``: the v1 handlers' signatures,
  ``{path: {argument: [annotation text, default or "<required>"]}}``.
- ``{"do": "validate", "path": ..., "method": ..., "body": {...}}``: the real decorated handler called with a stand-in
  request (a production-role proxy); answers the handler's message and whether it got past the decorator's checks
  (refusals: "Argument error"/"Type error", the SSL, role and method messages).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys

from pandaserver.api.v1.common import MESSAGE_PROD_ROLE, MESSAGE_SSL
from pandaserver.jobdispatcher import Protocol
from pandaserver.taskbuffer import EventServiceUtils
from pandaserver.taskbuffer.DdmSpec import DdmSpec
from pandaserver.taskbuffer.FileSpec import FileSpec
from pandaserver.taskbuffer.JobSpec import JobSpec
from pandaserver.taskbuffer.SiteSpec import SiteSpec


def _file(FileSpec, kind, lfn, **extra):
    spec = FileSpec()
    spec.type, spec.lfn, spec.scope = kind, lfn, extra.pop("scope", "mc23_13p6TeV")
    spec.dataset = extra.pop("dataset", f"{spec.scope}.ds_{kind}")
    spec.destinationDBlock = spec.dataset + "_sub01" if kind != "input" else "NULL"
    spec.GUID = extra.pop("guid", f"00000000-0000-0000-0000-00000000{len(lfn):04d}")
    for key, value in extra.items():
        setattr(spec, key, value)
    return spec


def _job(JobSpec, FileSpec, panda_id, label, inputs, outputs, **extra):
    job = JobSpec()
    job.PandaID, job.prodSourceLabel, job.jobsetID, job.jediTaskID = panda_id, label, 77, 4242
    job.lockedby, job.attemptNr, job.AtlasRelease = "jedi", 2, "Atlas-23.0.1"
    job.transformation, job.jobName, job.coreCount = "Sim_tf.py", f"job.{panda_id}", 8
    job.maxCpuCount, job.minRamCount, job.maxDiskCount, job.maxWalltime = 3600, 2000, 5000, 7200
    job.jobParameters = "--maxEvents=10"
    for key, value in extra.items():
        setattr(job, key, value)
    for lfn, fsize, checksum in inputs:
        job.addFile(_file(FileSpec, "input", lfn, fsize=fsize, checksum=checksum, dispatchDBlock="panda.dis.1",
                          prodDBlock="mc23_13p6TeV.ds_input", dispatchDBlockToken="NULL", prodDBlockToken="NULL"))
    for lfn in outputs:
        job.addFile(_file(FileSpec, "output", lfn, destinationDBlockToken="dst:CERN-PROD_DATADISK",
                          destinationSE="CERN-PROD", dispatchDBlockToken="NULL", prodDBlockToken="NULL"))
    job.addFile(_file(FileSpec, "log", f"log.{panda_id}.tgz", destinationDBlockToken="dst:CERN-PROD_DATADISK",
                      destinationSE="CERN-PROD", dispatchDBlockToken="NULL", prodDBlockToken="NULL"))
    return job


class _SiteMapperCache:
    """A stand-in for the server's site mapper cache: one queue writing to and reading from CERN-PROD_DATADISK."""

    def __init__(self):
        site = SiteSpec()
        site.ddm_endpoints_input, site.ddm_endpoints_output = {"default": DdmSpec()}, {"default": DdmSpec()}
        site.ddm_input, site.ddm_output = {"default": "CERN-PROD_DATADISK"}, {"default": "CERN-PROD_DATADISK"}
        site.setokens_input, site.setokens_output = {"default": {}}, {"default": {}}
        site.status, site.type, site.catchall = "online", "production", ""
        self.site = site

    def get_object(self):
        return self

    def update(self):
        pass

    @property
    def cachedObj(self):  # the name panda-server's CachedObject uses
        return self

    def release_object(self):
        pass

    def getSite(self, name):
        return self.site

    def resolveNucleus(self, name):
        return name


def _made_jobs():
    made = {
        "production": _job(JobSpec, FileSpec, 1001, "managed", [("EVNT.01._000001.pool.root.1", 1000, "ad:0a1b2c3d")],
                           ["HITS.01._000001.pool.root.1"]),
        "user": _job(JobSpec, FileSpec, 1002, "user", [("user.a.in.root", 20, "md5:" + "a" * 32)],
                     ["user.a.out.root"], transformation="https://pandaserver.cern.ch/trf/user/runGen-00-00-02"),
        "event_service": _job(JobSpec, FileSpec, 1003, "managed",
                              [("EVNT.02._000001.pool.root.1", 3000, "ad:11223344")], ["HITS.02._000001.pool.root.1"],
                              specialHandling="eventservice", eventService=1),
        "merge": _job(JobSpec, FileSpec, 1004, "managed", [("HITS.02._000001.pool.root.1.1003-1", 50, "ad:55667788")],
                      ["HITS.02._000001.pool.root.1"]),
        "no_input": _job(JobSpec, FileSpec, 1005, "managed", [], ["EVNT.03._000001.pool.root.1"]),
    }
    made["user"].set_encode_job_params()
    merge = made["merge"]
    EventServiceUtils.setEventServiceMerge(merge)
    merge.metadata = [{"HITS.02._000001.pool.root.1": ["HITS.02._000001.pool.root.1.1003-1"]},
                      {"HITS.02._000001.pool.root.1.1003-1": "es_premerge"}]
    return made


def jobs():
    answers = {}
    for kind, job in _made_jobs().items():
        response = Protocol.Response(Protocol.SC_Success)
        response.appendJob(job, _SiteMapperCache())
        answers[kind] = {"urlencoded": response.encode(), "json": response.encode(acceptJson=True)["content"]}
    return answers


_MODULES = {"pilot": "pilot_api", "event": "event_api", "creds": "credential_management_api"}


def _handler(path):
    module, name = path.split("/")
    return getattr(importlib.import_module(f"pandaserver.api.v1.{_MODULES[module]}"), name)


def signatures(paths):
    out = {}
    for path in paths:
        parameters = list(inspect.signature(_handler(path)).parameters.values())[1:]  # after req
        out[path] = {
            p.name: [str(p.annotation) if p.annotation is not inspect.Parameter.empty else "",
                     "<required>" if p.default is inspect.Parameter.empty else p.default]
            for p in parameters
        }
    return out


class _Request:
    """A stand-in for PandaRequest: a secure (client certificate) request with the given method."""

    def __init__(self, method):
        self.subprocess_env = {"SSL_CLIENT_S_DN": "/DC=ch/DC=cern/OU=Users/CN=pilot", "REQUEST_METHOD": method,
                               "GRST_CRED_1": "VOMS 0 0 0 /atlas/Role=production"}


class _StopAfterValidation(Exception):
    pass


class _TaskBuffer:
    """A stand-in task buffer: the handler ran past validation as soon as it touches it."""

    def __getattr__(self, name):
        raise _StopAfterValidation(name)


def validate(path, method, body):
    module = importlib.import_module(f"pandaserver.api.v1.{_MODULES[path.split('/')[0]]}")
    module.global_task_buffer = _TaskBuffer()
    try:
        answer = _handler(path)(_Request(method), **body)
    except _StopAfterValidation as stop:
        return {"validated": True, "message": f"reached the task buffer ({stop})"}
    except Exception as exc:  # past validation: the handler itself failed on the stand-ins
        return {"validated": True, "message": f"{type(exc).__name__}: {exc}"}
    message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
    refused = str(message).startswith(("Argument error", "Type error", "expecting ", MESSAGE_SSL, MESSAGE_PROD_ROLE))
    return {"validated": not refused, "message": str(message)}


class _JobsTaskBuffer:
    """A stand-in task buffer whose ``getJobs`` hands out the made jobs, then ``nSent``, the proxy key and secrets,
    the list ``pilot_api.acquire_jobs`` unpacks."""

    def __init__(self, made):
        self.made = made
        self.calls = []

    def getJobs(self, *args):  # panda-server's name
        self.calls.append(list(args))
        return [*self.made, 0, None, {}]


def acquire(body):
    """The real ``pilot/acquire_jobs`` handler on our request body, with the stand-ins; its whole answer."""
    pilot_api = importlib.import_module("pandaserver.api.v1.pilot_api")
    buffer = _JobsTaskBuffer(list(_made_jobs().values()))
    pilot_api.global_task_buffer = buffer
    pilot_api.global_site_mapper_cache = _SiteMapperCache()
    answer = pilot_api.acquire_jobs(_Request("POST"), **body)
    return {"answer": answer, "get_jobs_args": buffer.calls}


class _RangesTaskBuffer:
    """A stand-in task buffer whose ``updateEventRanges`` applies the update: a status per range and no command,
    the pair ``event_api.update_event_ranges`` unpacks."""

    def updateEventRanges(self, event_ranges, version):  # panda-server's name
        return [True] * len(json.loads(event_ranges)), {}


def update_ranges(body):
    """The real ``event/update_event_ranges`` handler on our request body once the update is applied: its answer,
    or the text of what it raised (the WSGI entry answers that text with HTTP 500)."""
    event_api = importlib.import_module("pandaserver.api.v1.event_api")
    event_api.global_task_buffer = _RangesTaskBuffer()
    try:
        return {"answer": event_api.update_event_ranges(_Request("POST"), **body)}
    except Exception as exc:
        return {"raised": str(exc)}


def main():
    command = json.load(sys.stdin)
    if command["do"] == "jobs":
        result = jobs()
    elif command["do"] == "acquire":
        result = acquire(command["body"])
    elif command["do"] == "update_ranges":
        result = update_ranges(command["body"])
    elif command["do"] == "signatures":
        result = signatures(command["paths"])
    else:
        result = validate(command["path"], command["method"], command["body"])
    sys.stdout.write(json.dumps(result, default=repr))


if __name__ == "__main__":
    main()
