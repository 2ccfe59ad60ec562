"""The copytool contract, run for every built-in copytool against real storage started by the tests.

Storage: the Debian XRootD server (root:// and its XrdHttp http:// / dav:// door) for ``xrdcp`` (library and
command), ``gfal`` and ``lsm`` (site scripts that copy with the real ``xrdcp`` command); a local folder for
``mv``/``cp``/``symlink`` (files already in place); the real Rucio server (``tests/fixtures/rucio.py``, a posix RSE)
for ``rucio``, whose "URLs" are DIDs (``scope:name``). Every backend asserts the same behaviours: download with the
right checksum, upload and read back, corrupted replica, missing file, storage down, timeout, escaping name (a
relative one, an absolute one, an output that is a symbolic link leading out of the work directory), many files in
one call. A case a backend cannot have (a local folder is never "down"; a rename never times out)
is left out of its parameters, with the reason next to the backend.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures.rucio import LOCAL_RSE, RucioServer
from fixtures.xrootd import XRootDServer, free_port

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer import Copytool, TransferRequest, default_registry
from pilotlib.transfer.copytools import (
    CpCopytool,
    GfalCopytool,
    LsmCopytool,
    MvCopytool,
    SymlinkCopytool,
    XrdcpCopytool,
)
from pilotlib.transfer.copytools.rucio import RucioCopytool

pytestmark = pytest.mark.integration


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


@dataclass
class Storage:
    """Where a backend's remote files live, and how a test reaches them."""

    url: Callable[[str], str]  # remote URL of a storage path
    put: Callable[[str, bytes], Path]  # create a file on the storage
    local: Callable[[str], Path]  # the storage-side file behind a path
    down_url: str | None = None  # a URL on a storage that is down (None: not applicable)
    hang_url: str | None = None  # a URL on a storage that never answers (None: not applicable)
    stored_url: Callable[[str], str] | None = None  # the URL an upload reports (None: the request's URL)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    """What a backend is built from: the session's servers and the test's directory."""

    xrootd: XRootDServer
    tmp: Path
    hole: int  # a port that accepts connections and never answers
    rucio: RucioServer | None = None  # only for the backends that ask for it (the server takes a minute to start)


@dataclass
class Backend:
    name: str
    make: Callable[[Ctx], Copytool]
    storage: Callable[[Ctx], Storage]
    remote: bool = True  # has a storage that can be down or hang
    needs_rucio: bool = False


def _xrootd(ctx: Ctx) -> Storage:
    server = ctx.xrootd
    return Storage(server.root_url, server.put, server.local,
                   down_url=f"root://127.0.0.1:{free_port()}//c/f",
                   hang_url=f"root://127.0.0.1:{ctx.hole}//c/f")


def _http(scheme: str) -> Callable[[Ctx], Storage]:
    def make(ctx: Ctx) -> Storage:
        server = ctx.xrootd
        return Storage(lambda p: server.http_url(p, scheme), server.put, server.local,
                       down_url=f"{scheme}://127.0.0.1:{free_port()}/c/f",
                       hang_url=f"{scheme}://127.0.0.1:{ctx.hole}/c/f")
    return make


def _gfal_root(ctx: Ctx) -> Storage:
    # Not "down"/"hang": gfal2's xrootd plugin (Debian's libXrdCl, configured only by XRD_* environment variables)
    # retries a refused connection for minutes; the copytool then reports a timeout at the request's deadline.
    # Those cases are covered for gfal on the http door and for root:// by the xrdcp backends.
    return Storage(ctx.xrootd.root_url, ctx.xrootd.put, ctx.xrootd.local)


def _folder(ctx: Ctx) -> Storage:
    root = ctx.tmp / "storage"
    root.mkdir(exist_ok=True)

    def put(path: str, data: bytes) -> Path:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    # A local folder is never "down" and never hangs.
    return Storage(lambda p: (root / p).as_uri(), put, lambda p: root / p)


LSM_GET = """#!/bin/bash
# a site's lsm-get: copy with xrdcp
export XRD_CONNECTIONRETRY=1
exec xrdcp --nopbar --force "$1" "$2" 2>&1
"""

