"""End to end: the payload monitors end a job with their code, and the log is staged out all the same.

Small limits from the command line (``--looping-limit``, ``--memory-limit``) keep each test to a few seconds; the
payload runner, its monitors, the local PanDA server and the ``cp`` copytool are the real ones.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.transfer.paths import deterministic_path

from .helpers import final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes MONITOR_QUEUE (active; copytools and places from the command line)."""
    panda_server.add_queue("MONITOR_QUEUE", {"nickname": "MONITOR_QUEUE", "state": "ACTIVE", "status": "online"})


def _run(server: DevServer, tmp_path: Path, *extra: str) -> int:
    make_inputs(tmp_path / "in")
    return main(["-q", "MONITOR_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"), "--input-dir",
                 str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
                 "--heartbeat", "0.2", "--log-level", "INFO", *extra])


def _log_members(tmp_path: Path) -> list[str]:
    with tarfile.open(tmp_path / "storage" / deterministic_path("e2e", "log.tgz")) as tar:
        return tar.getnames()


def _xml_has_log(final: dict[str, object]) -> bool:
    """The final update's ``xml`` reports the log file (it was staged out)."""
    return "log.tgz" in json.loads(str(final["xml"]))


def test_looping_payload_fails_with_loopingjob_and_the_log_is_staged_out(
    panda_server: DevServer, tmp_path: Path
) -> None:
    """A payload that writes nothing for longer than the looping limit (2 s here) is killed; the job fails with
    LOOPINGJOB (1150), and the log tarball (with the payload's stdout) reaches storage."""
    panda_server.add_job(job_definition(8201, sleep=120))

    assert _run(panda_server, tmp_path, "--looping-limit", "2") == 0

    final = final_update(panda_server.updates(8201))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.LOOPINGJOB
    assert "modified" in str(final["pilotErrorDiag"])
    assert any(name.endswith("payload.stdout") for name in _log_members(tmp_path))
    assert _xml_has_log(final)


def test_memory_breach_fails_with_payloadexceedmaxmem_and_the_log_is_staged_out(
    panda_server: DevServer, tmp_path: Path
) -> None:
    """A payload whose PSS goes above the memory limit (150 MiB held, 50 MiB allowed) is killed; the job fails with
    PAYLOADEXCEEDMAXMEM (1235) and the log is staged out."""
    panda_server.add_job(job_definition(8202, env=f"HOG_MB=150 PY={sys.executable}"))

    assert _run(panda_server, tmp_path, "--memory-limit", str(50 * 1024)) == 0

    final = final_update(panda_server.updates(8202))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.PAYLOADEXCEEDMAXMEM
    assert "limit 51200 kB" in str(final["pilotErrorDiag"])
    assert any(name.endswith("payload.stdout") for name in _log_members(tmp_path))
    assert _xml_has_log(final)
