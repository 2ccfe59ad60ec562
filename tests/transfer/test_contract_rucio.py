"""The Copytool contract for the rucio copytool, against the real Rucio server.

Part 1's shared contract suite (``tests/transfer/test_contract*.py``) had not landed when this was written; these
are the contract's rules checked directly. Once it lands, add ``rucio`` to its parameters.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fixtures.rucio import LOCAL_RSE, RucioServer

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer import Copytool, TransferRequest, default_registry
from pilotlib.transfer.copytools.rucio import RucioCopytool

pytestmark = pytest.mark.integration


def test_registered_and_usable() -> None:
    """The ``rucio`` entry point builds a Copytool that says it is usable (rucio-clients installed)."""
    tool = default_registry().create("rucio")
    assert isinstance(tool, Copytool) and tool.name == "rucio"
    assert tool.unusable_reason() is None


def test_one_result_per_request_in_order(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A batch with good and bad requests gives one result per request, in order, without raising."""
    names = [f"c.{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    tool = RucioCopytool(client_factory=rucio_server.client)
    out = [TransferRequest(lfn=n, direction=Direction.STAGE_OUT, source=n, destination="", scope=rucio_server.scope,
                           ddmendpoint=LOCAL_RSE) for n in names]
    missing = TransferRequest(lfn="absent", direction=Direction.STAGE_OUT, source="absent", destination="",
                              scope=rucio_server.scope, ddmendpoint=LOCAL_RSE)
    results = tool.transfer([out[0], missing, out[1]], tmp_path)
    assert [r.lfn for r in results] == [names[0], "absent", names[1]]
    assert results[0].ok and results[2].ok
    assert results[1].error_code is ErrorCode.MISSINGOUTPUTFILE
    assert all(r.direction is Direction.STAGE_OUT and r.tool == "rucio" for r in results)


def test_unreachable_server_is_a_value(tmp_path: Path) -> None:
    """A Rucio server that can not be reached gives a failed result (STAGEINFAILED), not an exception."""
    def broken() -> object:
        raise ConnectionError("connection refused")

    request = TransferRequest(lfn="f", direction=Direction.STAGE_IN, source="s:f", destination="f", scope="s")
    (result,) = RucioCopytool(client_factory=broken).transfer([request], tmp_path)
    assert result.error_code is ErrorCode.STAGEINFAILED and "connection refused" in str(result.error)