LSM_PUT = """#!/bin/bash
# a site's lsm-put: lsm-put [--size N] [--checksum type:value] [--guid G] [-t token] SRC DST
export XRD_CONNECTIONRETRY=1
cksum=adler32
while [[ $# -gt 2 ]]; do
  case "$1" in
    --checksum) cksum="$2"; shift 2 ;;
    --size|--guid|-t) shift 2 ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
exec xrdcp --nopbar --force --cksum "$cksum" "$1" "$2" 2>&1
"""


def _rucio_name(path: str) -> str:
    return path.replace("/", ".")  # a DID name has no slash (the generic schema's name pattern)


def _rucio(ctx: Ctx) -> Storage:
    """DIDs on the Rucio server's posix RSE: ``put`` uploads through rucio-clients and registers the replica (its
    adler32 in the catalogue is the content's), ``local`` is the replica's file on the RSE."""
    server = ctx.rucio
    assert server is not None
    from rucio.client.uploadclient import UploadClient  # noqa: PLC0415 - the backend is imported only when used

    def put(path: str, data: bytes) -> Path:
        name = _rucio_name(path)
        source = ctx.tmp / "rucio-upload" / name
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        UploadClient(_client=server.client()).upload([{
            "path": str(source), "rse": LOCAL_RSE, "did_scope": server.scope, "did_name": name,
            "register_after_upload": True}])
        return server.path_of(LOCAL_RSE, server.scope, name)

    # Not "down"/"hang": a request names a DID, not a server; an unreachable Rucio server (a closed port) is
    # test_contract_rucio.py's test_unreachable_server_is_a_value.
    def local(path: str) -> Path:
        return server.path_of(LOCAL_RSE, server.scope, _rucio_name(path))

    # an upload reports the replica's PFN on the RSE (Client.list_replicas), not the DID it was asked for
    return Storage(lambda p: f"{server.scope}:{_rucio_name(p)}", put, local,
                   stored_url=lambda p: f"file://localhost{local(p)}")


def _rucio_tool(ctx: Ctx) -> Copytool:
    assert ctx.rucio is not None
    return RucioCopytool(client_factory=ctx.rucio.client)


def _lsm(ctx: Ctx) -> Copytool:
    bin_dir = ctx.tmp / "site-bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("lsm-get", LSM_GET), ("lsm-put", LSM_PUT)):
        script = bin_dir / name
        script.write_text(text)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return LsmCopytool(get_command=str(bin_dir / "lsm-get"), put_command=str(bin_dir / "lsm-put"))


BACKENDS = [
    Backend("xrdcp-python", lambda _c: XrdcpCopytool(backend="python"), _xrootd),
    Backend("xrdcp-command", lambda _c: XrdcpCopytool(backend="command"), _xrootd),
    Backend("gfal-root", lambda _c: GfalCopytool(), _gfal_root, remote=False),
    Backend("gfal-http", lambda _c: GfalCopytool(), _http("http")),
    Backend("gfal-dav", lambda _c: GfalCopytool(), _http("dav")),
    Backend("gfal-filecopy", lambda _c: GfalCopytool(stream=False), _http("http")),  # filecopy, then verify
    Backend("lsm", _lsm, _xrootd),
    Backend("mv", lambda _c: MvCopytool(), _folder, remote=False),
    Backend("cp", lambda _c: CpCopytool(), _folder, remote=False),
    Backend("symlink", lambda _c: SymlinkCopytool(), _folder, remote=False),
    Backend("rucio", _rucio_tool, _rucio, remote=False, needs_rucio=True),
]
UPLOADERS = [b for b in BACKENDS if b.name != "symlink"]  # a link is not a stage-out
REMOTE = [b for b in BACKENDS if b.remote]


@dataclass
class Env:
    tool: Copytool
    storage: Storage
    work: Path
    prefix: str


