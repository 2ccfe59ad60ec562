"""Size sweep: every parser's cost grows linearly with its input (no quadratic step a huge input could turn into a
hang), and an input beyond the documented bounds is refused with the parser's typed error at once.

Each parser gets inputs of n, 2n, 4n and 8n elements (input files of a job, event ranges of an answer or a
Harvester file, storages of a description, ranges on the event-service channel); the best of 3 timings of the 8n
input must stay under 24 times that of the n input (8 for linear cost, slack for a loaded 2-core machine; a
quadratic step gives 64).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.ledger import Ledger

from pilotlib.errors import ErrorCode, JobDefinitionError, PilotError
from pilotlib.eventservice.protocol import parse_answer
from pilotlib.info.storage import parse_storages
from pilotlib.job import load_job_definitions
from pilotlib.panda._v1 import V1Dialect

from .targets import Answering, es_job, harvester_event_ranges

REPO = Path(__file__).resolve().parents[2]
SIZES = (1, 2, 4, 8)
LIMIT = 24.0


def _job(n: int) -> bytes:
    """examples/jobs/multi_file.json with ``n`` times its three input files (parallel lists kept parallel)."""
    job = json.loads((REPO / "examples/jobs/multi_file.json").read_text())
    for key in _INPUT_LISTS:
        value = job[key]
        if isinstance(value, str):
            items = value.split(",")
            unique = key in ("inFiles", "GUID", "lfn")
            job[key] = ",".join(f"{item}.{k}" if unique else item for k in range(n) for item in items)
    return json.dumps(job).encode()


_INPUT_LISTS = ("inFiles", "GUID", "fsize", "checksum", "scopeIn", "realDatasetsIn", "ddmEndPointIn", "dispatchDblock",
                "prodDBlocks", "prodDBlockToken", "dispatchDBlockToken")


def _range(k: int) -> dict[str, Any]:
    return {"eventRangeID": f"1-2-3-{k}-1", "startEvent": k, "lastEvent": k, "LFN": "EVNT.root", "GUID": "G",
            "scope": "mc23"}


def _dispatcher_ranges(n: int) -> Callable[[], object]:
    text = json.dumps({"success": True, "message": "", "data": [_range(k) for k in range(n)]})
    job = es_job()
    return lambda: V1Dialect().get_event_ranges(Answering(text), job, n)  # type: ignore[arg-type]


def _storages(n: int) -> Callable[[], object]:
    one = json.loads((REPO / "examples/queues/ddmendpoints.json").read_text())
    name, storage = next(iter(one.items()))
    document = {f"{name}_{k}": {**storage, "name": f"{name}_{k}"} for k in range(n)}
    return lambda: parse_storages(document)


def _harvester_ranges(n: int) -> Callable[[], object]:
    data = json.dumps({"1": [_range(k) for k in range(n)]}).encode()
    return lambda: harvester_event_ranges(data)


def _channel(n: int) -> Callable[[], object]:
    line = json.dumps([_range(k) for k in range(n)])
    return lambda: parse_answer(line)


def _job_parse(n: int) -> Callable[[], object]:
    data = _job(n)
    return lambda: load_job_definitions(data)


SWEEPS: dict[str, tuple[str, int, Callable[[int], Callable[[], object]]]] = {
    "job definition: input files": ("job definition", 300, _job_parse),
    "dispatcher answer: event ranges": ("dispatcher answers", 1000, _dispatcher_ranges),
    "harvester file: event ranges": ("harvester files", 1000, _harvester_ranges),
    "storage descriptions: storages": ("queue and storage descriptions", 200, _storages),
    "channel: ranges handed to the payload": ("event-service channel", 2000, _channel),
}


def _best(call: Callable[[], object]) -> float:
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return min(timings)


@pytest.mark.parametrize("sweep", [
    pytest.param(name, marks=pytest.mark.reliability("bad input", "size sweep", name)) for name in SWEEPS
])
def test_cost_grows_linearly_with_the_input(sweep: str, ledger: Ledger) -> None:
    """The 8n input costs under 24 times the n input (best of 3 each)."""
    _area, base, make = SWEEPS[sweep]
    calls = {size: make(base * size) for size in SIZES}
    calls[1]()  # warm up imports and caches
    timings = {size: _best(call) for size, call in calls.items()}
    ledger.add(inputs_tried=3 * len(SIZES))
    ratio = timings[8] / timings[1]
    assert ratio < LIMIT, f"{sweep}: {timings} (8n/n = {ratio:.1f})"


@pytest.mark.reliability("bad input", "size sweep", "a document beyond the bounds")
def test_a_document_beyond_the_bounds_is_refused_at_once(ledger: Ledger) -> None:
    """A job document nested 200,000 levels deep (past the 10,000 the parser accepts, docs/guarantees.rst) is
    refused with CONVERSIONFAILURE (1302) within a second, not parsed (nor a RecursionError)."""
    data = "[" * 200_000 + "]" * 200_000
    start = time.perf_counter()
    with pytest.raises(PilotError) as refused:
        load_job_definitions(data)
    ledger.add(inputs_tried=1)
    assert time.perf_counter() - start < 1.0
    assert isinstance(refused.value, JobDefinitionError) and refused.value.code == ErrorCode.CONVERSIONFAILURE
