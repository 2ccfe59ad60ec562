"""Selection helpers: copytools and storages per activity with fallbacks, protocols per storage and activity."""

from __future__ import annotations

from typing import Any

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.info import (
    Activity,
    NoCopytoolError,
    NoStorageError,
    NoStorageProtocolError,
    copytool_chain,
    parse_queue,
    parse_storage,
    protocol_chain,
    storage_chain,
)


def test_chains_follow_pilot3() -> None:
    """Stage-in asks read_lan then pr; outputs write_lan, pw, w; the log pl first; ES events then pw."""
    assert copytool_chain(Activity.READ) == ("read_lan", "pr", "default")
    assert storage_chain(Activity.WRITE) == ("write_lan", "pw", "w")
    assert storage_chain(Activity.LOG) == ("pl", "write_lan", "pw", "w")
    assert storage_chain(Activity.ES_EVENTS)[:2] == ("es_events", "pw")
    assert storage_chain(Activity.ES_FAILOVER)[:2] == ("es_failover", "pw")
    assert storage_chain("custom") == ("custom",)
    assert copytool_chain(["a", "b", "a"]) == ("a", "b", "default")
    assert protocol_chain("pr") == ("read_lan", "read_wan")
    assert protocol_chain(Activity.LOG) == ("write_lan", "write_wan")
    assert protocol_chain(Activity.READ_WAN) == ("read_wan",)


def test_copytools_per_activity(ucore: dict[str, Any]) -> None:
    """The first activity of the chain with copytools wins, in the queue's order."""
    q = parse_queue(ucore)
    assert q.copytools_for(Activity.READ) == ("rucio", "xrdcp")
    assert q.copytools_for("pr") == ("rucio",)
    assert q.copytools_for(Activity.WRITE) == ("rucio", "gfal")
    assert q.copytools_for(Activity.LOG) == ("rucio",)
    assert q.copytools_for(Activity.ES_EVENTS) == ("rucio",)


def test_copytools_fallbacks() -> None:
    """Missing activities fall back along the chain, then to ``default``, then to the ``copytools`` names."""
    q = parse_queue({"nickname": "Q", "acopytools": {"pw": ["gfal"], "default": ["xrdcp"]}, "copytools": {"mv": {}}})
    assert q.copytools_for(Activity.LOG) == ("gfal",)
    assert q.copytools_for(Activity.ES_FAILOVER) == ("gfal",)
    assert q.copytools_for(Activity.READ) == ("xrdcp",)
    bare = parse_queue({"nickname": "Q", "copytools": {"lsm": {"setup": "/opt/lsm"}, "mv": {}}})
    assert bare.copytools_for(Activity.READ) == ("lsm", "mv")


def test_no_copytool_is_unknowncopytool() -> None:
    """With neither acopytools nor copytools, asking for copytools raises NoCopytoolError (UNKNOWNCOPYTOOL)."""
    q = parse_queue({"nickname": "Q", "acopytools": {"pw": []}})
    with pytest.raises(NoCopytoolError) as info:
        q.copytools_for(Activity.READ)
    assert info.value.code == ErrorCode.UNKNOWNCOPYTOOL == 1323
    assert "read_lan/pr/default" in str(info.value)


def test_storages_per_activity(ucore: dict[str, Any]) -> None:
    """Storages come from astorages by activity chain; analysis outputs on unified queues have their own."""
    q = parse_queue(ucore)
    assert q.storages_for(Activity.READ) == ("CERN-PROD_DATADISK", "CERN-PROD_SCRATCHDISK")
    assert q.storages_for(Activity.WRITE) == ("CERN-PROD_DATADISK",)
    assert q.storages_for("write_lan_analysis") == ("CERN-PROD_SCRATCHDISK",)
    assert q.storages_for(Activity.LOG) == ("CERN-PROD_SCRATCHDISK",)
    assert q.storages_for(Activity.ES_EVENTS) == ("CERN-PROD_ES",)
    assert q.storages_for(Activity.ES_FAILOVER) == ("CERN-PROD_DATADISK",)
    assert q.storages_for(["nothing", "pl"]) == ("CERN-PROD_SCRATCHDISK",)


def test_no_storage_is_nostorage() -> None:
    """No storage for the activity or its fallbacks raises NoStorageError (NOSTORAGE) naming what was tried."""
    q = parse_queue({"nickname": "Q", "astorages": {"read_lan": ["A"]}})
    with pytest.raises(NoStorageError) as info:
        q.storages_for(Activity.LOG)
    assert info.value.code == ErrorCode.NOSTORAGE == 1133
    assert "pl/write_lan/pw/w" in str(info.value) and "read_lan" in str(info.value)


def test_protocol_selection(ddmendpoints: dict[str, Any]) -> None:
    """The first protocol of the first activity that has any; schemes filter and order the choice."""
    s = parse_storage(ddmendpoints["CERN-PROD_DATADISK"])
    assert s.protocol_for(Activity.READ).scheme == "root"
    assert s.protocol_for(Activity.READ, ["davs", "root"]).scheme == "davs"
    assert s.protocol_for(Activity.READ_WAN).scheme == "davs"
    assert s.protocol_for(Activity.WRITE).url == "root://eosatlas.cern.ch:1094/eos/atlas/atlasdatadisk/rucio/"
    scratch = parse_storage(ddmendpoints["CERN-PROD_SCRATCHDISK"])
    assert scratch.protocol_for(Activity.WRITE, ["davs"]).endpoint == "davs://eosatlas.cern.ch:443"


def test_no_protocol_is_nostorageprotocol(ddmendpoints: dict[str, Any]) -> None:
    """No protocol for the activity (or scheme) raises NoStorageProtocolError (NOSTORAGEPROTOCOL)."""
    s = parse_storage(ddmendpoints["CERN-PROD_ES"])
    with pytest.raises(NoStorageProtocolError) as info:
        s.protocol_for(Activity.WRITE, ["root"])
    assert info.value.code == ErrorCode.NOSTORAGEPROTOCOL == 1313
    assert "with scheme in ['root'] (has ['s3'])" in str(info.value)
    empty = parse_storage(ddmendpoints["OLD-SITE_DATADISK"])
    with pytest.raises(NoStorageProtocolError, match="no protocol for activity read_wan"):
        empty.protocol_for(Activity.READ_WAN)