def _env(backend: Backend, request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    work = tmp_path / "work"
    work.mkdir()
    rucio = request.getfixturevalue("rucio_server") if backend.needs_rucio else None
    ctx = Ctx(request.getfixturevalue("xrootd_server"), tmp_path, request.getfixturevalue("blackhole_port"), rucio)
    return Env(backend.make(ctx), backend.storage(ctx), work, f"contract/{backend.name}/{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return _env(request.param, request, tmp_path)


@pytest.fixture(params=REMOTE, ids=lambda b: b.name)
def remote_env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return _env(request.param, request, tmp_path)


@pytest.fixture(params=UPLOADERS, ids=lambda b: b.name)
def up_env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return _env(request.param, request, tmp_path)


def get(lfn: str, url: str, checksum: str | None = None, timeout: float = 60.0) -> TransferRequest:
    return TransferRequest(lfn=lfn, direction=Direction.STAGE_IN, source=url, destination=lfn,
                           checksum=None if checksum is None else ("adler32", checksum), timeout=timeout)


def put(lfn: str, url: str, checksum: str | None = None, timeout: float = 60.0, source: str = "") -> TransferRequest:
    # ddmendpoint: the RSE a DID is written to (rucio); the URL copytools only report it
    return TransferRequest(lfn=lfn, direction=Direction.STAGE_OUT, source=source or lfn, destination=url,
                           checksum=None if checksum is None else ("adler32", checksum), timeout=timeout,
                           ddmendpoint=LOCAL_RSE)


# -- the contract -----------------------------------------------------------------------------------------------
def test_registered_and_usable(env: Env) -> None:
    """The tool is registered under its name in the entry-point group and is usable on this node."""
    assert env.tool.unusable_reason() is None
    assert type(default_registry().create(env.tool.name)) is type(env.tool)


def test_download_with_checksum(env: Env) -> None:
    """A file on the storage is staged in with its content, size, and the verified adler32 in the result."""
    data = os.urandom(300_000)
    env.storage.put(f"{env.prefix}/in.root", data)
    (result,) = env.tool.transfer([get("in.root", env.storage.url(f"{env.prefix}/in.root"), adler(data))], env.work)
    assert result.ok, result.error
    assert (env.work / "in.root").read_bytes() == data
    assert result.checksum == ("adler32", adler(data))
    assert result.size == len(data) and result.tool == env.tool.name
    assert result.local_path == str(env.work.resolve() / "in.root")


def test_upload_then_read_back(up_env: Env) -> None:
    """An output is staged out; the storage then holds the same bytes, and the result has its adler32."""
    data = os.urandom(200_000)
    (up_env.work / "out.root").write_bytes(data)
    url = up_env.storage.url(f"{up_env.prefix}/out.root")
    (result,) = up_env.tool.transfer([put("out.root", url)], up_env.work)
    assert result.ok, result.error
    assert up_env.storage.local(f"{up_env.prefix}/out.root").read_bytes() == data
    stored = up_env.storage.stored_url
    assert result.checksum == ("adler32", adler(data))
    assert result.url == (stored(f"{up_env.prefix}/out.root") if stored else url)


@pytest.mark.reliability("faults", "storage", "a corrupted replica (each copytool): GETADMISMATCH")
def test_corrupted_replica_is_a_mismatch(env: Env) -> None:
    """A replica whose content differs from the catalogue's checksum fails with GETADMISMATCH (1171)."""
    good, bad = b"good content" * 1000, b"bad content!" * 1000
    env.storage.put(f"{env.prefix}/bad.root", bad)
    (result,) = env.tool.transfer([get("bad.root", env.storage.url(f"{env.prefix}/bad.root"), adler(good))], env.work)
    assert result.error_code is ErrorCode.GETADMISMATCH, result.error


@pytest.mark.reliability("faults", "storage", "output checksum mismatch at stage-out (each copytool): PUTADMISMATCH")
def test_output_mismatch_is_put_mismatch(up_env: Env) -> None:
    """An output whose content does not match the expected checksum fails with PUTADMISMATCH (1172)."""
    (up_env.work / "o.root").write_bytes(b"actual")
    url = up_env.storage.url(f"{up_env.prefix}/o.root")
    (result,) = up_env.tool.transfer([put("o.root", url, adler(b"expected"))], up_env.work)
    assert result.error_code is ErrorCode.PUTADMISMATCH, result.error


def test_missing_replica(env: Env) -> None:
    """A replica that does not exist fails with MISSINGINPUTFILE (1331)."""
    (result,) = env.tool.transfer([get("gone.root", env.storage.url(f"{env.prefix}/gone.root"))], env.work)
    assert result.error_code is ErrorCode.MISSINGINPUTFILE, result.error
    assert not (env.work / "gone.root").exists()


def test_missing_output(up_env: Env) -> None:
    """An output that was never written fails with MISSINGOUTPUTFILE (1165)."""
    (result,) = up_env.tool.transfer([put("never.root", up_env.storage.url(f"{up_env.prefix}/n"))], up_env.work)
    assert result.error_code is ErrorCode.MISSINGOUTPUTFILE, result.error


@pytest.mark.parametrize("expected", [None, "0a0b0c0d"], ids=["no-checksum", "checksum"])
@pytest.mark.reliability("faults", "storage",
                         "storage refusing connections during stage-in (each copytool): STAGEINFAILED")
def test_storage_down(remote_env: Env, expected: str | None) -> None:
    """A storage that refuses connections fails the file with STAGEINFAILED (1099), as a value."""
    assert remote_env.storage.down_url is not None
    request = get("d.root", remote_env.storage.down_url, expected, timeout=60)
    (result,) = remote_env.tool.transfer([request], remote_env.work)
    assert result.error_code is ErrorCode.STAGEINFAILED, result.error


@pytest.mark.reliability("faults", "storage",
                         "storage refusing connections during stage-out (each copytool): output kept")
def test_upload_to_storage_down(remote_env: Env) -> None:
    """Staging out to a storage that refuses connections fails with STAGEOUTFAILED (1137); the output stays."""
    assert remote_env.storage.down_url is not None
    (remote_env.work / "o.root").write_bytes(b"output")
    (result,) = remote_env.tool.transfer([put("o.root", remote_env.storage.down_url)], remote_env.work)
    assert result.error_code is ErrorCode.STAGEOUTFAILED, result.error
    assert (remote_env.work / "o.root").read_bytes() == b"output"


@pytest.mark.parametrize("expected", [None, "0a0b0c0d"], ids=["no-checksum", "checksum"])
@pytest.mark.reliability("faults", "storage", "storage that accepts and never answers (each copytool): STAGEINTIMEOUT")
def test_timeout(remote_env: Env, expected: str | None) -> None:
    """A storage that accepts the connection and never answers fails with STAGEINTIMEOUT (1151)."""
    assert remote_env.storage.hang_url is not None
    request = get("t.root", remote_env.storage.hang_url, expected, timeout=3)
    (result,) = remote_env.tool.transfer([request], remote_env.work)
    assert result.error_code is ErrorCode.STAGEINTIMEOUT, result.error
    assert result.seconds < 60


@pytest.mark.reliability("faults", "storage", "cp copy past its deadline: STAGEINTIMEOUT, no partial file")
def test_cp_copy_exceeding_its_timeout(tmp_path: Path) -> None:
    """cp gives up a copy past its deadline with STAGEINTIMEOUT and leaves no partial file."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(32 * 1024 * 1024))
    (tmp_path / "work").mkdir()
    (result,) = CpCopytool().transfer([get("big", big.as_uri(), timeout=0.0)], tmp_path / "work")
    assert result.error_code is ErrorCode.STAGEINTIMEOUT
    assert list((tmp_path / "work").iterdir()) == []


def _elsewhere(env: Env) -> Path:
    """A directory outside the work directory where a copytool could write (so a write there would succeed)."""
    path = env.work.parent / f"elsewhere-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


@pytest.mark.parametrize("name", ["../escape.root", "sub/../../escape.root", "<absolute>"])
@pytest.mark.reliability("bad input", "file names",
                         "stage-in destination with '..' or absolute (each copytool): refused, nothing written")
def test_escaping_name_is_refused(env: Env, name: str) -> None:
    """A destination that would leave the work directory is refused (STAGEINFAILED) and nothing is written there:
    the very path the name leads to (for an absolute name, that absolute path) stays absent."""
    env.storage.put(f"{env.prefix}/e.root", b"x")
    if name == "<absolute>":
        name = str(_elsewhere(env) / "escape.root")
    target = Path(os.path.normpath(env.work / name))  # an absolute name replaces the work directory
    assert not target.is_relative_to(env.work)
    request = TransferRequest(lfn="e.root", direction=Direction.STAGE_IN,
                              source=env.storage.url(f"{env.prefix}/e.root"), destination=name)
    (result,) = env.tool.transfer([request], env.work)
    assert result.error_code is ErrorCode.STAGEINFAILED
    assert not target.exists() and not target.is_symlink()


def _unread(path: Path) -> float:
    """Set ``path``'s access time before its modification time, so any read moves it (relatime); return it."""
    info = path.stat()
    os.utime(path, (info.st_mtime - 3600, info.st_mtime))
    return path.stat().st_atime


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink", "symlink-chain"])
@pytest.mark.reliability("bad input", "file names",
                         "output outside the work directory ('..', absolute, symlink, chain of links): never read")
def test_escaping_output_is_refused_and_never_read(up_env: Env, how: str) -> None:
    """An output outside the work directory (``../secret``, an absolute path, or an output that is a symbolic link,
    or a chain of links, leading there) is refused with BADOUTPUTFILENAME (1371): nothing reaches the storage and
    the file behind it is never read (its access time stays where the test put it), so it is neither checksummed
    nor uploaded through the link."""
    secret = _elsewhere(up_env) / "secret"
    secret.write_bytes(b"not yours")
    source = {"relative": os.path.relpath(secret, up_env.work), "absolute": str(secret)}.get(how, "out.root")
    if how == "symlink":
        (up_env.work / "out.root").symlink_to(secret)
    if how == "symlink-chain":  # a link inside the work directory to a link that leaves it
        (up_env.work / "hop").symlink_to(secret)
        (up_env.work / "out.root").symlink_to(up_env.work / "hop")
    atime = _unread(secret)
    request = put("out.root", up_env.storage.url(f"{up_env.prefix}/out.root"), source=source)
    (result,) = up_env.tool.transfer([request], up_env.work)
    assert result.error_code is ErrorCode.BADOUTPUTFILENAME, result.error
    assert not up_env.storage.local(f"{up_env.prefix}/out.root").exists()
    assert secret.stat().st_atime == atime and secret.read_bytes() == b"not yours"


@pytest.mark.reliability("bad input", "file names", "output that is a symlink inside the work directory: staged out")
def test_output_symlink_inside_the_work_directory_is_staged_out(up_env: Env) -> None:
    """An output that is a symbolic link to another file of the work directory is fine: its content is staged out."""
    (up_env.work / "real.root").write_bytes(b"inside")
    (up_env.work / "out.root").symlink_to("real.root")
    url = up_env.storage.url(f"{up_env.prefix}/out.root")
    (result,) = up_env.tool.transfer([put("out.root", url)], up_env.work)
    assert result.ok, result.error
    assert up_env.storage.local(f"{up_env.prefix}/out.root").read_bytes() == b"inside"


def test_many_files_one_result_each_in_order(env: Env) -> None:
    """Many files in one call give one result per request, in request order, failures included."""
    names = [f"m{i}.root" for i in range(6)]
    requests = []
    for i, name in enumerate(names):
        data = f"file {i}".encode() * 100
        if i != 3:
            env.storage.put(f"{env.prefix}/{name}", data)
        requests.append(get(name, env.storage.url(f"{env.prefix}/{name}"), adler(data)))
    results = env.tool.transfer(requests, env.work)
    assert [r.lfn for r in results] == names
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert results[3].error_code is ErrorCode.MISSINGINPUTFILE
    assert (env.work / "m5.root").read_bytes() == b"file 5" * 100


@pytest.mark.parametrize("data", [b"abc", os.urandom(123_456)], ids=["leading-zeros", "random"])
def test_xrootd_server_checksum_matches_upload(xrootd_server: XRootDServer, tmp_path: Path, data: bytes) -> None:
    """After an xrdcp upload the server's own adler32 (xrdfs query checksum) equals the result's, and the result's is
    in PanDA's 8-digit form even when the XRootD client reports it without leading zeros (adler32 of abc is
    024d0127; CopyProcess gives 24d0127)."""
    (tmp_path / "o").write_bytes(data)
    path = f"contract/srv/{uuid.uuid4().hex[:8]}/o"
    (result,) = XrdcpCopytool().transfer([put("o", xrootd_server.root_url(path))], tmp_path)
    out = subprocess.run(["xrdfs", xrootd_server.endpoint.removeprefix("root://"), "query", "checksum", "/" + path],
                         capture_output=True, text=True, timeout=60, check=True)
    kind, value = out.stdout.split()
    assert [kind, value.zfill(8)] == ["adler32", adler(data)]
    assert result.checksum == ("adler32", adler(data))
