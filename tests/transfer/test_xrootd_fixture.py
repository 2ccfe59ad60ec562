"""The XRootD server fixture itself: serves files over root:// and http:// with adler32 checksums."""

from __future__ import annotations

import subprocess

import pytest
from fixtures.xrootd import XRootDServer


@pytest.mark.integration
def test_server_serves_and_checksums(xrootd_server: XRootDServer) -> None:
    """A file put on the storage is listed by xrdfs with the adler32 the server computes."""
    xrootd_server.put("fixture/hello.txt", b"hello")
    out = subprocess.run(
        ["xrdfs", xrootd_server.endpoint.removeprefix("root://"), "query", "checksum", "/fixture/hello.txt"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.split() == ["adler32", "062c0215"]
