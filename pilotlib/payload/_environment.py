"""The payload's environment (private: import from :mod:`pilotlib.payload`).

Facts, from pilot3 3.7.0.36 (PanDAWMS/pilot3, tag ``3.7.0.36``):

- The payload inherits the pilot's whole environment: ``pilot/util/container.py:90`` starts it with
  ``subprocess.Popen`` and no ``env``, so every site variable (release areas, Frontier/squid, ``SITE_NAME``,
  ``HARVESTER_*``) reaches it, with what pilot3 put into ``os.environ`` itself: ``PANDAID``
  (``pilot/control/job.py:2221``), ``PanDA_TaskID`` (``pilot/control/job.py:1057``), ``ATHENA_PROC_NUMBER_JOB`` and
  ``ATHENA_CORE_NUMBER`` (``pilot/user/atlas/common.py:2694-2729``, ``verify_ncores``).
- The command exports ``PANDA_RESOURCE`` (the PanDA resource, pilot3's ``PILOT_SITENAME``, ``pilot.py:147-149``),
  ``FRONTIER_ID="[<task>_<job>]"``, ``CMSSW_VERSION=$FRONTIER_ID``, ``PandaID``, ``PanDA_TaskID``,
  ``PanDA_AttemptNr``, ``INDS``, ``RUCIO_APPID`` (the processing type) and ``RUCIO_ACCOUNT`` (the site's, else
  ``pilot``); for user jobs ``ROOT_TTREECACHE_SIZE=1`` and ``ROOTCORE_NCPUS``; for ``Merge_tf`` it unsets a
  site's ``ATHENA_PROC_NUMBER``/``ATHENA_CORE_NUMBER`` (``pilot/user/atlas/setup.py:381-425``). ``INDS`` is the
  first input dataset that is neither a ``DBRelease`` nor a ``.lib.`` (``pilot/user/atlas/setup.py:199-217``).
- Cores: a site's ``ATHENA_PROC_NUMBER`` is never overwritten and becomes ``ATHENA_CORE_NUMBER`` too; otherwise
  ``ATHENA_PROC_NUMBER`` is exported only for more than one core (``pilot/user/atlas/common.py:739-787``), and
  always for event-service jobs (``pilot/user/atlas/common.py:675-681``).
- Credentials: ``X509_USER_PROXY`` is exported as a path (``pilot/user/generic/common.py:96-97``,
  ``pilot/user/atlas/common.py:868-871``); the pilot's own PanDA tokens (``OIDC_AUTH_TOKEN``, ``OIDC_AUTH_ORIGIN``,
  ``PANDA_AUTH_TOKEN``, ``PANDA_AUTH_ORIGIN``) are unset for the payload (``pilot/user/atlas/common.py:872-879``;
  pilot3 HEAD a090538 adds ``OIDC_REFRESHED_AUTH_TOKEN``, ``pilot/user/atlas/common.py:909-919``, and reads
  ``PANDA_AUTH_TOKEN_KEY``, ``pilot/util/https.py:1123``). The CA directory is ``--capath``, else ``X509_CERT_DIR``
  (``pilot/util/https.py:82-98``).
- The queue description's ``environ`` (``KEY=VALUE KEY2=VALUE2``) is exported before the payload command, ahead
  of pilot3's own variables (``pilot/user/atlas/common.py:530-535``, ``581-610``): it overrides the site's values,
  pilot3's override it.
- Tokens for the payload follow WLCG Bearer Token Discovery: ``BEARER_TOKEN`` (the token itself) first, then the
  file named by ``BEARER_TOKEN_FILE``; pilotlib gives the file and removes ``BEARER_TOKEN``, so that a token's
  content never travels in an environment and the given file is the one found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from pilotlib.job import Job

__all__ = ["PRIVATE_PREFIXES", "PRIVATE_VARIABLES", "PayloadIdentity", "parse_queue_environ", "payload_environment"]

#: Variables never passed on: the pilot's own PanDA credentials (pilot3 unsets them for the payload) and token
#: contents (a secret's content never goes into the payload's environment).
PRIVATE_VARIABLES: frozenset[str] = frozenset({
    "OIDC_AUTH_TOKEN", "OIDC_AUTH_ORIGIN", "PANDA_AUTH_TOKEN", "PANDA_AUTH_ORIGIN", "OIDC_REFRESHED_AUTH_TOKEN",
    "PANDA_AUTH_TOKEN_KEY", "BEARER_TOKEN",
})

#: Name prefixes of the pilot's own settings, never passed on.
PRIVATE_PREFIXES: tuple[str, ...] = ("PILOTLIB_",)


def _opt_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class PayloadIdentity:
    """The pilot-level facts the payload's environment carries (paths only, never a secret's content).

    Attributes:
        panda_resource: the PanDA resource (queue) the pilot serves, exported as ``PANDA_RESOURCE``.
        proxy_path: the X.509 proxy file, exported as ``X509_USER_PROXY``.
        token_path: the bearer token file, exported as ``BEARER_TOKEN_FILE``.
        ca_path: the CA certificate directory, exported as ``X509_CERT_DIR``.
    """

    panda_resource: str = ""
    proxy_path: Path | None = attrs.field(default=None, converter=_opt_path)
    token_path: Path | None = attrs.field(default=None, converter=_opt_path)
    ca_path: Path | None = attrs.field(default=None, converter=_opt_path)


_QUEUE_KEY = re.compile(r"(?:^|\s)(\w+)=")


def parse_queue_environ(text: str) -> dict[str, str]:
    """The variables of a queue description's ``environ`` field: ``KEY=VALUE`` pairs separated by white space, a
    value running up to the next ``KEY=`` (so it may hold spaces); one pair of surrounding quotes and a trailing
    ``;`` are removed. Nothing is expanded (``$VAR`` stays as written)."""
    matches = list(_QUEUE_KEY.finditer(text))
    result = {}
    ends = [m.start() for m in matches[1:]] + [len(text)] if matches else []
    for match, end in zip(matches, ends, strict=True):
        value = text[match.end():end].strip().removesuffix(";")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[match.group(1)] = value
    return result


def payload_environment(job: Job, base_env: Mapping[str, str], identity: PayloadIdentity,
                        workdir: Path | None = None, queue_environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The payload's environment: ``base_env`` (the site's, as the app read it) without the pilot's private
    variables, then the queue's ``environ`` variables, then what a PanDA payload expects (see the module's facts for
    the pilot3 references).

    Args:
        job: the job.
        base_env: the pilot's environment (the library never reads ``os.environ``: the app passes it).
        identity: the PanDA resource and the credential paths.
        workdir: the job's work directory, exported as ``PILOT_WORKDIR`` (pilotlib's own name).
        queue_environ: the queue description's ``environ`` variables (:func:`parse_queue_environ`).

    Returns:
        A new dictionary.
    """
    env = {k: v for k, v in base_env.items() if not _private(k)}
    env.update({k: v for k, v in (queue_environ or {}).items() if not _private(k)})
    env.update(_job_identity(job, identity.panda_resource))
    for name in ("ATHENA_PROC_NUMBER", "ATHENA_PROC_NUMBER_JOB"):  # the site's, replaced by _cores' decision
        env.pop(name, None)
    env.update(_cores(job, base_env))
    if "Merge_tf" in job.transformation and "ATHENA_PROC_NUMBER" in base_env:
        env.pop("ATHENA_PROC_NUMBER", None)
        env.pop("ATHENA_CORE_NUMBER", None)
    if job.is_analysis:
        env["ROOT_TTREECACHE_SIZE"] = "1"
        env["ROOTCORE_NCPUS"] = _positive(env.get("ATHENA_PROC_NUMBER")) or "1"
    env["RUCIO_ACCOUNT"] = base_env.get("RUCIO_ACCOUNT") or "pilot"
    env.update(_credentials(identity))
    if workdir is not None:
        env["PILOT_WORKDIR"] = str(workdir)
    return env


