"""A storage URL's token never reaches a log line, an error or the command line of a process the pilot starts.

Real copytools against the real XRootD server (root:// and its HTTP door): the real ``xrdcp`` command, and a site's
``lsm-get`` (a script that records its own ``/proc/self/cmdline``, as any process on the node could read it).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.xrootd import XRootDServer

from pilotlib.errors import Direction, ErrorCode
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.transfer import CopytoolRegistry, TransferRequest
from pilotlib.transfer.copytools import LsmCopytool, XrdcpCopytool
from pilotlib.transfer.replicas import Replica, StaticReplicaSource
from pilotlib.transfer.report import output_file_info
from pilotlib.transfer.stagein import StageIn

pytestmark = pytest.mark.integration


@pytest.fixture
def token() -> str:
    """A fresh token text, so that finding it anywhere means it leaked from this test."""
    return "tok" + secrets.token_hex(12)


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class CmdlineSampler:
    """Reads every process's ``/proc/<pid>/cmdline`` in a loop, as another user of the node could."""

    def __init__(self, needle: str, program: str) -> None:
        self.needle, self.program = needle, program
        self.leaks: list[str] = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    line = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if self.needle in line:
                    self.leaks.append(line)
                if self.program in line:
                    self.seen += 1
            time.sleep(0.01)

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def sampler(token: str) -> Iterator[CmdlineSampler]:
    """Samples command lines for the token while an ``xrdcp`` runs."""
    with CmdlineSampler(token, "xrdcp") as running:
        yield running


