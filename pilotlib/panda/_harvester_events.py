"""Event ranges through Harvester's files (private: import from :mod:`pilotlib.panda.harvester`).

Facts relied on (HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py`` and
``pandaharvester/harvesterbody/event_feeder.py``, ``submitter.py``, ``harvestercommunicator/panda_communicator.py``):

- the request ``worker_requestevents.json`` lives in the access point and is
  ``{"<PandaID>": {"pandaID", "taskID", "jobsetID", "nRanges"}}`` (``events_requested`` returns it as it is and the
  communicator reads ``nRanges``, ``taskID``, ``jobsetID`` per PandaID);
- Harvester answers by writing ``JobsEventRanges.json`` in the access point with a plain ``open(..., "w")``
  (``feed_events``): ``{"<PandaID>": [{eventRangeID, startEvent, lastEvent, LFN, GUID, scope, ...}]}``, then removes
  the request file; with ``prefetchEvents`` the ranges may be there before the pilot asks;
- range statuses go to ``event_status.dump.json`` in the job's directory, as entries ``{eventRangeID,
  eventStatus}`` without a ``path`` (``get_files_to_stage_out`` collects every entry's ``eventRangeID`` and
  ``eventStatus``, with or without a file). Harvester rewrites ``worker_updateevents.json`` from the dump whenever
  the dump holds events, so a status written there directly would be lost; the dump is renamed to ``.read`` while
  Harvester works, so statuses are merged into it, never overwritten.

Several pilots may share the access point (the MPI ranks of one HPC worker): every read-modify-write of the request,
the answer and the dump holds :func:`~pilotlib.panda._files.locked` (a lock file ``.<name>.lock`` beside the file),
and none overwrites another rank's part:

- the request is merged: this job's entry is added to the requests already in the file;
- the answer is taken per job: this job's ranges are taken out, the other jobs' ranges are left in the file
  (the file is removed once empty); ranges taken are kept by the source and handed out by its later calls;
- Harvester reads the request in its monitor cycle (``monitor.py``, ``events_requested``) but removes it only after
  feeding (``feed_events``), so a request merged in between is removed unanswered: when the request no longer holds
  this job and the answer has nothing for it, the source asks again (until ``timeout``). Harvester's answer for a
  job with no ranges left is an empty list (``panda_communicator.get_event_ranges`` sets the key for every
  PandaID the server answered), which ends the job's ranges.

Harvester does not take the lock: ``feed_events`` overwrites the answer file as a whole, so ranges of another job
still in it are lost if Harvester feeds again before that job's pilot took them (in production the monitor cycle is
far longer than the pilot's poll); a change Harvester makes while a rank rewrites a file is noticed by the file's
:class:`~pilotlib.panda._files.Stamp` and the rewrite is done again. With ``WorkSpec.MT_MultiJobs`` (many jobs in
one worker, ``HarvesterFiles.per_job_dirs``) Harvester's ``feed_events`` writes no answer at all (it only removes
the request), so there the source waits until ``timeout``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotlib._atomic import wait_until
from pilotlib.job import Job
from pilotlib.panda._file_errors import LaunchDirFormatError, LaunchDirTimeoutError
from pilotlib.panda._files import Verdict, merge_entries, read_json, rewrite_json
from pilotlib.panda._harvester_settings import HarvesterFiles
from pilotlib.panda.base import EventRange, EventRangeUpdate, UpdateAnswer
from pilotlib.stop import Stop, StopSignal

__all__ = ["HarvesterEventRanges", "dump_key"]

log = logging.getLogger(__name__)

_RANGE_KEYS = {"eventRangeID": str, "startEvent": int, "lastEvent": int, "LFN": str, "GUID": str, "scope": str}


def _event_range(entry: Any) -> EventRange:
    if not isinstance(entry, Mapping):
        raise LaunchDirFormatError(f"an event range must be an object, got {entry!r:.120}")
    values: dict[str, Any] = {}
    for key, kind in _RANGE_KEYS.items():
        if key not in entry:
            raise LaunchDirFormatError(f"event range {entry.get('eventRangeID')!r} has no {key}")
        try:
            values[key] = kind(entry[key])
        except (TypeError, ValueError):
            raise LaunchDirFormatError(f"event range field {key}={entry[key]!r:.60} is not a {kind.__name__}") from None
    extra = {key: value for key, value in entry.items() if key not in _RANGE_KEYS}
    return EventRange(
        event_range_id=values["eventRangeID"],
        start_event=values["startEvent"],
        last_event=values["lastEvent"],
        lfn=values["LFN"],
        guid=values["GUID"],
        scope=values["scope"],
        extra=extra,
    )


def _holds(document: Any, key: str) -> bool:
    return isinstance(document, dict) and key in document


def dump_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    """What makes an ``event_status.dump.json`` entry distinct: a file by its path and range; a status without a
    file by its range and status (a newer status of a range Harvester holds in ``.read`` is still added)."""
    path = entry.get("path")
    if path:
        return str(path), str(entry.get("eventRangeID")), ""
    return "", str(entry.get("eventRangeID")), str(entry.get("eventStatus"))


class HarvesterEventRanges:
    """Event ranges through Harvester's files (implements :class:`~pilotlib.panda.base.EventRangeSource`).

    ``get_event_ranges`` first takes ranges Harvester already placed for the job; otherwise it adds the job's request
    to the request file, waits (at most ``timeout``; ``stop`` ends the wait) for the answer and takes the job's
    ranges out of it, asking again when Harvester removed the request without answering the job. More ranges than
    asked for are kept and handed out by the next calls. ``update_event_ranges`` merges the statuses into the job's
    ``event_status.dump.json``. Each step is safe with other sources (threads, processes) on the same access point;
    see the module.
    """

    def __init__(
        self,
        files: HarvesterFiles,
        *,
        timeout: float = 600.0,
        poll_interval: float = 0.5,
        stop: StopSignal | None = None,
    ) -> None:
        """Create the source.

        Args:
            files: the access point and file names.
            timeout: seconds to wait for Harvester's answer to a request.
            poll_interval: seconds between looks at the access point.
            stop: set it to make a waiting call return (with no ranges) at once.
        """
        self._files = files
        self._timeout = timeout
        self._interval = poll_interval
        self._stop: StopSignal = stop or Stop()
        self._surplus: dict[int, list[EventRange]] = defaultdict(list)
        self._lock = threading.Lock()

    def get_event_ranges(self, job: Job, n_ranges: int) -> Sequence[EventRange]:
        """Return up to ``n_ranges`` ranges for ``job``; empty when Harvester has none left or ``stop`` is set.

        Raises:
            LaunchDirTimeoutError: Harvester did not answer before the deadline (EXCEEDEDMAXWAITTIME).
            LaunchDirFormatError: the answer holds a malformed event range (CONVERSIONFAILURE).
            LaunchDirFileError: a file can not be written (FILEHANDLINGFAILURE).
        """
        if n_ranges <= 0:
            return ()
        with self._lock:
            if not self._surplus[job.panda_id]:
                placed = self._take(job.panda_id, n_ranges)
                if placed is None:
                    placed = self._ask(job, n_ranges)
                self._surplus[job.panda_id].extend(placed)
            ranges = self._surplus[job.panda_id][:n_ranges]
            del self._surplus[job.panda_id][:n_ranges]
        log.info("got event ranges panda_id=%s count=%d", job.panda_id, len(ranges))
        return tuple(ranges)

    def _answer_path(self) -> Path:
        return self._files.worker_path(self._files.event_ranges)

    def _request_path(self) -> Path:
        return self._files.worker_path(self._files.event_request)

    def _take(self, panda_id: int, n_ranges: int) -> list[EventRange] | None:
        """Take up to ``n_ranges`` of this job's ranges out of a complete answer file, leaving the rest (for the
        other ranks of the same job) and the other jobs' ranges; None when there are none for the job (the file is
        locked only when it holds the job). An empty list, Harvester's "no ranges left", is left in place for every
        rank of the job to see, and taken as such."""
        path, key = self._answer_path(), str(panda_id)
        if not _holds(read_json(path), key):
            return None
        taken: list[list[EventRange]] = []

        def take(document: Any) -> Any:
            taken.clear()
            if not _holds(document, key):
                return Verdict.KEEP
            entries = document[key]
            if not isinstance(entries, list):
                raise LaunchDirFormatError(f"{path.name}: the ranges of {panda_id} are not a list")
            taken.append([_event_range(entry) for entry in entries[:n_ranges]])
            if not entries:
                return Verdict.KEEP
            rest = {k: v for k, v in document.items() if k != key}
            if entries[n_ranges:]:
                rest[key] = entries[n_ranges:]
            return rest or Verdict.REMOVE

        rewrite_json(path, take)
        return taken[0] if taken else None

    def _asked(self, panda_id: int) -> bool:
        return _holds(read_json(self._request_path()), str(panda_id))

    def _request(self, job: Job, n_ranges: int) -> None:
        """Add this job's request to ``worker_requestevents.json``, keeping the other jobs' requests."""
        path, key = self._request_path(), str(job.panda_id)
        body = {"pandaID": job.panda_id, "taskID": job.task_id, "jobsetID": job.jobset_id, "nRanges": n_ranges}

        def add(document: Any) -> Any:
            if _holds(document, key):
                return Verdict.KEEP  # already asked (by another rank of the same job)
            if _holds(read_json(self._answer_path()), key):
                # answered since this rank looked (another rank's request of the same job): a new request now
                # would make Harvester feed again over the answer (feed_events overwrites the file, sfm
                # l.462-466) and lose the ranges still in it
                return Verdict.KEEP
            if document is not None and not isinstance(document, dict):
                log.warning("replacing malformed event request path=%s", path)
            return {**(document if isinstance(document, dict) else {}), key: body}

        rewrite_json(path, add, "event request")
        log.info("asked harvester for event ranges panda_id=%s n_ranges=%d", job.panda_id, n_ranges)

    def _ask(self, job: Job, n_ranges: int) -> list[EventRange]:
        self._request(job, n_ranges)
        answer: list[list[EventRange]] = []

        def answered() -> bool:
            asked = self._asked(job.panda_id)  # first: Harvester writes the answer, then removes the request
            ranges = self._take(job.panda_id, n_ranges)
            if ranges is not None:
                answer.append(ranges)
                return True
            if not asked:
                log.info("event request removed without an answer for the job, asking again panda_id=%s", job.panda_id)
                self._request(job, n_ranges)
            return False

        if wait_until(answered, self._timeout, self._interval, self._stop):
            return answer[0]
        if self._stop.is_set():
            return []
        raise LaunchDirTimeoutError(f"no answer in {self._answer_path()} after {self._timeout:g} s")

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Merge the updates into each job's ``event_status.dump.json``; always accepted.

        Raises:
            LaunchDirFormatError: a field can not be written as JSON.
            LaunchDirFileError: the file can not be written.
            LaunchDirTimeoutError: another process held the file's lock too long (EXCEEDEDMAXWAITTIME).
        """
        by_job: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for update in updates:
            entry = dict(update.fields)
            entry.update(eventRangeID=update.event_range_id, eventStatus=update.status)
            by_job[update.panda_id].append(entry)
        for panda_id, entries in by_job.items():
            path = self._files.job_path(panda_id, self._files.event_status)
            merge_entries(path, {str(panda_id): entries}, dump_key)
        return UpdateAnswer(accepted=True)