def _private(name: str) -> bool:
    return name in PRIVATE_VARIABLES or name.startswith(PRIVATE_PREFIXES)


def _job_identity(job: Job, panda_resource: str) -> dict[str, str]:
    task = str(job.task_id) if job.task_id is not None else "unknown"
    frontier = f"[{task}_{job.panda_id}]"
    env = {"PandaID": str(job.panda_id), "PANDAID": str(job.panda_id), "PanDA_TaskID": task,
           "PanDA_AttemptNr": str(job.attempt_nr), "FRONTIER_ID": frontier, "CMSSW_VERSION": frontier,
           "INDS": _input_dataset(job)}
    if job.jobset_id is not None:
        env["PanDA_JobsetID"] = str(job.jobset_id)
    if panda_resource:
        env["PANDA_RESOURCE"] = panda_resource
    if job.processing_type:
        env["RUCIO_APPID"] = job.processing_type
    return env


def _input_dataset(job: Job) -> str:
    for spec in job.inputs:
        if spec.dataset and "DBRelease" not in spec.dataset and ".lib." not in spec.dataset:
            return spec.dataset
    return "unknown"


def _positive(value: str | None) -> str | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return str(number) if number > 0 else None


def _cores(job: Job, base_env: Mapping[str, str]) -> dict[str, str]:
    site = _positive(base_env.get("ATHENA_PROC_NUMBER"))
    if site is not None:
        return {"ATHENA_PROC_NUMBER": site, "ATHENA_CORE_NUMBER": site}
    cores = str(max(job.core_count, 1))
    env = {"ATHENA_PROC_NUMBER_JOB": cores, "ATHENA_CORE_NUMBER": cores}
    if job.core_count > 1 or job.event_service:
        env["ATHENA_PROC_NUMBER"] = cores
    return env


def _credentials(identity: PayloadIdentity) -> dict[str, str]:
    env = {}
    if identity.proxy_path is not None:
        env["X509_USER_PROXY"] = str(identity.proxy_path)
    if identity.token_path is not None:
        env["BEARER_TOKEN_FILE"] = str(identity.token_path)
    if identity.ca_path is not None:
        env["X509_CERT_DIR"] = str(identity.ca_path)
    return env
