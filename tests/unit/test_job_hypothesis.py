"""Property-based tests of the job definition parser: valid definitions round-trip, garbage only raises PilotError."""

from __future__ import annotations

import json
import string
import urllib.parse
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotlib.errors import ErrorCode, PilotError
from pilotlib.job import Job, job_to_wire, load_job_definitions, parse_job

MODEST = settings(max_examples=200, deadline=None)

_LFN_CHARS = string.ascii_letters + string.digits + "._-:+"
lfns = st.text(_LFN_CHARS, min_size=1, max_size=40).filter(
    lambda s: ".." not in s and not s.startswith("-") and s not in (".", "NULL", "None", "none", "null")
)
words = st.text(string.ascii_letters + string.digits + "._-:/", min_size=1, max_size=30).filter(
    lambda s: s not in ("NULL", "None", "none", "null")
)
hexes = st.integers(0, 2**32 - 1).map(lambda n: f"ad:{n:08x}") | st.binary(min_size=16, max_size=16).map(
    lambda b: "md5:" + b.hex()
)


def _column(values: st.SearchStrategy[str], count: int) -> st.SearchStrategy[str | None]:
    """A comma-separated list with ``count`` entries (some NULL), or no field at all."""
    if count == 0:
        return st.none()
    entry = values | st.just("NULL")
    return st.none() | st.lists(entry, min_size=count, max_size=count).map(",".join)


@st.composite
def definitions(draw: st.DrawFn, typed: bool) -> dict[str, Any]:
    """A valid job definition: as JSON types (numbers, booleans) when ``typed``, else all strings."""
    number = (lambda n: n) if typed else str
    flag = (lambda b: b) if typed else (lambda b: "True" if b else "False")
    inputs = draw(st.lists(lfns, max_size=4, unique=True))
    outputs = draw(st.lists(lfns, max_size=3, unique=True).filter(lambda o: not set(o) & set(inputs)))
    log = draw(st.none() | lfns.filter(lambda s: s not in inputs and s not in outputs))
    out_files = outputs + ([log] if log else [])
    wire: dict[str, Any] = {"PandaID": number(draw(st.integers(1, 2**53)))}
    optional: dict[str, Any] = {
        "jobsetID": number(draw(st.integers(0, 10**9))),
        "attemptNr": number(draw(st.integers(0, 20))),
        "prodSourceLabel": draw(st.sampled_from(["managed", "user", "ptest", "rc_test2"])),
        "transformation": draw(words),
        "jobPars": draw(st.text(string.printable, max_size=60)),
        "coreCount": number(draw(st.integers(1, 256))),
        "maxWalltime": number(draw(st.integers(0, 10**6))),
        "eventService": flag(draw(st.booleans())),
        "loopingCheck": flag(draw(st.booleans())),
        "nucleus": draw(words),
        "someFutureField": draw(words),
        "inFiles": ",".join(inputs),
        "GUID": draw(_column(words, len(inputs))),
        "fsize": draw(_column(st.integers(0, 2**40).map(str), len(inputs))),
        "checksum": draw(_column(hexes, len(inputs))),
        "scopeIn": draw(_column(words, len(inputs))),
        "ddmEndPointIn": draw(_column(words, len(inputs))),
        "outFiles": ",".join(out_files),
        "scopeOut": draw(_column(words, len(outputs))),
        "ddmEndPointOut": draw(_column(words, len(out_files))),
        "destinationDblock": draw(_column(words, len(out_files))),
        "logFile": log,
        "scopeLog": draw(words) if log else None,
        "logGUID": draw(words) if log else None,
    }
    keep = draw(st.sets(st.sampled_from(sorted(optional))))
    if "inFiles" not in keep:  # the per-file columns come with the list they belong to
        keep -= {"GUID", "fsize", "checksum", "scopeIn", "ddmEndPointIn"}
    if "outFiles" not in keep:
        keep -= {"scopeOut", "ddmEndPointOut", "destinationDblock"}
    elif log:  # outFiles lists the log, so logFile must say which entry it is
        keep.add("logFile")
    wire.update({key: value for key, value in optional.items() if key in keep and value is not None})
    return wire


@MODEST
@given(definitions(typed=True) | definitions(typed=False))
def test_valid_definitions_round_trip_exactly(wire: dict[str, Any]) -> None:
    """Any valid definition, JSON-typed or all strings, parses and serialises back to the same dictionary."""
    assert job_to_wire(parse_job(wire)) == wire


@MODEST
@given(definitions(typed=False))
def test_url_encoded_definitions_round_trip(wire: dict[str, str]) -> None:
    """The legacy url-encoded form of a definition loads to a job whose wire form is that definition."""
    (job,) = load_job_definitions(urllib.parse.urlencode(wire))
    assert job_to_wire(job) == wire


@MODEST
@given(st.lists(definitions(typed=True), min_size=1, max_size=3))
def test_harvester_wrapper_loads_every_job(wires: list[dict[str, Any]]) -> None:
    """Harvester's ``{"<PandaID>": {...}}`` file gives one job per entry, each round-tripping."""
    document = {str(wire["PandaID"]): wire for wire in wires}
    jobs = load_job_definitions(json.dumps(document))
    assert [job_to_wire(job) for job in jobs] == list(document.values())


@MODEST
@given(definitions(typed=True) | definitions(typed=False))
def test_canonical_form_parses_back_to_the_same_job(wire: dict[str, Any]) -> None:
    """Without its original dictionary a job renders canonically, and that parses back to an equal job."""
    job = parse_job(wire)
    canonical = job_to_wire(attrs.evolve(job, source={}))
    assert parse_job(canonical) == job


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KNOWN = ["PandaID", "inFiles", "GUID", "fsize", "checksum", "scopeIn", "outFiles", "scopeOut", "scopeLog", "logFile",
         "logGUID", "ddmEndPointOut", "jobPars", "coreCount", "eventService", "loopingCheck", "attemptNr",
         "allowNoOutput", "taskID"]  # fmt: skip
field_text = st.sampled_from(
    ["", "NULL", "a", "a,b", "1", "1,2", "-1", "ad:1", "md5:x", "..", "a/b", "True", "x" * 300]
)


def _only_pilot_errors(call: Any, *args: Any) -> None:
    try:
        result = call(*args)
    except PilotError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert str(exc)
    else:
        assert all(isinstance(job, Job) for job in (result if isinstance(result, tuple) else (result,)))


@MODEST
@given(st.dictionaries(st.sampled_from(KNOWN) | st.text(max_size=8), json_values | field_text, max_size=10))
def test_garbage_dicts_raise_only_pilot_errors(definition: dict[str, Any]) -> None:
    """Random values for known and unknown fields give a Job or a PilotError with a code, nothing else."""
    _only_pilot_errors(parse_job, definition)


@MODEST
@given(
    st.text(max_size=200)
    | st.binary(max_size=200)
    | st.builds(json.dumps, json_values)
    | st.builds(json.dumps, st.dictionaries(st.text(max_size=8), json_values))
    | st.builds(urllib.parse.urlencode, st.dictionaries(st.sampled_from(KNOWN), field_text))
)
def test_garbage_documents_raise_only_pilot_errors(document: str | bytes) -> None:
    """Random text, bytes, JSON and url-encoded documents give jobs or a PilotError with a code, nothing else."""
    _only_pilot_errors(load_job_definitions, document)
