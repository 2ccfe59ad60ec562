"""What both dialects of the development server share: the request context and the state changes.

Server-side job states follow ``JobDispatcher.updateJob`` / ``pilot_api.update_job`` in panda-server: a pilot's
``finished`` or ``failed`` moves the job to ``holding`` (the server finishes it after adding the outputs),
``starting``/``running``/``transferring``/``holding`` are taken as they come. The final state the pilot reported is
kept separately so a test can ask for it. Event range updates follow ``DBProxy.updateEventRanges``
(``task_event_module.py``): the PandaID is the second part of ``<taskID>-<PandaID>-<fileID>-<processID>-<attemptNr>``,
``running``/``transferring`` answer None, ``finished``/``failed``/``fatal`` answer True, anything else False.

Facts from panda-server (the same lines at tag 0.8.1, the last release with the legacy dispatcher, and at 1.x HEAD
9cc36033):

- ``updateEventRanges`` version 1 and 2 (``task_event_module.py:375-393``): the list holds groups
  ``{"zipFile": {...}, "eventRanges": [...]}``; every range of a group is updated with the group's ``zipFile``; an
  element without ``eventRanges`` is a range itself. There is one answer per range.
- A final range's zip file is stored once per job and name (``task_event_module.py:509-549``, in every version): a
  new one without ``lfn`` or ``objstoreID``, or with an ``fsize`` that ``int()`` refuses, raises there, and the whole
  update is rolled back and answered with the answers so far plus one False (``:660-666``). The devserver applies
  an update in one transaction, so it fails the same way (:func:`zip_file_problem`); :meth:`Store.zip_files` holds
  the stored files.
- A range update is applied only while the job is ``sent``, ``running``, ``starting`` or ``transferring``
  (``ok_job_status``, ``task_event_module.py:403``; version 2 also while ``activated``, ``:405``); otherwise it
  answers False; an unknown PandaID answers False and
  the command ``tobekilled`` (``:492``).
- A final update of a job the pilot already finished (server status ``holding`` set by a final update) is not applied:
  ``DBProxy.updateJobStatus`` answers the command ``alreadydone`` (``job_complex_module.py:182``) and the dispatcher
  skips the outputs (``JobDispatcher.py:356`` at 0.8.1, ``api/v1/pilot_api.py:633``). In the installed 1.0.4
  package: a final state is written as ``holding`` with ``jobDispatcherErrorDiag`` None
  (``api/v1/pilot_api.py:621-625``), so a repeat finds ``holding`` -> ``holding`` with an empty diagnostic and
  gets ``alreadydone`` (``taskbuffer/db_proxy_mods/job_complex_module.py:182-190``; a ``failed`` job likewise,
  ``:162-169``); the answer is success with that command (``pilot_api.py:649-659``:
  ``{"StatusCode": 0, "command": "alreadydone"}``; legacy ``StatusCode=0&command=alreadydone``,
  ``JobDispatcher.py:339-349`` at 0.8.1) and the outputs are not added again (``pilot_api.py:662``). The repeat is
  kept apart (:meth:`Store.ignored_updates`): the job's record holds one final state. (A job already archived is no
  longer in ``jobsActive4`` and is answered ``tobekilled``, ``:474-477``; the development server does not archive
  jobs.)
- ``startTime``/``endTime`` are parsed with ``time.strptime(value, "%Y-%m-%d %H:%M:%S")``; a value in any other form
  is dropped (``JobDispatcher.py:1186-1195`` at 0.8.1, ``api/v1/pilot_api.py:553-557``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container, Mapping, Sequence
from typing import Any

import attrs

from panda_devserver._store import FINAL_STATES, Store

#: The command ``updateJob`` answers for a final update of a job already finished by the pilot.
ALREADY_DONE = "alreadydone"

#: Job states in which event range updates are applied (``ok_job_status``).
UPDATE_RANGES_STATES = frozenset({"sent", "running", "starting", "transferring"})

#: The update fields the server parses as times, and their one accepted form.
TIME_FIELDS = ("startTime", "endTime")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

SC_SUCCESS, SC_FAILED = 0, 30

log = logging.getLogger(__name__)

_EVENT_FINAL = frozenset({"finished", "failed", "fatal"})
_EVENT_INTERMEDIATE = frozenset({"running", "transferring"})


@attrs.frozen
class Outcome:
    """An HTTP answer: status, content type and body."""

    status: int
    content_type: str
    body: bytes


@attrs.frozen
class Context:
    """What a request handler needs: the store, who the client is, and the served credentials."""

    store: Store
    client_dn: str | None = None
    key_pairs: Mapping[str, str] = attrs.field(factory=dict)
    user_proxy: str | None = None

    def update_job(self, job_id: str, fields: dict[str, Any]) -> tuple[int, str | None]:
        """Keep one update (legacy field names); return (StatusCode, command)."""
        try:
            panda_id = int(job_id)
        except ValueError:
            return SC_FAILED, None
        if self.store.job_status(panda_id) is None:
            return SC_FAILED, None
        state = str(fields.get("state", ""))
        if state in FINAL_STATES and self.store.final_state(panda_id) is not None:
            self.store.record_ignored_update(panda_id, fields, ALREADY_DONE)
            return SC_SUCCESS, ALREADY_DONE
        for name in TIME_FIELDS:
            if name in fields and not _is_server_time(fields[name]):
                self.store.record_dropped_field(panda_id, name, fields[name])
        server_status = "holding" if state in FINAL_STATES else state
        return SC_SUCCESS, self.store.record_update(panda_id, fields, server_status)

    def update_event_ranges(self, ranges: Sequence[Any], version: int = 0,
                            ) -> tuple[list[bool | None], dict[str, str | None]]:
        """Keep event range updates; return the per-range answers and the commands per PandaID.

        One pass as ``DBProxy.updateEventRanges`` makes it, applied in one transaction: a zip file panda-server
        fails on (:func:`zip_file_problem`) ends the pass with nothing applied and the answers so far plus one False
        (``task_event_module.py:660-666``).
        """
        returns: list[bool | None] = []
        commands: dict[str, str | None] = {}
        updates: list[tuple[int, Mapping[str, Any]]] = []
        zip_files: dict[tuple[int, str], Mapping[str, Any]] = {}
        # what the store says about each job, read once per request: a read per range takes the store's lock
        # hundreds of times a request, each time behind every other request (seconds under 50 pilots)
        job_statuses: dict[int, str | None] = {}
        known_zips: dict[int, set[str]] = {}
        asked: set[int] = set()  # the jobs whose pending command was read
        for item in flatten_event_ranges(ranges, version):
            answer, panda_id = self._range_answer(item, version, commands, job_statuses)
            if answer is not False:
                problem = self._take_zip_file(item, panda_id, zip_files, known_zips) if answer else None
                if problem:
                    log.warning("event range update failed, none applied range=%s reason=%s",
                                item.get("eventRangeID"), problem)
                    return [*returns, False], commands
                if panda_id not in asked:
                    asked.add(panda_id)
                    command = self.store.pending_command(panda_id)
                    if command:
                        commands[str(panda_id)] = command
                updates.append((panda_id, item))
            returns.append(answer)
        self.store.record_event_range_updates(updates, zip_files)
        return returns, commands

    def _take_zip_file(self, item: Mapping[str, Any], panda_id: int,
                       zip_files: dict[tuple[int, str], Mapping[str, Any]], known: dict[int, set[str]]) -> str | None:
        """Add a final range's zip file to ``zip_files`` (new ones by PandaID and name; ``known``: the names
        already known by PandaID, read from the store once); why panda-server fails on it, or None (also when the
        range has no zip file)."""
        zip_file = item.get("zipFile")
        if zip_file is None:
            return None
        if panda_id not in known:
            known[panda_id] = set(self.store.zip_files(panda_id))
        problem = zip_file_problem(zip_file, known[panda_id])
        if problem is None:
            zip_files.setdefault((panda_id, str(zip_file["lfn"])), zip_file)
            known[panda_id].add(str(zip_file["lfn"]))
        return problem

    def _range_answer(self, item: Any, version: int, commands: dict[str, str | None],
                      job_statuses: dict[int, str | None]) -> tuple[bool | None, int]:
        """One range update's answer before its zip file (False: refused) and its PandaID (0: none);
        ``job_statuses``: the jobs' statuses read so far in this request."""
        panda_id = event_range_panda_id(item.get("eventRangeID")) if isinstance(item, Mapping) else None
        status = item.get("eventStatus") if isinstance(item, Mapping) else None
        if panda_id is None or status not in _EVENT_FINAL | _EVENT_INTERMEDIATE:
            return False, 0
        if panda_id not in job_statuses:
            job_statuses[panda_id] = self.store.job_status(panda_id)
        job_status = job_statuses[panda_id]
        if job_status is None:
            commands.setdefault(str(panda_id), "tobekilled")
            return False, panda_id
        if job_status not in UPDATE_RANGES_STATES and not (version == 2 and job_status == "activated"):
            return False, panda_id
        return (True if status in _EVENT_FINAL else None), panda_id


