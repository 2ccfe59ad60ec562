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

import time
from collections.abc import Mapping, Sequence
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
        """Keep event range updates; return the per-range answers and the commands per PandaID."""
        returns: list[bool | None] = []
        commands: dict[str, str | None] = {}
        for item in flatten_event_ranges(ranges, version):
            panda_id = event_range_panda_id(item.get("eventRangeID")) if isinstance(item, Mapping) else None
            status = item.get("eventStatus") if isinstance(item, Mapping) else None
            if panda_id is None or status not in _EVENT_FINAL | _EVENT_INTERMEDIATE:
                returns.append(False)
                continue
            job_status = self.store.job_status(panda_id)
            if job_status is None:
                returns.append(False)
                commands.setdefault(str(panda_id), "tobekilled")
                continue
            if job_status not in UPDATE_RANGES_STATES and not (version == 2 and job_status == "activated"):
                returns.append(False)
                continue
            self.store.record_event_range_update(panda_id, item)
            returns.append(True if status in _EVENT_FINAL else None)
            command = self.store.pending_command(panda_id)
            if command:
                commands[str(panda_id)] = command
        return returns, commands


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
