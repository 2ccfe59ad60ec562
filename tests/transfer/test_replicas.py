"""Replica listing from a real Rucio server and LAN-before-WAN sorting."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fixtures.rucio import LOCAL_RSE, REMOTE_RSE, RucioServer
from hypothesis import given
from hypothesis import strategies as st
from rucio.client.uploadclient import UploadClient

from pilotlib.errors import ErrorCode
from pilotlib.job import FileKind, FileSpec
from pilotlib.transfer.replicas import Replica, ReplicaListError, RucioReplicaSource, sort_replicas


def test_sort_lan_first_disk_only() -> None:
    """Tape replicas are dropped; the queue's storages come first, each group by priority, then listing order."""
    wan1 = Replica("FAR_DATADISK", "root://far//a", priority=1)
    tape = Replica("NEAR_TAPE", "root://tape//a", is_tape=True)
    lan2 = Replica("NEAR_DATADISK", "root://near//a", priority=2)
    lan1 = Replica("NEAR_SCRATCHDISK", "davs://near//a", priority=1)
    assert sort_replicas([wan1, tape, lan2, lan1], {"NEAR_DATADISK", "NEAR_SCRATCHDISK", "NEAR_TAPE"}) == (
        lan1, lan2, wan1)


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.booleans()), max_size=8))
def test_sort_property(items: list[tuple[str, bool]]) -> None:
    """Whatever the replicas, no LAN replica follows a WAN one and no tape replica is kept."""
    replicas = [Replica(rse, f"root://h//{i}", is_tape=tape) for i, (rse, tape) in enumerate(items)]
    ordered = sort_replicas(replicas, {"A"})
    assert all(not r.is_tape for r in ordered)
    flags = [r.ddmendpoint == "A" for r in ordered]
    assert flags == sorted(flags, reverse=True)
    assert len(ordered) == sum(1 for _, tape in items if not tape)


@pytest.mark.integration
def test_rucio_list_replicas(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A file on two RSEs is listed with one replica per RSE, each with its file:// URL at the hash path."""
    name = f"rep.{uuid.uuid4().hex[:8]}"
    (tmp_path / name).write_bytes(b"r")
    uploader = UploadClient(_client=rucio_server.client())
    for rse in (LOCAL_RSE, REMOTE_RSE):
        uploader.upload([{"path": str(tmp_path / name), "rse": rse, "did_scope": rucio_server.scope,
                          "register_after_upload": True}])
    spec = FileSpec(lfn=name, kind=FileKind.INPUT, scope=rucio_server.scope)
    found = RucioReplicaSource(rucio_server.client).list_replicas([spec])
    replicas = found[spec.did]
    assert {r.ddmendpoint for r in replicas} == {LOCAL_RSE, REMOTE_RSE}
    for replica in replicas:
        assert replica.url.endswith(str(rucio_server.path_of(replica.ddmendpoint, rucio_server.scope, name)))
        assert not replica.is_tape


@pytest.mark.reliability("faults", "storage", "Rucio unreachable while listing replicas: RUCIOLISTREPLICASFAILED")
def test_list_failure_code() -> None:
    """A Rucio server that can not be reached gives ReplicaListError with RUCIOLISTREPLICASFAILED (1322)."""
    def broken() -> object:
        raise ConnectionError("connection refused")

    spec = FileSpec(lfn="f", kind=FileKind.INPUT, scope="s")
    with pytest.raises(ReplicaListError) as info:
        RucioReplicaSource(broken).list_replicas([spec])
    assert info.value.code is ErrorCode.RUCIOLISTREPLICASFAILED


@pytest.mark.parametrize(
    "answer",
    [
        [{"name": "f", "pfns": {}}],  # no scope
        [{"scope": "s", "name": "f", "pfns": {"root://h//f": {"rse": "A", "priority": "high"}}}],
        [{"scope": "s", "name": "f", "pfns": ["root://h//f"]}],
    ],
)
def test_malformed_answer_is_a_list_error(answer: list[dict[str, object]]) -> None:
    """An answer of an unexpected shape gives ReplicaListError (1322), not a bare KeyError/ValueError."""

    class Client:
        def list_replicas(self, dids: object, **kwargs: object) -> list[dict[str, object]]:
            return answer

    spec = FileSpec(lfn="f", kind=FileKind.INPUT, scope="s")
    with pytest.raises(ReplicaListError) as info:
        RucioReplicaSource(Client).list_replicas([spec])
    assert info.value.code is ErrorCode.RUCIOLISTREPLICASFAILED
