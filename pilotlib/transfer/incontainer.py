"""Transfers run inside a middleware container: the request and results files, and the entry point that runs there.

When the copytool a queue names is not usable on the node (its library or command is missing) the pilot runs the
copy inside the queue's middleware image (:class:`pilotlib.containers.middleware.ContainerCopytool`), as pilot3
does with its stage-in and stage-out scripts (``pilot/util/middleware.py`` ``containerise_middleware``: the file
data in a JSON file, the per-file status and error codes read back from another). Inside the container::

    python -m pilotlib.transfer.incontainer REQUEST.json RESULTS.json

reads the copytool's name, its options, the work directory and the :class:`~pilotlib.transfer.base.TransferRequest`
s, runs them with that copytool (built from the image's installed ``pilotlib.copytools``, with the container's
environment as its base environment) and writes one result per request: lfn, size, checksum, URL, seconds and the
error's type, code and message. The pilot rebuilds each error with its code (:func:`read_results`).

No secret is ever written to the request file (it lies in the work directory, which the log tarball packs): the
proxy and the token reach the container as files bound at their paths, named in its environment
(``X509_USER_PROXY``, ``BEARER_TOKEN_FILE``); :func:`request_text` refuses a text that would carry one.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from pilotlib._atomic import write_atomic
from pilotlib._redact import redact_text
from pilotlib.errors import Direction, ErrorCode, PilotError, TransferError
from pilotlib.transfer.base import TransferRequest, TransferResult, failed_result
from pilotlib.transfer.errors import CopytoolUnavailableError
from pilotlib.transfer.registry import default_registry

__all__ = ["FORMAT", "ContainerBatch", "error_from", "main", "read_request", "read_results", "request_text",
           "results_text", "run_batch"]

log = logging.getLogger(__name__)

#: The files' format version (both files carry it; another is refused).
FORMAT = 1
_ENTRY = "pilotlib.transfer.incontainer"
_CODES = {str(int(code)): code for code in ErrorCode}


@attrs.frozen
class ContainerBatch:
    """What the request file holds: the copytool by name, its options, the work directory and the requests."""

    tool: str
    workdir: Path = attrs.field(converter=Path)
    requests: tuple[TransferRequest, ...]
    options: Mapping[str, object] = attrs.field(factory=dict)


def _request_record(request: TransferRequest) -> dict[str, object]:
    record = attrs.asdict(request)
    record["direction"] = request.direction.value
    record["checksum"] = list(request.checksum) if request.checksum else None
    return record


def request_text(batch: ContainerBatch) -> str:
    """The request file's text.

    Raises:
        TransferError: an option is not JSON, or the text would carry a secret (a token in a URL, a password):
            nothing is written (the direction is the first request's).
    """
    direction = batch.requests[0].direction if batch.requests else Direction.STAGE_IN
    body = {"format": FORMAT, "tool": batch.tool, "workdir": str(batch.workdir), "options": dict(batch.options),
            "requests": [_request_record(r) for r in batch.requests]}
    try:
        text = json.dumps(body, indent=1, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TransferError(f"copytool {batch.tool} options cannot go to a middleware container: {exc}",
                            direction) from exc
    if redact_text(text) != text:
        raise TransferError(f"the {batch.tool} request for the middleware container would carry a secret "
                            f"({redact_text(text)[:300]}): not written", direction)
    return text


def _checksum(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise TypeError(f"a checksum is [type, value], not {value!r}")
    return (str(value[0]), str(value[1]))


def _request_of(record: Mapping[str, object]) -> TransferRequest:
    size = record.get("filesize")
    return TransferRequest(
        lfn=str(record["lfn"]), direction=Direction(record["direction"]), source=str(record["source"]),
        destination=str(record["destination"]), scope=str(record.get("scope", "")),
        filesize=None if size is None else int(str(size)), checksum=_checksum(record.get("checksum")),
        ddmendpoint=str(record.get("ddmendpoint", "")), guid=str(record.get("guid", "")),
        timeout=float(str(record.get("timeout", 400.0))))


def _loaded(path: Path) -> dict[str, object]:
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"{path} is not a format {FORMAT} file")
    return body


def read_request(path: Path) -> ContainerBatch:
    """The batch of a request file.

    Raises:
        OSError: it cannot be read. ValueError: it is not a request file (bad JSON, a field missing or wrong).
    """
    body = _loaded(path)
    try:
        records = body["requests"]
        options = body.get("options") or {}
        if not isinstance(records, list) or not isinstance(options, dict):
            raise TypeError("requests must be a list and options an object")
        return ContainerBatch(str(body["tool"]), str(body["workdir"]), tuple(_request_of(r) for r in records),
                              options)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: bad request: {exc!r}") from exc


def _error_record(error: PilotError | None) -> dict[str, object] | None:
    if error is None:
        return None
    return {"type": type(error).__name__, "code": int(error.code), "message": error.message}


def results_text(results: Sequence[TransferResult]) -> str:
    """The results file's text: one record per result (the error as its type's name, its code and message)."""
    records = [{"lfn": r.lfn, "direction": r.direction.value, "tool": r.tool, "url": r.url,
                "local_path": r.local_path, "size": r.size, "checksum": list(r.checksum) if r.checksum else None,
                "seconds": r.seconds, "ddmendpoint": r.ddmendpoint, "guid": r.guid, "error": _error_record(r.error)}
               for r in results]
    return json.dumps({"format": FORMAT, "results": records}, indent=1, sort_keys=True)


def _transfer_errors(base: type[TransferError] = TransferError) -> Iterator[type[TransferError]]:
    yield base
    for sub in base.__subclasses__():
        yield from _transfer_errors(sub)


def _takes_message_and_direction(cls: type[TransferError]) -> bool:
    names = list(inspect.signature(cls).parameters)
    return names[:2] == ["message", "direction"]


def error_from(record: Mapping[str, object], direction: Direction) -> TransferError:
    """The error of a result record, rebuilt: the transfer error type of that name (a
    :class:`~pilotlib.errors.TransferError` otherwise) with the record's message and code."""
    name, message = str(record.get("type", "")), str(record.get("message", ""))
    cls = next((c for c in _transfer_errors() if c.__name__ == name and _takes_message_and_direction(c)),
               TransferError)
    error = cls(message, direction)
    code = _CODES.get(str(record.get("code")))
    if code is None:  # a number PanDA does not know: the type's own code stands
        log.warning("middleware result with an unknown error code code=%s type=%s", record.get("code"), name)
    else:
        error.code = code
    return error