def zip_file_problem(zip_file: object, known_lfns: Container[str]) -> str | None:
    """Why panda-server fails on a final range's ``zipFile`` (an exception: the whole update is rolled back), or None
    when it stores the file or reuses a known one (``task_event_module.py:509-549``).

    The file is known by its ``lfn`` (within the update, ``:510-511``; among the job's files, ``:512-519``) and then
    nothing else of it is read; a new one needs ``objstoreID`` (``:540``) and an ``fsize``, if any, that ``int()``
    takes (``:530-531``); ``adler32``, ``numEvents`` and ``pathConvention`` are optional (``:534-542``).
    """
    if not isinstance(zip_file, Mapping):
        return f"zipFile is a {type(zip_file).__name__}, not an object"
    if "lfn" not in zip_file:
        return "zipFile has no lfn"
    if not isinstance(zip_file["lfn"], str | int | float):  # a list or an object cannot be looked up (:510)
        return f"zipFile lfn is a {type(zip_file['lfn']).__name__}, not a name"
    return None if str(zip_file["lfn"]) in known_lfns else _new_zip_file_problem(zip_file)


def _new_zip_file_problem(zip_file: Mapping[str, Any]) -> str | None:
    """Why panda-server fails to store a new zip file (``task_event_module.py:530-540``), or None."""
    if "objstoreID" not in zip_file:
        return "zipFile has no objstoreID"
    try:
        int(zip_file.get("fsize", 0))
    except (TypeError, ValueError):
        return f"zipFile fsize {zip_file['fsize']!r} is not a number"
    return None


def flatten_event_ranges(ranges: Sequence[Any], version: int) -> list[Any]:
    """The single range updates of an ``updateEventRanges`` list: version 0 as it is, version 1 and 2 with each
    group's ranges carrying the group's ``zipFile`` (None when the group has none)."""
    if version == 0:
        return list(ranges)
    flat: list[Any] = []
    for group in ranges:
        if isinstance(group, Mapping) and isinstance(group.get("eventRanges"), list):
            flat += [{**item, "zipFile": group.get("zipFile")} if isinstance(item, Mapping) else item
                     for item in group["eventRanges"]]
        else:
            flat.append(group)
    return flat


def _is_server_time(value: object) -> bool:
    """True when panda-server parses ``value`` as a time (``time.strptime`` with :data:`TIME_FORMAT`)."""
    if not isinstance(value, str):  # time.strptime raises TypeError: dropped as well
        return False
    try:
        time.strptime(value, TIME_FORMAT)
    except ValueError:
        return False
    return True


def event_range_panda_id(event_range_id: object) -> int | None:
    """The PandaID inside an event range id, or None when the id is malformed."""
    parts = str(event_range_id).split("-")
    if len(parts) != 5:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None
