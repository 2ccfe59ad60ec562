"""Each job's set-up, resolved once when the job is taken and carried on its :class:`~pilotlib.pipeline.JobRun`.

Per job (:class:`SetupResolver`), after the job's ``--overwriteQueueData``/``--overwriteStorageData`` (pilot3
``pilot/info/jobinfo.py``) are applied to the queue's description: the copytools per activity (``pr`` stage-in,
``pw`` outputs, ``pl`` log, pilot3 ``pilot/control/data.py``; the pilot's own choice, e.g. ``--copytool``, overrides
them), the payload's limits and the job's parameters without the override options. Every stage reads the same
:class:`JobSetup` from the run: there is no table to look it up in, and nothing to forget when the job is over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import attrs

from pilotlib.containers.choice import ContainerChoice, ContainerDefaults, choose_container, split_container_image
from pilotlib.containers.middleware import choose_middleware
from pilotlib.errors import PilotError
from pilotlib.info import InfoService, QueueDescription, extract_overrides
from pilotlib.job import Job
from pilotlib.payload import memory_limit_kb

__all__ = ["DEFAULT_COPYTOOLS", "CopytoolChoice", "JobSetup", "SetupResolver"]

log = logging.getLogger(__name__)

#: The copytools used when neither the pilot's choice nor a queue description names any.
DEFAULT_COPYTOOLS = ("mv",)
_MIB = 1024 * 1024


def _frozen_env(env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(env))


@attrs.frozen
class JobSetup:
    """What one job uses, from the queue (with the job's overrides) and the pilot's choices.

    Attributes:
        tools_in, tools_out, tools_log: copytools for stage-in (``pr``), outputs (``pw``) and the log (``pl``).
        info: the information service for this job (None: no descriptions).
        queue: the queue's description for this job (None: no descriptions).
        job_pars: the job's parameters without the override options (what the payload sees; None: the job's own).
        deadline: the end of the pilot's life (epoch seconds) the payload must end before; None: no limit.
        container: the payload's container (:func:`pilotlib.containers.choose_container`); None: on the node.
        middleware: the container stage-in and stage-out run a copytool in when it is not usable on the node
            (:func:`pilotlib.containers.middleware.choose_middleware`); None: none.
        payload_env: variables the payload gets on top of its own (the event channel's address).
    """

    tools_in: tuple[str, ...] = DEFAULT_COPYTOOLS
    tools_out: tuple[str, ...] = DEFAULT_COPYTOOLS
    tools_log: tuple[str, ...] = DEFAULT_COPYTOOLS
    info: InfoService | None = attrs.field(default=None, eq=False)
    queue: QueueDescription | None = None
    job_pars: str | None = None
    deadline: float | None = None
    container: ContainerChoice | None = None
    middleware: ContainerChoice | None = None
    payload_env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)

    def memory_limit_kb(self, job: Job, given_kb: int = 0) -> int | None:
        """The payload's PSS limit: ``given_kb`` when set, else from the resource type, cores and queue (pilot3
        ``pilot/user/atlas/memory.py``; grace ``1 + params.pilot_rss_grace/100``, 2.0 when not given)."""
        if given_kb:
            return given_kb
        queue = self.queue
        grace = _grace(queue, "pilot_rss_grace", 2.0)
        return memory_limit_kb(job.resource_type, job.core_count, queue_maxrss_mb=queue.maxrss if queue else 0,
                               queue_corecount=queue.corecount if queue else 1, min_ram_mb=job.min_ram_count,
                               rss_grace=grace)

    def workdir_limit_bytes(self, job: Job) -> int | None:
        """The largest work directory from the queue's ``maxwdir`` (MB), as pilot3 ``pilot/util/monitoring.py``
        (``get_max_allowed_work_dir_size``) computes it: divided by the queue's cores for a single-core job, times
        ``1 + params.pilot_maxwdir_grace/100`` (20 % when not given); None without a ``maxwdir``."""
        queue = self.queue
        if queue is None or queue.maxwdir <= 0:
            return None
        divider = max(queue.corecount, 1) if job.core_count <= 1 else 1
        return int(queue.maxwdir * _MIB // divider * _grace(queue, "pilot_maxwdir_grace", 1.2))


def _grace(queue: QueueDescription | None, key: str, default: float) -> float:
    value = queue.params.get(key) if queue is not None else None
    try:
        return 1.0 + float(str(value)) / 100.0 if value is not None else default
    except ValueError:
        return default


@attrs.frozen
class CopytoolChoice:
    """The pilot's own copytool choice, above the queue's ``acopytools``.

    Attributes:
        tools_in, tools_out: copytools for stage-in and for stage-out (outputs and the log), in order of
            preference; empty: the queue's (``pr``; ``pw`` and ``pl``), else the defaults.
        default_in, default_out: what is used when neither the choice nor a queue description names any (e.g.
            Harvester's access point is read with ``symlink``).
    """

    tools_in: tuple[str, ...] = ()
    tools_out: tuple[str, ...] = ()
    default_in: tuple[str, ...] = DEFAULT_COPYTOOLS
    default_out: tuple[str, ...] = DEFAULT_COPYTOOLS


def _tools(given: Sequence[str], queue: QueueDescription | None, activity: str,
           default: tuple[str, ...]) -> tuple[str, ...]:
    if given:
        return tuple(given)
    if queue is None:
        return default
    return queue.copytools_for(activity)


@attrs.frozen
class SetupResolver:
    """Resolves a job's :class:`JobSetup` (the pilot's retriever does it once, as the job is taken).

    Attributes:
        info: the pilot's information service, or None.
        choice: the pilot's own copytools.
        containers: the pilot's own container runtime and images, below the job's and the queue's.
    """

    info: InfoService | None = attrs.field(default=None, eq=False)
    choice: CopytoolChoice = attrs.field(factory=CopytoolChoice)
    containers: ContainerDefaults = attrs.field(factory=ContainerDefaults)

    def resolve(self, job: Job) -> JobSetup:
        """The job's setup.

        Raises:
            PilotError: the job's overrides or the queue description are bad (QUEUEDATANOTOK), no copytool is
                configured (UNKNOWNCOPYTOOL), the description cannot be had (QUEUEDATA), the job asks for a
                container on a queue not set up for them (QUEUENOTSETUPFORCONTAINERS).
        """
        overrides = extract_overrides(job.job_pars)
        info = self.info
        if info is not None and (overrides.queue or overrides.storages):
            log.info("job overrides the queue description queue_fields=%s storages=%s",
                     ",".join(sorted(overrides.queue)), ",".join(sorted(overrides.storages)))
            info = info.for_job(overrides)
        queue = info.queue() if info is not None and info.queue_sources else None
        job_pars, image = split_container_image(overrides.job_pars)
        container = choose_container(job, image, queue, self.containers)
        if container is not None:
            log.info("payload in a container runtime=%s image=%s", container.runtime, container.image)
        return attrs.evolve(self._setup(info, queue, job_pars), container=container,
                            middleware=choose_middleware(queue, self.containers))

    def settle(self, job: Job) -> tuple[JobSetup, PilotError | None]:
        """The job's set-up and None; or, when it cannot be resolved, :meth:`fallback`'s and the reason (logged)."""
        try:
            return self.resolve(job), None
        except PilotError as exc:
            log.error("job's set-up not resolved, its log goes with the pilot's code=%d error=%s", int(exc.code), exc)
            return self.fallback(job), exc

    def fallback(self, job: Job) -> JobSetup:
        """The set-up of a job whose own cannot be resolved, for its log and final update only: the pilot's queue
        without the job's overrides, else the pilot's copytool choice alone (logged)."""
        try:
            queue = self.info.queue() if self.info is not None and self.info.queue_sources else None
            return self._setup(self.info, queue, None)
        except PilotError as exc:
            log.warning("no queue for the job's log, the pilot's copytools alone panda_id=%d error=%s",
                        job.panda_id, exc)
            return self._setup(None, None, None)

    def _setup(self, info: InfoService | None, queue: QueueDescription | None, job_pars: str | None) -> JobSetup:
        choice = self.choice
        out = _tools(choice.tools_out, queue, "pw", choice.default_out)
        return JobSetup(tools_in=_tools(choice.tools_in, queue, "pr", choice.default_in), tools_out=out,
                        tools_log=tuple(choice.tools_out) or (_tools((), queue, "pl", out) if queue else out),
                        info=info, queue=queue, job_pars=job_pars)
