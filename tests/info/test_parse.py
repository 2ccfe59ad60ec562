"""Parsing queue and storage descriptions: typed fields, kept extras, clear errors with QUEUEDATANOTOK."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotlib.errors import ErrorCode
from pilotlib.info import (
    BadQueuedataError,
    QueueDescription,
    StorageProtocol,
    parse_queue,
    parse_storage,
    parse_storages,
)

from .conftest import load_example


def test_example_grid_queue_fields(ucore: dict[str, Any]) -> None:
    """The example grid queue parses into typed fields with pilot3's aliases and conversions."""
    q = parse_queue(ucore)
    assert q.name == "CERN-PROD_UCORE"
    assert q.resource == "CERN-PROD_UCORE"
    assert q.site == "CERN-PROD"
    assert (q.state, q.status, q.type, q.resource_type) == ("ACTIVE", "online", "unified", "GRID")
    assert q.is_active and not q.is_offline
    assert q.acopytools["read_lan"] == ("rucio", "xrdcp")
    assert q.astorages["pl"] == ("CERN-PROD_SCRATCHDISK",)
    assert tuple(q.copytools) == ("rucio", "xrdcp", "gfal")
    assert q.direct_access_lan is True and q.direct_access_wan is False
    assert (q.maxwdir, q.maxrss, q.maxtime, q.corecount) == (16384, 16000, 172800, 8)
    assert q.timefloor == 120 and q.timefloor_seconds == 7200
    assert q.es_stageout_gap == 7200
    assert dict(q.container_type) == {"pilot": "singularity", "middleware": "container"}
    assert q.params["pilot_walltime_grace"] == 10


def test_unknown_fields_are_kept_frozen(ucore: dict[str, Any]) -> None:
    """Fields the model does not type land in ``extra`` unchanged, lists as tuples, objects read-only."""
    q = parse_queue(ucore)
    assert q.extra["cloud"] == "CERN"
    assert q.extra["cmtconfig"] == "x86_64-el9-gcc13-opt"
    assert q.extra["queues"][0]["ce_flavour"] == "HTCONDOR-CE"  # type: ignore[index]
    assert "nickname" not in q.extra and "state" not in q.extra and "atlas_site" not in q.extra
    with pytest.raises(TypeError):
        q.extra["cloud"] = "US"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        q.maxwdir = 1  # type: ignore[misc]


def test_string_encoded_values_are_converted() -> None:
    """CRIC's strings for numbers and flags ("100000", "False", "None") become ints, bools and empty strings."""
    q = parse_queue(load_example("NERSC_Perlmutter.json"))
    assert q.maxwdir == 100000
    assert q.is_cvmfs is False and q.use_pcache is False
    assert q.container_options == ""
    assert q.pledgedcpu == -1


def test_defaults_for_a_minimal_description() -> None:
    """A description with only a name gets pilot3's defaults (corecount 1, allow_lan, no limits)."""
    q = parse_queue({"nickname": "Q", "corecount": 0, "maxrss": "NULL"})
    assert q == QueueDescription(name="Q")
    assert q.corecount == 1 and q.allow_lan and not q.allow_wan and q.maxrss == 0


def test_container_options_taken_from_catchall() -> None:
    """Without container_options, ``singularity_options='...'`` in catchall provides them."""
    q = parse_queue({"nickname": "Q", "catchall": "x singularity_options='-B /cvmfs --contain' y"})
    assert q.container_options == "-B /cvmfs --contain"


def test_literal_string_objects_are_decoded() -> None:
    """acopytools given as a string (JSON or a Python literal, as pilot configs write it) is decoded."""
    q = parse_queue({"nickname": "Q", "acopytools": "{'pr': ['rucio'], 'pw': 'gfal,xrdcp'}"})
    assert dict(q.acopytools) == {"pr": ("rucio",), "pw": ("gfal", "xrdcp")}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([{"nickname": "Q"}], "must be a JSON object, not list"),
        ({"state": "ACTIVE"}, "needs a name"),
        ({"nickname": "Q", "maxwdir": "lots"}, "field maxwdir='lots': expected an integer"),
        ({"nickname": "Q", "maxrss": True}, "field maxrss=True"),
        ({"nickname": "Q", "direct_access_lan": "maybe"}, "field direct_access_lan='maybe': expected a boolean"),
        ({"nickname": "Q", "acopytools": ["rucio"]}, "field acopytools=['rucio']: expected an object"),
        ({"nickname": "Q", "acopytools": {"pr": [1, 2]}}, "field acopytools.pr=[1, 2]: expected a list of names"),
        ({"nickname": "Q", "astorages": "{not a literal"}, "field astorages="),
        ({"nickname": "Q", "state": ["ACTIVE"]}, "field state=['ACTIVE']: expected a string"),
    ],
)
def test_malformed_queue_is_refused(data: object, fragment: str) -> None:
    """A description of the wrong shape raises BadQueuedataError (QUEUEDATANOTOK) naming the field."""
    with pytest.raises(BadQueuedataError) as info:
        parse_queue(data)
    assert info.value.code == ErrorCode.QUEUEDATANOTOK == 1117
    assert fragment in str(info.value)


