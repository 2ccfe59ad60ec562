"""The ``updateEventRanges`` lists both dialects send, and what their answers mean.

Facts (panda-server ``pandaserver/taskbuffer/db_proxy_mods/task_event_module.py``, the same lines at 0.8.1 and
9cc36033): version 0 is a list of ranges ``{eventRangeID, eventStatus, ...}``; versions 1 and 2 are a list of groups
``{"zipFile": {...}, "eventRanges": [...]}`` whose every range is updated with its group's zip file (``:375-393``),
the zip file being stored once per job and name (``:509-549``: ``lfn`` and ``objstoreID`` are required, ``fsize`` is
read with ``int()``, ``adler32``, ``numEvents`` and ``pathConvention`` are optional). The answer holds one value per
range (True for a final status applied, None for a status only noted, False for a refusal), except when the server
fails midway: it then rolls the whole update back and answers the values so far plus one False (``:660-666``).
pilot3 (``pilot/eventservice/workexecutor/plugins/genericexecutor.py:93-118``) sends one group per zipped output:
``{"version": 1, "eventRanges": json.dumps([group])}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pilotlib.panda import _answers as ans
from pilotlib.panda.base import EventRangeUpdate, UpdateAnswer, ZipRecord

#: ``updateEventRanges`` versions: plain ranges, and groups of ranges with their zip file.
PLAIN, ZIPPED = 0, 1


def range_entries(updates: Sequence[EventRangeUpdate]) -> list[dict[str, Any]]:
    """The version-0 list: one ``{**fields, eventRangeID, eventStatus}`` per update."""
    return [{**update.fields, "eventRangeID": update.event_range_id, "eventStatus": update.status}
            for update in updates]


def zip_group(zip_file: ZipRecord, updates: Sequence[EventRangeUpdate]) -> dict[str, Any]:
    """One version-1 group: the zip file by its wire names and the ranges whose outputs it holds."""
    record = {"lfn": zip_file.lfn, "fsize": zip_file.fsize, "adler32": zip_file.adler32,
              "objstoreID": zip_file.objstore_id, "numEvents": zip_file.num_events,
              "pathConvention": zip_file.path_convention}
    return {"zipFile": record, "eventRanges": range_entries(updates)}


def range_answer(call: str, returns: Any, commands: Any, sent: int) -> UpdateAnswer:
    """The answer to ``sent`` range updates: accepted unless a range was refused (False); the first command, if any.

    ``returns`` and ``commands`` may be JSON text (legacy version 0) or decoded values. An answer that is not one
    value per range is the server's failure midway: nothing was applied, whatever the values say.

    Raises:
        ServerAnswerError: ``returns`` is not a list or ``commands`` not an object.
    """
    values = ans.nested(call, returns, list, "Returns")
    command, text = ans.command(next(iter(ans.nested(call, commands, dict, "Commands").values()), None))
    refused = sum(1 for value in values if value is False)
    if len(values) != sent:
        message = f"the server failed the update of {sent} event range(s) ({len(values)} answer(s)): none applied"
        return UpdateAnswer(accepted=False, command=command, command_text=text, message=message)
    message = f"{refused} event range update(s) refused" if refused else ""
    return UpdateAnswer(accepted=not refused, command=command, command_text=text, message=message)

