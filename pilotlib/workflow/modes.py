"""The mode parts of a pilot: where its jobs come from, where its updates go, and what it does at its end.

A pilot's mode is chosen once (STYLE R2) and is nothing but a :class:`ModeParts`: everything else in the workflow
is the same for every mode.

- :func:`server_parts`: the PanDA dispatcher (:class:`~pilotlib.panda.client.PandaClient`) as job source and
  reporter. Credentials are the pilot's job (STYLE R1): the X.509 proxy given, or ``X509_USER_PROXY`` of the
  pilot's environment, else ``/tmp/x509up_u<uid>``, when it exists; none for a plain-HTTP development server. TLS
  is always verified (against ``ca_dir``, or the system store).
- :func:`harvester_parts`: Harvester's shared files in the worker's access point; at the end the pilot asks
  Harvester to kill the worker (``kill_worker.json``).
- :func:`arc_parts`: a NorduGrid/ARC CE's launch directory; no server calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import attrs

from pilotlib.errors import NoProxyError
from pilotlib.job import Job
from pilotlib.jobsetup import CopytoolChoice
from pilotlib.panda.arc import ArcJobSource, ArcReporter
from pilotlib.panda.base import EventRangeSource, JobReporter, JobSource
from pilotlib.panda.client import CallRetry, PandaClient, X509Proxy
from pilotlib.panda.harvester import HarvesterEventRanges, HarvesterFiles, HarvesterJobSource, HarvesterReporter
from pilotlib.stop import StopSignal

__all__ = [
    "DISPATCHER_RETRY",
    "HARVESTER_COPYTOOLS_IN",
    "HARVESTER_COPYTOOLS_OUT",
    "DataPlaces",
    "ModeParts",
    "ServedJobs",
    "arc_parts",
    "find_proxy",
    "harvester_parts",
    "harvester_places",
    "server_parts",
]

#: The dispatcher calls of a pilot: each ends within 30 s (attempts and waits included); one made once the pilot is
#: stopping (the final update) makes one attempt of at most 10 s.
DISPATCHER_RETRY = CallRetry(attempts=3, total_seconds=30.0, stopping_seconds=10.0)


@attrs.frozen
class ModeParts:
    """A mode's job source and reporter, and what to do when the pilot ends (Harvester: ``kill_worker.json``);
    ``recovering`` is told each abandoned job whose failure is about to be reported (Harvester's reporter needs it).
    ``placed``: the jobs are placed in a launch directory before the pilot starts (ARC, Harvester: pilot3's push
    mode), not asked for (the work area's space is then checked once the job is read). ``events``: where an
    event-service job's ranges come from and their statuses go (None: the mode serves none, as ARC);
    ``event_place``: where a job's range outputs are put for someone else to store (Harvester: the job's directory
    in the access point; None: the pilot stores them itself)."""

    source: JobSource
    reporter: JobReporter
    at_end: Callable[[], None] = lambda: None
    recovering: Callable[[Job], None] = lambda _job: None
    placed: bool = False
    events: EventRangeSource | None = None
    event_place: Callable[[int], Path] | None = None


def find_proxy(env: Mapping[str, str], given: Path | None = None) -> X509Proxy | None:
    """The X509 proxy to present, if one exists (``given``: the pilot's option, else ``X509_USER_PROXY`` of
    ``env``, else ``/tmp/x509up_u<uid>``).

    Raises:
        NoProxyError: ``given`` (a proxy the pilot was told to use) is not a file.
    """
    if given is not None and not given.is_file():
        raise NoProxyError(f"--proxy names no file: {given}")
    path = given or Path(env.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}")  # noqa: S108 - the grid's
    return X509Proxy(path) if path.is_file() else None


def server_parts(url: str, api: str = "v1", *, environ: Mapping[str, str] | None = None, proxy: Path | None = None,
                 ca_dir: Path | None = None, stop: StopSignal | None = None,
                 retry: CallRetry = DISPATCHER_RETRY) -> ModeParts:
    """The dispatcher client for ``url`` in the ``api`` dialect (``v1`` or ``legacy``), as source and reporter.

    An ``https://`` server gets the proxy :func:`find_proxy` finds (``proxy``, else in ``environ``). Each call is
    bounded by ``retry``; a call in flight when ``stop`` is set ends at once.

    Raises:
        NoProxyError: ``proxy`` names no file.
    """
    credentials = find_proxy(environ or {}, proxy) if url.startswith("https://") else None
    client = PandaClient(url, "v1" if api == "v1" else "legacy", ca_dir=ca_dir, credentials=credentials, stop=stop,
                         retry=retry)
    return ModeParts(client, client, events=client)


class ServedJobs(JobSource, Protocol):
    """A job source that remembers the jobs it handed out (Harvester's reporter reads their file lists)."""

    def served_job(self, panda_id: int) -> Job | None:
        """The job handed out with that PandaID, if any."""
        ...


def harvester_parts(files: HarvesterFiles, local_dir: Callable[[int], Path], *, wait_timeout: float = 60.0,
                    stop: StopSignal | None = None, source: ServedJobs | None = None,
                    ends_worker: bool = True, heartbeats: bool = True) -> ModeParts:
    """Harvester's files in the access point as source and reporter (``local_dir``: a job's work directory, where
    its outputs are); a job file is waited for up to ``wait_timeout`` seconds, less when ``stop`` is set.

    ``source`` replaces the worker's one job source (an HPC rank's, :class:`pilotlib.hpc.RankJobSource`);
    ``ends_worker``: at the end the pilot asks Harvester to kill the worker; ``heartbeats``: each update renews the
    worker's heartbeat (an HPC rank other than 0 leaves both to rank 0)."""
    jobs: ServedJobs = source or HarvesterJobSource(files, stop=stop, wait_timeout=wait_timeout)
    recovering: dict[int, Job] = {}
    reporter = HarvesterReporter(files, job_of=lambda panda_id: jobs.served_job(panda_id) or recovering.get(panda_id),
                                 local_dir=local_dir, heartbeats=heartbeats)
    return ModeParts(jobs, reporter, reporter.kill_worker if ends_worker else lambda: None,
                     lambda job: recovering.update({job.panda_id: job}), placed=True,
                     events=HarvesterEventRanges(files, stop=stop), event_place=files.job_dir)


#: Stage-in's copytools for a Harvester worker: the inputs are Harvester's links in the access point, never moved out.
HARVESTER_COPYTOOLS_IN = ("symlink",)
#: Stage-out's copytools when Harvester stages the outputs out: they are copied into the access point.
HARVESTER_COPYTOOLS_OUT = ("cp",)


@attrs.frozen
class DataPlaces:
    """Where a pilot's files are when their storage is not described, and its copytools.

    Attributes:
        inputs: the place of inputs (a directory or URL; ``{panda_id}`` is replaced by the job's PandaID); "" none.
        outputs: the place of outputs and logs; "" none.
        copytools: the pilot's copytool choice.
    """

    inputs: str = ""
    outputs: str = ""
    copytools: CopytoolChoice = attrs.field(factory=CopytoolChoice)


def harvester_places(files: HarvesterFiles, given: DataPlaces, *, harvester_stages_out: bool) -> DataPlaces:
    """A Harvester worker's places, where ``given`` (the pilot's options) leaves them open.

    The inputs are Harvester's links in the job's directory of the access point, read with
    :data:`HARVESTER_COPYTOOLS_IN` unless told otherwise. When Harvester stages the outputs out
    (``harvester_stages_out``: its stager reads them from the access point, declared there by the reporter), the
    outputs and the log are copied into the access point (the job's directory there) with
    :data:`HARVESTER_COPYTOOLS_OUT`, above the queue's."""
    outputs, tools_out = given.outputs, given.copytools.tools_out
    if harvester_stages_out:  # each job's own directory (MT_MultiJobs): two jobs' outputs of one name never meet
        outputs = outputs or str(files.access_point) + ("/{panda_id}" if files.per_job_dirs else "")
        tools_out = tools_out or HARVESTER_COPYTOOLS_OUT
    inputs = given.inputs or str(files.access_point) + ("/{panda_id}" if files.per_job_dirs else "")
    return DataPlaces(inputs, outputs, CopytoolChoice(given.copytools.tools_in, tools_out,
                                                      default_in=HARVESTER_COPYTOOLS_IN))


def arc_parts(launch_dir: Path) -> ModeParts:
    """The ARC CE's launch directory as source and reporter (``heartbeat.json``)."""
    return ModeParts(ArcJobSource(launch_dir), ArcReporter(launch_dir), placed=True)