def test_storage_description_and_protocols(ddmendpoints: dict[str, Any]) -> None:
    """A storage parses with its protocols per activity split into scheme, host, port and path."""
    s = parse_storage(ddmendpoints["CERN-PROD_DATADISK"])
    assert (s.name, s.type, s.token, s.pk) == ("CERN-PROD_DATADISK", "DATADISK", "ATLASDATADISK", 4721)
    assert s.site == "CERN-PROD"
    assert s.is_deterministic is True and s.is_active
    first = s.arprotocols["read_lan"][0]
    assert first == StorageProtocol(
        endpoint="root://eosatlas.cern.ch:1094",
        scheme="root",
        host="eosatlas.cern.ch",
        port=1094,
        path="/eos/atlas/atlasdatadisk/rucio/",
        flavour="XROOTD",
        id=2001,
    )
    assert first.url == "root://eosatlas.cern.ch:1094/eos/atlas/atlasdatadisk/rucio/"
    assert s.extra["rprotocols"]["2002"]["flavour"] == "WEBDAV"  # type: ignore[index]
    assert "arprotocols" not in s.extra


def test_all_example_storages_parse(ddmendpoints: dict[str, Any]) -> None:
    """Every example storage parses; names come from the document's keys; string flags are converted."""
    storages = parse_storages(ddmendpoints)
    assert sorted(storages) == sorted(ddmendpoints)
    assert storages["NERSC_DATADISK"].is_deterministic is True
    assert storages["CERN-PROD_ES"].is_deterministic is False
    assert storages["OLD-SITE_DATADISK"].is_active is False
    assert storages["NERSC_DATADISK"].arprotocols["write_lan"][0].port is None


def test_storage_name_from_key() -> None:
    """A storage object without ``name`` takes the name it is listed under."""
    assert parse_storage({"type": "DATADISK"}, "X_DATADISK").name == "X_DATADISK"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("text", "must be a JSON object, not str"),
        ({"type": "DATADISK"}, "needs a name"),
        ({"name": "S", "arprotocols": {"read_lan": {"endpoint": "root://h"}}}, "expected a list of protocol objects"),
        ({"name": "S", "arprotocols": {"read_lan": ["root://h"]}}, "a protocol must be an object, not str"),
        ({"name": "S", "arprotocols": {"read_lan": [{"endpoint": "root://h:port"}]}}, "bad port"),
        # found by the fuzzing run (tests/fuzz): urlsplit raised a bare ValueError out of the parser
        ({"name": "S", "arprotocols": {"read_lan": [{"endpoint": "davs://[eos:43"}]}}, "Invalid IPv6 URL"),
        ({"name": "S", "arprotocols": {"read_lan": [{"endpoint": "eos.cern.ch"}]}}, "expected scheme://host"),
        ({"name": "S", "id": "x"}, "field S.id='x'"),
    ],
)
def test_malformed_storage_is_refused(data: object, fragment: str) -> None:
    """A storage description of the wrong shape raises BadQueuedataError (QUEUEDATANOTOK) with the facts."""
    with pytest.raises(BadQueuedataError) as info:
        parse_storage(data)
    assert info.value.code == ErrorCode.QUEUEDATANOTOK
    assert fragment in str(info.value)


def test_storage_document_must_be_an_object() -> None:
    """``ddmendpoints.json`` must be an object of storages by name."""
    with pytest.raises(BadQueuedataError, match="by name, not list"):
        parse_storages([{"name": "S"}])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
_fields = st.sampled_from(
    ["nickname", "state", "maxwdir", "corecount", "acopytools", "astorages", "copytools", "params",
     "direct_access_lan", "container_type", "catchall", "timefloor", "other"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_fields, _json, max_size=6))
def test_parse_queue_never_raises_anything_else(data: dict[str, Any]) -> None:
    """Whatever JSON arrives, parse_queue returns a description or raises BadQueuedataError: nothing else."""
    try:
        parse_queue(data)
    except BadQueuedataError as exc:
        assert exc.code == ErrorCode.QUEUEDATANOTOK


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "id", "type", "is_deterministic", "arprotocols", "x"]), _json))
def test_parse_storage_never_raises_anything_else(data: dict[str, Any]) -> None:
    """Whatever JSON arrives, parse_storage returns a description or raises BadQueuedataError: nothing else."""
    try:
        parse_storage(data, "S")
    except BadQueuedataError as exc:
        assert exc.code == ErrorCode.QUEUEDATANOTOK