def _result_of(record: Mapping[str, object]) -> TransferResult:
    direction = Direction(record["direction"])
    error = record.get("error")
    size = record.get("size")
    return TransferResult(
        lfn=str(record["lfn"]), direction=direction, tool=str(record.get("tool", "")), url=str(record.get("url", "")),
        local_path=str(record.get("local_path", "")), size=None if size is None else int(str(size)),
        checksum=_checksum(record.get("checksum")), seconds=float(str(record.get("seconds", 0.0))),
        error=error_from(error, direction) if isinstance(error, dict) else None,
        ddmendpoint=str(record.get("ddmendpoint", "")), guid=str(record.get("guid", "")))


def read_results(path: Path, requests: Sequence[TransferRequest]) -> list[TransferResult]:
    """The results of a results file, one per request in order.

    Raises:
        OSError: it cannot be read. ValueError: it is not a results file, or its results are not one per request
            (by lfn, in order).
    """
    body = _loaded(path)
    records = body.get("results")
    if not isinstance(records, list):
        raise ValueError(f"{path}: no results")
    try:
        results = [_result_of(record) for record in records]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: bad result: {exc!r}") from exc
    if [r.lfn for r in results] != [r.lfn for r in requests]:
        raise ValueError(f"{path}: results for {[r.lfn for r in results]}, asked for {[r.lfn for r in requests]}")
    return results


def run_batch(batch: ContainerBatch, base_env: Mapping[str, str]) -> list[TransferResult]:
    """Run the batch with its copytool (from the installed ``pilotlib.copytools``, ``base_env`` its base
    environment); one result per request. A copytool that cannot be made or is unusable here fails every request
    (its reason in the message)."""
    if not batch.requests:
        return []
    direction = batch.requests[0].direction
    try:
        tool = default_registry(base_env).create(batch.tool, direction, **dict(batch.options))
        reason = tool.unusable_reason()
    except PilotError as exc:
        return [failed_result(r, batch.tool, exc) for r in batch.requests]
    if reason is not None:
        error = CopytoolUnavailableError(f"copytool {batch.tool} unusable in the middleware container: {reason}",
                                         direction, reason)
        return [failed_result(r, batch.tool, error) for r in batch.requests]
    return tool.transfer(batch.requests, batch.workdir)


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """``REQUEST.json RESULTS.json``: run the request, write the results; 0 once they are written, 2 when the
    request cannot be read (no results then)."""
    if len(argv) != 2:
        print(f"usage: python -m {_ENTRY} REQUEST.json RESULTS.json", file=sys.stderr)
        return 2
    request, results = Path(argv[0]), Path(argv[1])
    try:
        batch = read_request(request)
    except (OSError, ValueError) as exc:
        print(f"{_ENTRY}: cannot read {request}: {exc}", file=sys.stderr)
        return 2
    log.info("middleware transfer start tool=%s files=%d", batch.tool, len(batch.requests))
    write_atomic(results, results_text(run_batch(batch, environ)), fsync=False)
    return 0


if __name__ == "__main__":  # the entry point inside the container (an app: it reads argv and the environment)
    import os

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main(sys.argv[1:], dict(os.environ)))
