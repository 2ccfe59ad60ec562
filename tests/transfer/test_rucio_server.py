"""The Rucio server fixture: a real server answers and rucio-clients upload and download through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.rucio import LOCAL_RSE, RucioServer
from rucio.client.downloadclient import DownloadClient
from rucio.client.uploadclient import UploadClient

pytestmark = pytest.mark.integration


def test_server_upload_download_roundtrip(rucio_server: RucioServer, tmp_path: Path) -> None:
    """A file uploaded with rucio-clients lies at its hash path on the posix RSE and downloads identical."""
    src = tmp_path / "fixture.smoke.1"
    src.write_bytes(b"hello rucio\n")
    client = rucio_server.client()
    UploadClient(_client=client).upload(
        [{"path": str(src), "rse": LOCAL_RSE, "did_scope": rucio_server.scope, "register_after_upload": True}]
    )
    on_disk = rucio_server.path_of(LOCAL_RSE, rucio_server.scope, src.name)
    assert on_disk.read_bytes() == b"hello rucio\n"
    out = tmp_path / "down"
    DownloadClient(client=client).download_dids(
        [{"did": f"{rucio_server.scope}:{src.name}", "base_dir": str(out), "no_subdir": True}]
    )
    assert (out / src.name).read_bytes() == b"hello rucio\n"
