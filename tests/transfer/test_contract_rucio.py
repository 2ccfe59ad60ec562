"""The rucio copytool's own cases of the Copytool contract, against the real Rucio server.

The shared contract suite (``tests/transfer/test_contract.py``) runs ``rucio`` like every other copytool; these are
the cases only Rucio has: a batch mixing good and missing files, and a Rucio server that cannot be reached.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from fixtures.rucio import LOCAL_RSE, RucioServer
from rucio.client import Client

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


def _closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: bound to find it free, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("direction", [Direction.STAGE_IN, Direction.STAGE_OUT], ids=["stage-in", "stage-out"])
@pytest.mark.reliability("faults", "storage",
                         "Rucio server unreachable at stage-in/out: a failed result within seconds")
def test_unreachable_server_is_a_value(rucio_server: RucioServer, tmp_path: Path, direction: Direction) -> None:
    """A Rucio server that cannot be reached (a real address where nothing listens: the connection is refused) gives
    a failed result with the direction's code (STAGEINFAILED / STAGEOUTFAILED) naming the failure, not an
    exception, and within seconds (the client's own retries included)."""
    url = f"http://127.0.0.1:{_closed_port()}"

    def unreachable() -> Client:
        return Client(rucio_host=url, auth_host=url, account="root", auth_type="userpass",
                      creds={"username": "ddmlab", "password": rucio_server.password})

    (tmp_path / "f").write_bytes(b"data")
    request = TransferRequest(lfn="f", direction=direction, source="s:f" if direction is Direction.STAGE_IN else "f",
                              destination="f" if direction is Direction.STAGE_IN else "", scope=rucio_server.scope,
                              ddmendpoint=LOCAL_RSE)
    started = time.monotonic()
    (result,) = RucioCopytool(client_factory=unreachable).transfer([request], tmp_path)
    code = ErrorCode.STAGEINFAILED if direction is Direction.STAGE_IN else ErrorCode.STAGEOUTFAILED
    assert result.error_code is code, result.error
    assert "Connection refused" in str(result.error) and "127.0.0.1" in str(result.error)
    assert time.monotonic() - started < 30
