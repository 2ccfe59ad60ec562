"""Decoding the dispatcher's answers, in both dialects, into checked Python values (or a ServerAnswerError).

Facts (panda-server): ``jobdispatcher/Protocol.py`` ``Response.encode`` url-encodes the answer unless JSON was accepted;
``StatusCode`` may arrive as an int (JSON) or a string (url-encoded); nested values (``jobs``, ``eventRanges``,
``Returns``, ``Command``) may be JSON strings inside the answer. ``api/v1/common.py`` ``generate_response`` answers
``{"success", "message", "data"}``. JSON is decoded by :func:`pilotlib._jsontext.loads`: too deep nesting is a
ServerAnswerError (retried by the transport like any answer that does not decode), and a too long integer decodes to a
marker that the job definition parser refuses naming its field (CONVERSIONFAILURE). pilot3's ``pilot/util/https.py``
``request2`` reads both forms the same way (JSON when the text is an object, else ``parse_qs``). """

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs

from pilotlib._jsontext import JsonTextError, loads
from pilotlib.panda.base import EventRange, ServerCommand
from pilotlib.panda.errors import ServerAnswerError, ServerRefusedError

#: Calls whose answers carry secrets: never quoted in errors.
SECRET_CALLS = frozenset({"getProxy", "getKeyPair", "getJob"})

log = logging.getLogger(__name__)
_NO_COMMAND = {None, "", "NULL", "None"}


def decode_legacy(call: str, text: str) -> dict[str, Any]:
    """The legacy answer as a dictionary with an int ``StatusCode``."""
    secret = call in SECRET_CALLS
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            answer = loads(stripped)
        except JsonTextError as exc:
            raise ServerAnswerError(call, exc.reason, text, secret) from None
        if not isinstance(answer, dict):
            raise ServerAnswerError(call, "JSON answer is not an object", text, secret)
    else:
        try:
            pairs = urllib.parse.parse_qsl(stripped, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ServerAnswerError(call, "neither JSON nor url-encoded", text, secret) from None
        answer = dict(pairs)
    answer["StatusCode"] = status_code(call, answer, text)
    return answer


def status_code(call: str, answer: Mapping[str, Any], text: str = "") -> int:
    """The answer's ``StatusCode`` as an int."""
    value = answer.get("StatusCode")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ServerAnswerError(call, "no StatusCode" if value is None else "StatusCode is not a number", text,
                                call in SECRET_CALLS)
    try:
        return int(value)
    except ValueError:
        raise ServerAnswerError(call, "StatusCode is not a number", text, call in SECRET_CALLS) from None


def expect_success(call: str, answer: Mapping[str, Any]) -> None:
    """Raise :class:`ServerRefusedError` unless ``StatusCode`` is 0."""
    code = int(answer["StatusCode"])
    if code != 0:
        raise ServerRefusedError(call, str(answer.get("errorDialog", "")), code)


def decode_v1(call: str, text: str) -> tuple[bool, str, Any]:
    """The v1 envelope: (success, message, data)."""
    secret = call in SECRET_CALLS
    try:
        answer = loads(text)
    except JsonTextError as exc:
        raise ServerAnswerError(call, exc.reason, text, secret) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
        raise ServerAnswerError(call, "not a {success, message, data} object", text, secret)
    message = answer.get("message")
    return answer["success"], message if isinstance(message, str) else "", answer.get("data")


def nested(call: str, value: Any, kind: type, what: str) -> Any:
    """A nested value that may be a JSON string inside the answer, checked to be of ``kind``."""
    if isinstance(value, str):
        try:
            value = loads(value)
        except JsonTextError as exc:
            raise ServerAnswerError(call, f"{what}: {exc.reason}", value[:200]) from None
    if not isinstance(value, kind):
        raise ServerAnswerError(call, f"{what} is not a {kind.__name__}")
    return value


def command(value: Any) -> tuple[ServerCommand | None, str]:
    """The back-channel command: a known :class:`ServerCommand`, or ``DEBUG_COMMAND`` with its text.

    pilot3 (``pilot/control/job.py``, ``handle_backchannel_command``): the server may send several commands comma
    separated (``debug,tobekilled``), and ``tobekilled`` wins; a text with a space (``tail -n 20 payload.stdout``) is a
    restricted debug command; ``softkill``, ``debug``, ``debugoff`` and ``nocleanup`` are modes; any other word (the
    server's ``alreadydone``, ``badattemptnr``, ...) is not a command for the pilot and is ignored with a warning.
    ``NULL`` means none.
    """
    if value in _NO_COMMAND:
        return None, ""
    text = str(value).strip()
    words = {word.strip().lower() for word in text.split(",")}
    if " " in text and "tobekilled" not in words:
        return ServerCommand.DEBUG_COMMAND, text
    for known in _PRECEDENCE:
        if known.value in words:
            return known, ""
    log.warning("unknown back-channel command ignored command=%r", text[:80])
    return None, ""


_PRECEDENCE = (
    ServerCommand.TOBEKILLED,
    ServerCommand.SOFTKILL,
    ServerCommand.DEBUGOFF,
    ServerCommand.DEBUG,
    ServerCommand.NOCLEANUP,
)


def event_range(call: str, item: Any) -> EventRange:
    """One event range ``{eventRangeID, startEvent, lastEvent, LFN, GUID, scope}``."""
    if not isinstance(item, Mapping):
        raise ServerAnswerError(call, "an event range is not an object")
    try:
        result = EventRange(
            event_range_id=str(item["eventRangeID"]), start_event=int(item["startEvent"]),
            last_event=int(item["lastEvent"]), lfn=str(item["LFN"]), guid=str(item.get("GUID", "")),
            scope=str(item.get("scope", "")),
        )
    except KeyError as exc:
        raise ServerAnswerError(call, f"an event range has no {exc.args[0]}") from None
    except (TypeError, ValueError):
        raise ServerAnswerError(call, "an event range has a non-integer startEvent/lastEvent") from None
    fields = ("eventRangeID", "startEvent", "lastEvent", "LFN", "GUID", "scope")
    extra = {key: value for key, value in item.items() if key not in fields}
    return attrs.evolve(result, extra=extra)