def test_xrdcp_command_on_a_hanging_storage_never_shows_the_token(
    blackhole_port: int, sampler: CmdlineSampler, token: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tokenised root:// URL (``?authz=<token>``) on a storage that hangs: the real ``xrdcp`` runs for seconds
    and times out (STAGEINTIMEOUT); no ``/proc/<pid>/cmdline`` sampled meanwhile holds the token (the command got it
    in ``BEARER_TOKEN``, as rucio-clients 41.5.1 hands a token to xrdcp: ``rse/protocols/xrootd.py:29-31``,
    ``_auth_env``), and neither the error nor the log does. pilot3 puts the URL on the command line
    (PanDAWMS/pilot3 a090538b ``pilot/copytool/xrdcp.py:133``, ``f'{copy_command} -np -f {coption} {source}
    {destination}'``)."""
    url = f"root://127.0.0.1:{blackhole_port}//data/in.root?authz={token}&xrd.wantprot=unix"
    request = TransferRequest(lfn="in.root", direction=Direction.STAGE_IN, source=url, destination="in.root",
                              timeout=3)
    with caplog.at_level(logging.DEBUG):
        (result,) = XrdcpCopytool(backend="command", connection_window=2).transfer([request], tmp_path)
    assert result.error is not None and result.error_code is ErrorCode.STAGEINTIMEOUT
    assert sampler.seen > 0  # the sampler did see xrdcp running
    assert sampler.leaks == []
    assert token not in str(result.error) and token not in result.error.diagnostics
    assert token not in caplog.text


def test_xrdcp_command_gets_the_token_in_its_environment(
    xrootd_server: XRootDServer, token: str, tmp_path: Path
) -> None:
    """A file behind a tokenised root:// URL is copied by the real ``xrdcp``; the command's own command line (read
    from ``/proc/self/cmdline`` by a wrapper that then execs xrdcp) has the URL without its ``authz``, and the
    token arrives as ``BEARER_TOKEN``, where the XRootD client's ztn protocol and rucio-clients 41.5.1
    (``rse/protocols/xrootd.py:29-31``) put it."""
    data = b"token-protected\n"
    xrootd_server.put("secret/in.root", data)
    record = tmp_path / "record"
    record.mkdir()
    wrapper = _script(tmp_path / "xrdcp-wrapper", f"""#!/bin/sh
tr '\\0' ' ' < /proc/$$/cmdline > {record}/cmdline
printf %s "$BEARER_TOKEN" > {record}/token
exec xrdcp "$@"
""")
    url = xrootd_server.root_url("secret/in.root") + f"?authz={token}"
    work = tmp_path / "work"
    work.mkdir()
    request = TransferRequest(lfn="in.root", direction=Direction.STAGE_IN, source=url, destination="in.root",
                              checksum=("adler32", _adler(data)), timeout=30)
    (result,) = XrdcpCopytool(backend="command", command=str(wrapper)).transfer([request], work)
    assert result.ok, result.error
    assert (work / "in.root").read_bytes() == data
    cmdline = (record / "cmdline").read_text()
    assert xrootd_server.root_url("secret/in.root") in cmdline and token not in cmdline and "authz" not in cmdline
    assert (record / "token").read_text() == token


_LSM_GET = """#!{python}
import os, sys, urllib.request
args = sys.argv[1:]
with open({record!r} + "/cmdline", "wb") as out:
    out.write(open("/proc/self/cmdline", "rb").read())
with open({record!r} + "/token", "w") as out:
    out.write(os.environ.get("BEARER_TOKEN", ""))
source, destination = args[-2], args[-1]
request = urllib.request.Request(source, headers={{"Authorization": "Bearer " + os.environ.get("BEARER_TOKEN", "")}})
try:
    with urllib.request.urlopen(request, timeout=20) as answer, open(destination, "wb") as out:
        out.write(answer.read())
except Exception as exc:
    print(f"lsm-get: cannot read {{source}} (Authorization: Bearer {{os.environ.get('BEARER_TOKEN')}}): {{exc}}",
          file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture
def lsm(tmp_path: Path) -> tuple[LsmCopytool, Path]:
    """A site ``lsm-get`` (PanDAWMS/pilot3 ``pilot/copytool/lsm.py:312-316``: ``lsm-get SOURCE DESTINATION``) that
    records its own ``/proc/self/cmdline`` and ``BEARER_TOKEN``, then reads the URL over HTTP."""
    record = tmp_path / "record"
    record.mkdir()
    get = _script(tmp_path / "lsm-get", _LSM_GET.format(python=sys.executable, record=str(record)))
    return LsmCopytool(get_command=str(get), put_command=str(get)), record


def test_lsm_get_reads_a_tokenised_webdav_url_without_the_token_on_its_command_line(
    xrootd_server: XRootDServer, lsm: tuple[LsmCopytool, Path], token: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``lsm-get`` copies a file from the WebDAV door given ``http://...?authz=<token>``: its ``/proc/self/cmdline``
    is ``lsm-get <URL without the token> <destination>`` (pilot3 ``pilot/copytool/lsm.py:312-316`` would pass the
    URL whole), the token comes in ``BEARER_TOKEN``, and the start line logged by stage-in (pilot3 logs the TURL:
    ``pilot/copytool/lsm.py:119``) shows ``authz=***``."""
    tool, record = lsm
    data = b"via the webdav door\n"
    xrootd_server.put("lsm/in.root", data)
    url = xrootd_server.http_url("lsm/in.root") + f"?authz={token}"
    spec = FileSpec(lfn="in.root", kind=FileKind.INPUT, scope="mc23", filesize=len(data), adler32=_adler(data))
    registry = CopytoolRegistry(entry_points=[], factories={"lsm": lambda: tool})
    work = tmp_path / "work"
    work.mkdir()
    stage = StageIn(registry, ["lsm"], work, replicas=StaticReplicaSource(
        {"mc23:in.root": (Replica(ddmendpoint="SITE_DATADISK", url=url),)}))
    with caplog.at_level(logging.DEBUG):
        (result,) = stage.run(Job(panda_id=7, inputs=(spec,)))
    assert result.ok, result.error
    assert (work / "in.root").read_bytes() == data
    argv = (record / "cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[-2:] == [xrootd_server.http_url("lsm/in.root").encode(), str(work / "in.root").encode()]
    assert (record / "token").read_text() == token
    assert token not in caplog.text and f"{xrootd_server.http_url('lsm/in.root')}?authz=***" in caplog.text


def test_lsm_get_stderr_echoing_the_token_is_redacted(
    xrootd_server: XRootDServer, lsm: tuple[LsmCopytool, Path], token: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing ``lsm-get`` whose stderr echoes its URL and ``Authorization: Bearer <token>`` (pilot3 logs a
    copytool's stderr as it is: ``pilot/copytool/lsm.py:124``): the failure (STAGEINFAILED: an HTTP 404 text is none
    of pilot3's ``pilot/copytool/common.py`` cases) and every log line show ``Bearer ***``, never the token; the
    command line did not hold it either."""
    tool, record = lsm
    url = xrootd_server.http_url("lsm/missing.root") + f"?access_token={token}"
    request = TransferRequest(lfn="missing.root", direction=Direction.STAGE_IN, source=url,
                              destination="missing.root", timeout=30)
    with caplog.at_level(logging.DEBUG):
        (result,) = tool.transfer([request], tmp_path)
    assert result.error is not None and result.error_code is ErrorCode.STAGEINFAILED
    assert "Bearer ***" in str(result.error) and token not in str(result.error)
    assert token not in result.error.diagnostics and token not in caplog.text
    assert token.encode() not in (record / "cmdline").read_bytes()


def test_a_presigned_url_is_never_given_to_a_command(
    lsm: tuple[LsmCopytool, Path], token: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A presigned S3 URL's signature can not be moved into the environment: ``lsm-get`` is not started at all (no
    command line recorded), the file fails with STAGEINFAILED and the error shows ``X-Amz-Signature=***``."""
    tool, record = lsm
    url = ("https://s3.example.org/bucket/in.root?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           f"&X-Amz-Credential={token}%2F20261201&X-Amz-Signature={token}")
    request = TransferRequest(lfn="in.root", direction=Direction.STAGE_IN, source=url, destination="in.root")
    with caplog.at_level(logging.DEBUG):
        (result,) = tool.transfer([request], tmp_path)
    assert result.error is not None and result.error_code is ErrorCode.STAGEINFAILED
    assert "X-Amz-Signature=***" in str(result.error) and token not in str(result.error)
    assert token not in caplog.text
    assert not (record / "cmdline").exists()


def test_lsm_put_gets_the_destination_without_its_token(token: str, tmp_path: Path) -> None:
    """Stage-out through ``lsm-put --size N --checksum adler32:V [--guid G] SRC DST`` (PanDAWMS/pilot3
    ``pilot/copytool/lsm.py:312-318``) to a tokenised ``davs://`` destination: the command's own
    ``/proc/self/cmdline`` ends with the destination without ``authz``, the token is in its ``BEARER_TOKEN``, and
    the final update's ``surl`` shows ``authz=***``."""
    record = tmp_path / "record"
    record.mkdir()
    put = _script(tmp_path / "lsm-put", f"""#!{sys.executable}
import os
open({str(record)!r} + "/cmdline", "wb").write(open("/proc/self/cmdline", "rb").read())
open({str(record)!r} + "/token", "w").write(os.environ.get("BEARER_TOKEN", ""))
""")
    work = tmp_path / "work"
    work.mkdir()
    (work / "out.root").write_bytes(b"output")
    url = f"davs://se.example.org:443/atlas/out.root?authz={token}"
    request = TransferRequest(lfn="out.root", direction=Direction.STAGE_OUT, source="out.root", destination=url,
                              guid="g-1", timeout=30)
    (result,) = LsmCopytool(get_command=str(put), put_command=str(put)).transfer([request], work)
    assert result.ok, result.error
    argv = (record / "cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[-1] == b"davs://se.example.org:443/atlas/out.root" and token.encode() not in b" ".join(argv)
    assert (record / "token").read_text() == token
    assert output_file_info([result])["out.root"]["surl"] == "davs://se.example.org:443/atlas/out.root?authz=***"
