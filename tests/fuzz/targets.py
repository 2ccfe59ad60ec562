"""Fuzz targets: every parser of what another program wrote, fed arbitrary bytes.

Each target takes one input and returns normally when the parser gave a parsed object or refused the input with
its own typed error (a :class:`~pilotlib.errors.PilotError`, which carries a PanDA code; for the event-service
channel, the :class:`~pilotlib.eventservice.protocol.MessageError` the channel turns into a broken channel, CHANNEL
error code). Any other exception escapes: that is a crash.

The same targets are run by hypothesis (``tests/fuzz/test_properties.py``) and, coverage-guided, by atheris::

    .venv/bin/python tests/fuzz/targets.py job_definition -max_total_time=60 CORPUS_DIR

(``tests/fuzz/test_fuzz.py`` runs each for ``$PILOTLIB_FUZZ_SECONDS``, default 12 s, in CI).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

try:  # coverage guidance when run by atheris; plain imports under pytest
    import atheris
except ImportError:  # pragma: no cover - atheris is in the dev extra
    atheris = None

_instrumented = atheris.instrument_imports() if atheris is not None and __name__ == "__main__" \
    else contextlib.nullcontext()
with _instrumented:
    from pilotlib.errors import PilotError
    from pilotlib.eventservice.protocol import MessageError, parse_answer, parse_message
    from pilotlib.info.queue import parse_queue
    from pilotlib.info.sources import decode_document
    from pilotlib.info.storage import parse_storages
    from pilotlib.job import Job, load_job_definitions, parse_job
    from pilotlib.panda._harvester_events import HarvesterEventRanges
    from pilotlib.panda._harvester_settings import HarvesterFiles
    from pilotlib.panda._jobfile import read_job_file
    from pilotlib.panda._legacy import LegacyDialect
    from pilotlib.panda._v1 import V1Dialect
    from pilotlib.panda.base import JobRequest, JobUpdate

__all__ = ["SEEDS", "TARGETS"]

_WORK = Path(tempfile.mkdtemp(prefix="pilotlib-fuzz-"))
_NEVER = threading.Event()
_REQUEST = JobRequest(site_name="Q", queue="Q", node="wn")


def job_definition(data: bytes) -> None:
    """A job file or dispatcher job document: ``load_job_definitions``."""
    with contextlib.suppress(PilotError):
        load_job_definitions(data)


def harvester_job_file(data: bytes) -> None:
    """Harvester's job file as the launch-directory source reads it (no wait: a half-written file is final)."""
    path = _WORK / "pandaJobData.out"
    path.write_bytes(data)
    with contextlib.suppress(PilotError):
        read_job_file(path, timeout=0.0, interval=0.001, stop=_NEVER)


def harvester_event_ranges(data: bytes) -> None:
    """Harvester's event-range answer file, taken for one job."""
    files = HarvesterFiles(access_point=_WORK)
    files.worker_path(files.event_ranges).write_bytes(data)
    with contextlib.suppress(PilotError):
        HarvesterEventRanges(files, timeout=0.0, poll_interval=0.001)._take(1, 5)


class Answering:
    """A transport whose every call is answered ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def send(self, call: str, path: str, **_options: Any) -> str:
        return self.text


def dispatcher_answers(data: bytes) -> None:
    """Both dialects' answers to getJob (each job parsed as the client does), updateJob and getEventRanges."""
    text = data.decode("utf-8", errors="surrogateescape")
    transport: Any = Answering(text)
    for dialect in (V1Dialect(), LegacyDialect()):
        with contextlib.suppress(PilotError):
            for definition in dialect.get_jobs(transport, _REQUEST):
                parse_job({k: v for k, v in definition.items() if k not in ("StatusCode", "nSent")})
        with contextlib.suppress(PilotError):
            dialect.update_job(transport, JobUpdate(1, "running"))
        with contextlib.suppress(PilotError):
            dialect.get_event_ranges(transport, es_job(), 3)


def queue_and_storage(data: bytes) -> None:
    """A downloaded queue or storage description (schedconfig, ddmendpoints)."""
    with contextlib.suppress(PilotError):
        document: Mapping[str, object] = decode_document(data, "fuzz")
        with contextlib.suppress(PilotError):
            parse_queue(document.get("Q", document))
        with contextlib.suppress(PilotError):
            parse_storages(document)


def channel_messages(data: bytes) -> None:
    """A payload's message on the event-service channel, and a ranges answer as the payload's client reads it."""
    try:
        line = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return  # the channel refuses it before parsing (EventChannel._handle)
    for parse in (parse_message, parse_answer):
        with contextlib.suppress(MessageError):
            parse(line)


def es_job() -> Job:
    return parse_job({"PandaID": 1, "jobsetID": 2, "taskID": 3, "transformation": "t", "jobPars": "",
                      "eventService": "True"})


TARGETS: dict[str, Callable[[bytes], None]] = {
    "job_definition": job_definition,
    "harvester_job_file": harvester_job_file,
    "harvester_event_ranges": harvester_event_ranges,
    "dispatcher_answers": dispatcher_answers,
    "queue_and_storage": queue_and_storage,
    "channel_messages": channel_messages,
}


def _examples(pattern: str) -> list[bytes]:
    root = Path(__file__).resolve().parents[2] / "examples"
    return [path.read_bytes() for path in sorted(root.glob(pattern))]


def _seeds() -> dict[str, list[bytes]]:
    job = json.loads((Path(__file__).resolve().parents[2] / "examples/jobs/event_service.json").read_text())
    ranges = [{"eventRangeID": "1-2-3-4-5", "startEvent": 1, "lastEvent": 2, "LFN": "EVNT.root", "GUID": "G",
               "scope": "mc23"}]
    return {
        "job_definition": _examples("jobs/*.json"),
        "harvester_job_file": _examples("jobs/*.json"),
        "harvester_event_ranges": [json.dumps({"1": ranges}).encode(), b'{"1": []}'],
        "dispatcher_answers": [
            json.dumps({"success": True, "message": "", "data": {"StatusCode": 0, "jobs": [job]}}).encode(),
            b"StatusCode=0&command=NULL",
            json.dumps({"StatusCode": 0, "eventRanges": json.dumps(ranges)}).encode(),
            json.dumps({"success": True, "message": "", "data": ranges}).encode(),
        ],
        "queue_and_storage": _examples("queues/*.json"),
        "channel_messages": [b"Ready for events", b"out.root,ID:1-2-3-4-5,CPU:1,WALL:2",
                             b"ERR_ATHENAMP_PROCESS 1-2-3-4-5: failed", json.dumps(ranges).encode()],
    }


#: Inputs each target starts from: the repository's examples and the shapes of real answers.
SEEDS = _seeds()


def main(argv: list[str]) -> None:
    """``targets.py TARGET [libFuzzer options] [CORPUS_DIR]``: fuzz one target with atheris."""
    target = TARGETS[argv[1]]
    for arg in argv[2:]:
        if not arg.startswith("-"):
            for number, seed in enumerate(SEEDS[argv[1]]):
                (Path(arg) / f"seed-{number}").write_bytes(seed)
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
