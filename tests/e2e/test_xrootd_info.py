"""End to end with the real storage and the information service: the grid pilot against the local PanDA server,
its queue and storage descriptions served by that server, inputs and outputs on the local XRootD server.

Real parts: the devserver (getJob/updateJob and ``/cache/schedconfig/<queue>.all.json``,
``/cache/ddmendpoints.json``), the information service with its cache, the ``xrdcp`` copytool against the
session's ``xrootd`` process, the payload runner, the log tarball.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from fixtures.xrootd import XRootDServer

from apps.grid_pilot.__main__ import main
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode, process_exit_code
from pilotlib.transfer.paths import deterministic_path

from .helpers import PAYLOAD, final_update, job_definition

pytestmark = pytest.mark.integration

DATA = b"input data on the storage\n"


def _queue(name: str, state: str = "ACTIVE") -> dict[str, object]:
    """A queue whose copytools come from ``acopytools`` and whose storage is XRD_DISK for every activity."""
    return {"nickname": name, "state": state, "status": "online", "maxrss": 4000, "maxwdir": 2000,
            "acopytools": {"pr": ["xrdcp"], "pw": ["xrdcp"], "pl": ["xrdcp"]},
            "astorages": {"pr": ["XRD_DISK"], "pw": ["XRD_DISK"]}}


def _storage(server: XRootDServer, base: str) -> dict[str, object]:
    """XRD_DISK: a deterministic storage on the local XRootD server under ``/<base>/``."""
    protocol = {"endpoint": server.endpoint, "path": f"/{base}/", "flavour": "XROOTD"}
    return {"name": "XRD_DISK", "type": "DATADISK", "is_deterministic": True, "state": "ACTIVE",
            "arprotocols": {"read_lan": [protocol], "write_lan": [protocol]}}


def _adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_queue_copytools_and_storages_drive_xrootd_stage_in_and_out(
    panda_server: DevServer, xrootd_server: XRootDServer, tmp_path: Path
) -> None:
    """With no --copytool, --input-dir or --output-dir, the pilot reads its queue and storage descriptions from the
    server, picks xrdcp from acopytools, reads the inputs at their deterministic path on XRD_DISK, writes the output
    and the log there; the server saw starting, running, finished with xml naming the files on the storage."""
    base = f"store-{tmp_path.name}"
    for lfn, content in (("in.dat", DATA), ("payload.sh", PAYLOAD.encode())):
        xrootd_server.put(f"{base}/{deterministic_path('e2e', lfn)}", content)
    panda_server.add_queue("XRD_QUEUE", _queue("XRD_QUEUE"))
    panda_server.add_storage("XRD_DISK", _storage(xrootd_server, base))
    definition = {**job_definition(8101, sleep=0.6, data=DATA), "ddmEndPointIn": "XRD_DISK,XRD_DISK",
                  "ddmEndPointOut": "XRD_DISK,XRD_DISK"}
    panda_server.add_job(definition)

    status = main(["-q", "XRD_QUEUE", "--url", panda_server.url, "--api", "v1", "-a", str(tmp_path / "work"),
                   "--heartbeat", "0.2"])

    assert status == 0
    states = [u["state"] for u in panda_server.updates(8101)]
    assert states[0] == "starting" and "running" in states and states[-1] == "finished"
    final = final_update(panda_server.updates(8101))
    assert int(final["pilotErrorCode"]) == 0 and panda_server.final_state(8101) == "finished"
    out = xrootd_server.local(f"{base}/{deterministic_path('e2e', 'out.dat')}")
    assert out.read_bytes() == DATA
    log_file = xrootd_server.local(f"{base}/{deterministic_path('e2e', 'log.tgz')}")
    assert log_file.stat().st_size > 0
    xml = json.loads(str(final["xml"]))
    assert xml["out.dat"]["surl"] == xrootd_server.root_url(f"{base}/{deterministic_path('e2e', 'out.dat')}")
    assert xml["out.dat"]["adler32"] == _adler32(DATA) and int(xml["out.dat"]["fsize"]) == len(DATA)
    assert xml["out.dat"]["endpoint"] == "XRD_DISK"
    assert xml["log.tgz"]["adler32"] == _adler32(log_file.read_bytes())
    assert panda_server.request_count("schedconfig") >= 1
    log_text = (tmp_path / "work" / "pilot-state" / "pilotlog.txt").read_text()
    assert "stage-in done lfn=in.dat tool=xrdcp" in log_text and "stage-out done lfn=out.dat tool=xrdcp" in log_text


def test_command_line_xrdcp_with_root_places(
    panda_server: DevServer, xrootd_server: XRootDServer, tmp_path: Path
) -> None:
    """Without storage descriptions, --copytool xrdcp reads <input-dir>/<lfn> and writes under --output-dir on the
    XRootD server; the output's adler32 on the server is the one reported in xml."""
    base = f"places-{tmp_path.name}"
    xrootd_server.put(f"{base}/in/in.dat", DATA)
    xrootd_server.put(f"{base}/in/payload.sh", PAYLOAD.encode())
    xrootd_server.put(f"{base}/out/.keep", b"")
    panda_server.add_queue("PLACES_QUEUE", {"nickname": "PLACES_QUEUE", "state": "ACTIVE", "status": "online"})
    panda_server.add_job(job_definition(8102, sleep=0.2, data=DATA))

    status = main(["-q", "PLACES_QUEUE", "--url", panda_server.url, "--api", "v1", "-a", str(tmp_path / "work"),
                   "--copytool", "xrdcp", "--input-dir", xrootd_server.root_url(f"{base}/in"),
                   "--output-dir", xrootd_server.root_url(f"{base}/out")])

    assert status == 0
    final = final_update(panda_server.updates(8102))
    assert final["state"] == "finished", final.get("pilotErrorDiag")
    stored = xrootd_server.local(f"{base}/out/{deterministic_path('e2e', 'out.dat')}").read_bytes()
    assert stored == DATA
    assert json.loads(str(final["xml"]))["out.dat"]["adler32"] == _adler32(stored)


def test_queue_not_active_refuses_to_start(
    panda_server: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A queue whose state is not ACTIVE: the pilot asks for no job, says why, and exits with
    PANDAQUEUENOTACTIVE's status."""
    panda_server.add_queue("OFF_QUEUE", _queue("OFF_QUEUE", state="DISABLED"))
    panda_server.add_job(job_definition(8103))

    status = main(["-q", "OFF_QUEUE", "--url", panda_server.url, "--api", "v1", "-a", str(tmp_path / "work")])

    assert status == process_exit_code(ErrorCode.PANDAQUEUENOTACTIVE) == 78
    assert "QueueNotActiveError code=1359: queue OFF_QUEUE is not active: state=DISABLED" in capsys.readouterr().out
    assert panda_server.request_count("getJob") == 0
    assert panda_server.updates(8103) == []


def test_queue_not_described_refuses_to_start(panda_server: DevServer, tmp_path: Path) -> None:
    """No description of the queue anywhere: the pilot asks for no job and exits with QUEUEDATA's status (71)."""
    panda_server.add_job(job_definition(8104))

    status = main(["-q", "NO_SUCH_QUEUE", "--url", panda_server.url, "--api", "v1", "-a", str(tmp_path / "work")])

    assert status == process_exit_code(ErrorCode.QUEUEDATA) == 71
    assert panda_server.request_count("getJob") == 0
