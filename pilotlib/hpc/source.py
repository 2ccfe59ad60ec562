"""A rank's jobs: its entries of Harvester's ``worker_pandaids.json``, each read from its job's directory.

Harvester's ``SharedFileMessenger.feed_jobs`` (HSF/harvester ``pandaharvester/harvestermessenger/
shared_file_messenger.py`` ~378-430) writes each job's definition into ``<access point>/<PandaID>/`` for a
many-jobs worker (``get_access_point`` ~149-154, ``WorkSpec.MT_MultiJobs``), and the list of PandaIDs last. A rank
takes the entries :func:`pilotlib.hpc.ranks.slots` gives it, one after the other, and never asks Harvester for more
jobs: an HPC worker's jobs are all fed before it starts.

A worker of one event-service job and several ranks (Harvester's one-job worker, ``MT_OneToOne``, the only kind
Harvester feeds event ranges to: ``feed_events`` l.456-480 writes nothing for ``MT_MultiJobs``) is *shared*: every
rank runs that job's payload on ranges of its own; the job file is then left in place for all to read. A shared job
that is not an event-service job runs on rank 0 alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pilotlib._atomic import wait_until
from pilotlib.hpc.ranks import RankPlace, slots
from pilotlib.job import Job
from pilotlib.panda._files import read_json
from pilotlib.panda.base import JobRequest
from pilotlib.panda.harvester import Consume, HarvesterFiles, HarvesterJobSource
from pilotlib.stop import Stop, StopSignal

__all__ = ["RankJobSource"]

log = logging.getLogger(__name__)


class RankJobSource:
    """The jobs of one rank (implements :class:`~pilotlib.panda.base.JobSource`): entries ``rank``, ``rank + size``,
    ... of ``worker_pandaids.json``, one per call; an empty sequence once they are done, at once for a rank beyond
    the list (a rank without a job exits cleanly).

    Args:
        files: the worker's access point and Harvester's file names.
        place: this process's rank and the number of ranks.
        wait_timeout: seconds to wait for ``worker_pandaids.json`` and for each job's file.
        read_timeout: seconds a job file may stay half-written.
        poll_interval: seconds between looks.
        stop: ends the waits at once.
    """

    def __init__(self, files: HarvesterFiles, place: RankPlace, *, wait_timeout: float = 60.0,
                 read_timeout: float = 30.0, poll_interval: float = 0.2, stop: StopSignal | None = None) -> None:
        self._files = files
        self._place = place
        self._wait_timeout = wait_timeout
        self._read_timeout = read_timeout
        self._interval = poll_interval
        self._stop: StopSignal = stop or Stop()
        self._slots: list[int] | None = None
        self._shared = False
        self._sources: list[HarvesterJobSource] = []

    def shared(self, panda_id: int) -> bool:
        """Whether this rank runs job ``panda_id`` together with the other ranks (see the module)."""
        job = self.served_job(panda_id)
        return self._shared and job is not None and job.event_service

    def served_job(self, panda_id: int) -> Job | None:
        """The job handed out with that PandaID, if any (the reporter reads its file list)."""
        return next((job for source in self._sources if (job := source.served_job(panda_id)) is not None), None)

    def _listed(self) -> list[int] | None:
        """The entries of ``worker_pandaids.json`` that name a PandaID for the first time (a PandaID listed twice is
        one job: run once), once the file is complete JSON (None: not yet)."""
        found: list[list[object]] = []

        def look() -> bool:
            document = read_json(self._files.worker_path(self._files.panda_ids))
            if isinstance(document, list):
                found.append(document)
            return bool(found)

        wait_until(look, self._wait_timeout, self._interval, self._stop)
        if not found:
            return None
        seen: set[str] = set()
        firsts = []
        for index, panda_id in enumerate(found[0]):
            if str(panda_id) not in seen:
                seen.add(str(panda_id))
                firsts.append(index)
        if len(firsts) < len(found[0]):
            log.warning("%s lists a PandaID more than once: each job runs once entries=%d jobs=%d",
                        self._files.panda_ids, len(found[0]), len(firsts))
        return firsts

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        """This rank's next job (one at most), or an empty sequence.

        Raises:
            pilotlib.errors.JobDefinitionError: the job file is bad or stayed half-written.
            pilotlib.panda.harvester.LaunchDirFileError: a file can not be read.
        """
        listed = self._listed()
        if listed is None:
            log.warning("no %s from harvester seconds=%.0f", self._files.panda_ids, self._wait_timeout)
            return ()
        if self._slots is None:
            self._shared = len(listed) == 1 and self._place.size > 1
            self._slots = [listed[0]] if self._shared else [listed[k] for k in slots(self._place, len(listed))]
            if not self._slots:
                log.info("no job for this rank rank=%d jobs=%d", self._place.rank, len(listed))
        if not self._slots:
            return ()
        slot = self._slots.pop(0)
        source = HarvesterJobSource(self._files, rank=slot, wait_timeout=self._wait_timeout,
                                    read_timeout=self._read_timeout, poll_interval=self._interval, stop=self._stop,
                                    consume=Consume.KEEP if self._shared else Consume.RENAME)
        self._sources.append(source)
        jobs = source.get_jobs(request)
        if self._shared and jobs and not jobs[0].event_service and self._place.rank != 0:
            log.info("the worker's one job is not an event-service job: rank 0 runs it rank=%d", self._place.rank)
            return ()
        if jobs:
            log.info("rank took its job rank=%d slot=%d panda_id=%s", self._place.rank, slot, jobs[0].panda_id)
        return jobs
