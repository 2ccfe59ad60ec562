"""What both dialects of the development server share: the request context and the state changes.

Server-side job states follow ``JobDispatcher.updateJob`` / ``pilot_api.update_job`` in panda-server: a pilot's
``finished`` or ``failed`` moves the job to ``holding`` (the server finishes it after adding the outputs),
``starting``/``running``/``transferring``/``holding`` are taken as they come. The final state the pilot reported is
kept separately so a test can ask for it. Event range updates follow ``DBProxy.updateEventRanges``
(``task_event_module.py``): the PandaID is the second part of ``<taskID>-<PandaID>-<fileID>-<processID>-<attemptNr>``,
``running``/``transferring`` answer None, ``finished``/``failed``/``fatal`` answer True, anything else False.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pilotlib.devserver._store import FINAL_STATES, Store

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
        server_status = "holding" if state in FINAL_STATES else state
        return SC_SUCCESS, self.store.record_update(panda_id, fields, server_status)

    def update_event_ranges(self, ranges: Sequence[Any]) -> tuple[list[bool | None], dict[str, str]]:
        """Keep event range updates; return the per-range answers and the commands per PandaID."""
        returns: list[bool | None] = []
        commands: dict[str, str] = {}
        for item in ranges:
            panda_id = event_range_panda_id(item.get("eventRangeID")) if isinstance(item, Mapping) else None
            status = item.get("eventStatus") if isinstance(item, Mapping) else None
            if panda_id is None or status not in _EVENT_FINAL | _EVENT_INTERMEDIATE:
                returns.append(False)
                continue
            self.store.record_event_range_update(panda_id, item)
            returns.append(True if status in _EVENT_FINAL else None)
            command = self.store.pending_command(panda_id)
            if command:
                commands[str(panda_id)] = command
        return returns, commands


def event_range_panda_id(event_range_id: object) -> int | None:
    """The PandaID inside an event range id, or None when the id is malformed."""
    parts = str(event_range_id).split("-")
    if len(parts) != 5:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None
