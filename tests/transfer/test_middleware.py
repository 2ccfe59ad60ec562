"""The middleware container: a copytool not usable on the node runs in the queue's middleware image.

The image is a busybox root file system that binds the host's ``/usr`` read-only (the real ``xrdcp`` and its
libraries) and the Python and pilotlib of this test run; the pilot's own ``xrdcp`` has an empty ``PATH``. The copies
go to the test XRootD server.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from fixtures.middleware import REPO, make_middleware_image, python_dirs
from fixtures.xrootd import XRootDServer

from apps.grid_pilot.cli import parse_settings
from apps.grid_pilot.compose import build_kit
from pilotlib.containers import (
    Bind,
    BubblewrapRuntime,
    ContainerChoice,
    ContainerDefaults,
    ContainerSpec,
    RuntimeRegistry,
)
from pilotlib.containers.middleware import ContainerCopytool, MiddlewareLauncher, choose_middleware
from pilotlib.errors import Direction, ErrorCode, error_for_signal
from pilotlib.info import InfoService, QueueDescription
from pilotlib.info.queue import parse_queue
from pilotlib.info.sources import FileSource
from pilotlib.job import FileKind, FileSpec, Job
from pilotlib.jobsetup import JobSetup, SetupResolver
from pilotlib.pipeline import JobRun
from pilotlib.stop import Stop
from pilotlib.transfer import CopytoolRegistry, TransferRequest
from pilotlib.transfer.copytools.xrdcp import XrdcpCopytool
from pilotlib.transfer.errors import MissingFileError, NoUsableCopytoolError
from pilotlib.transfer.paths import StorageProtocol
from pilotlib.transfer.replicas import Replica, StaticReplicaSource
from pilotlib.transfer.stagein import StageIn
from pilotlib.transfer.stageout import StageOut
from pilotlib.workflow.transfers import TransferStages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BWRAP = shutil.which("bwrap") or "bwrap"
COMMAND_ONLY = {"xrdcp": {"backend": "command"}}


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@pytest.fixture(scope="module")
def middleware_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox image whose ``/usr`` and Python folders the launcher binds (:mod:`fixtures.middleware`)."""
    return make_middleware_image(tmp_path_factory.mktemp("middleware") / "image")


@pytest.fixture(scope="module")
def launcher() -> MiddlewareLauncher:
    """Runs this test's Python (and pilotlib) in the image with bubblewrap."""
    runtimes = RuntimeRegistry(load_entry_points=False)
    runtimes.register("bubblewrap", lambda: BubblewrapRuntime(BWRAP))
    binds = (Bind("/usr", read_only=True), *(Bind(p, read_only=True) for p in python_dirs()))
    return MiddlewareLauncher(runtimes, python=sys.executable, binds=binds, env={"PYTHONPATH": str(REPO)})


@pytest.fixture
def no_tools_env(tmp_path: Path) -> dict[str, str]:
    """A pilot environment whose ``PATH`` has no ``xrdcp`` (an empty folder), with a proxy file."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proxy = tmp_path / "x509up"
    proxy.write_text("-----BEGIN CERTIFICATE-----\nSECRET-PROXY-CONTENT\n")
    return {"PATH": str(empty), "X509_USER_PROXY": str(proxy), "HOME": str(tmp_path)}


def _input(lfn: str, data: bytes, **kw: object) -> FileSpec:
    return FileSpec(lfn=lfn, kind=FileKind.INPUT, scope="mc23", filesize=len(data), adler32=_adler(data), **kw)


def _stage_in(registry: CopytoolRegistry, workdir: Path, server: XRootDServer, launcher: MiddlewareLauncher,
              image: Path, middleware: bool = True) -> StageIn:
    files = {"mc23:in.root": (Replica("XRD", server.root_url("mw/in.root")),),
             "mc23:gone.root": (Replica("XRD", server.root_url("mw/gone.root")),)}
    fallback = launcher.fallback(ContainerChoice("bubblewrap", str(image)) if middleware else None,
                                 registry.base_env)
    return StageIn(registry, ["xrdcp"], workdir, replicas=StaticReplicaSource(files), tool_options=COMMAND_ONLY,
                   attempts=1, fallback=fallback)


def test_xrdcp_unusable_without_its_command_on_the_base_path(no_tools_env: dict[str, str]) -> None:
    """The usability check looks for ``xrdcp`` on the copytool's own base ``PATH`` and asks it ``--version``."""
    assert XrdcpCopytool("command", base_env=no_tools_env).unusable_reason() == (
        "command 'xrdcp' not found on PATH")
    assert XrdcpCopytool("command", base_env={"PATH": "/usr/bin"}).unusable_reason() is None
    false = shutil.which("false", path="/usr/bin:/bin")
    assert XrdcpCopytool("command", command="false", base_env={"PATH": "/usr/bin:/bin"}).unusable_reason() == (
        f"command {false} does not answer --version (exit 1)")


def test_stage_in_through_the_middleware_container(xrootd_server: XRootDServer, tmp_path: Path,
                                                    middleware_image: Path, launcher: MiddlewareLauncher,
                                                    no_tools_env: dict[str, str]) -> None:
    """With no ``xrdcp`` on the pilot's ``PATH``, the real ``xrdcp`` inside the middleware container stages the file
    in: the right size and checksum in the work directory, no request or results file left, and a file that is not
    on the server fails with MISSINGINPUTFILE (1331), rebuilt as the copytool's own error."""
    data = b"middleware container payload input\n" * 5000
    xrootd_server.put("mw/in.root", data)
    workdir = tmp_path / "work"
    workdir.mkdir()
    registry = CopytoolRegistry(base_env=no_tools_env)
    stage = _stage_in(registry, workdir, xrootd_server, launcher, middleware_image)
    good, gone = stage.run(Job(panda_id=7, inputs=(_input("in.root", data), _input("gone.root", b"x"))))
    assert good.ok, good.error
    assert (good.tool, good.size, good.checksum) == ("xrdcp", len(data), ("adler32", _adler(data)))
    assert (workdir / "in.root").read_bytes() == data
    assert good.url == xrootd_server.root_url("mw/in.root")
    assert isinstance(gone.error, MissingFileError)
    assert gone.error_code == ErrorCode.MISSINGINPUTFILE
    assert "gone.root" in gone.error.message
    assert sorted(p.name for p in workdir.iterdir()) == ["in.root"]


def test_unusable_without_a_middleware_container(xrootd_server: XRootDServer, tmp_path: Path,
                                                 middleware_image: Path, launcher: MiddlewareLauncher,
                                                 no_tools_env: dict[str, str]) -> None:
    """Without a middleware container the unusable copytool is skipped and the file fails with STAGEINFAILED (1099),
    pilot3's code for a copytool that cannot be used (``pilot/api/data.py``), saying why."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    stage = _stage_in(CopytoolRegistry(base_env=no_tools_env), workdir, xrootd_server, launcher, middleware_image,
                      middleware=False)
    (result,) = stage.run(Job(panda_id=7, inputs=(_input("in.root", b"abc"),)))
    assert isinstance(result.error, NoUsableCopytoolError)
    assert result.error_code == ErrorCode.STAGEINFAILED
    assert result.error.skipped == {"xrdcp": "command 'xrdcp' not found on PATH"}


def test_middleware_runtime_missing_is_unusable(no_tools_env: dict[str, str], middleware_image: Path) -> None:
    """A middleware container whose runtime is not installed leaves the copytool skipped, both reasons given."""
    runtimes = RuntimeRegistry(load_entry_points=False)
    runtimes.register("bubblewrap", lambda: BubblewrapRuntime("no-such-bwrap"))
    fallback = MiddlewareLauncher(runtimes).fallback(ContainerChoice("bubblewrap", str(middleware_image)),
                                                     no_tools_env)
    stage = StageIn(CopytoolRegistry(base_env=no_tools_env), ["xrdcp"], Path("."), tool_options=COMMAND_ONLY,
                    fallback=fallback)
    (result,) = stage.run(Job(panda_id=7, inputs=(_input("f", b"abc", ddmendpoint="XRD"),)))
    assert result.error_code == ErrorCode.STAGEINFAILED
    assert isinstance(result.error, NoUsableCopytoolError)
    assert result.error.skipped["xrdcp"] == (
        "command 'xrdcp' not found on PATH; and not in the middleware container: "
        "bubblewrap: bubblewrap is not usable: no-such-bwrap not found on PATH")


def test_stage_out_through_the_middleware_container(xrootd_server: XRootDServer, tmp_path: Path,
                                                     middleware_image: Path, launcher: MiddlewareLauncher,
                                                     no_tools_env: dict[str, str]) -> None:
    """An output goes to the server through ``xrdcp`` in the container, the local checksum checked against it."""
    data = b"an output written by the payload\n" * 100
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "out.root").write_bytes(data)
    registry = CopytoolRegistry(base_env=no_tools_env)
    storage = StorageProtocol(xrootd_server.endpoint, "/mwout")
    fallback = launcher.fallback(ContainerChoice("bubblewrap", str(middleware_image)), no_tools_env)
    stage = StageOut(registry, ["xrdcp"], workdir, storages={"XRD": (storage,)}, default_storage="XRD",
                     tool_options=COMMAND_ONLY, fallback=fallback)
    spec = FileSpec(lfn="out.root", kind=FileKind.OUTPUT, scope="user.me")
    (result,) = stage.run(Job(panda_id=8, outputs=(spec,)))
    assert result.ok, result.error
    assert (result.size, result.checksum) == (len(data), ("adler32", _adler(data)))
    assert result.url.startswith(xrootd_server.endpoint) and "/mwout/" in result.url
    assert [p.read_bytes() for p in (xrootd_server.data / "mwout").rglob("out.root")] == [data]


def test_transfer_stages_use_the_jobs_middleware_container(xrootd_server: XRootDServer, tmp_path: Path,
                                                           middleware_image: Path, launcher: MiddlewareLauncher,
                                                           no_tools_env: dict[str, str]) -> None:
    """The pilot's stagers run the job's copytool in the container its set-up names (``JobSetup.middleware``)."""
    data = b"through the pilot's stagers\n"
    xrootd_server.put("place/7/staged.root", data)
    workdir = tmp_path / "work"
    workdir.mkdir()
    registry = CopytoolRegistry(base_env=no_tools_env)
    registry.register("xrdcp", lambda base_env=None: XrdcpCopytool("command", base_env=base_env))
    stages = TransferStages(registry, xrootd_server.root_url("place/{panda_id}"), str(tmp_path / "out"),
                            middleware=launcher)
    job = Job(panda_id=7, inputs=(_input("staged.root", data),))
    setup = JobSetup(tools_in=("xrdcp",), middleware=ContainerChoice("bubblewrap", str(middleware_image)))
    (result,) = stages.stage_in(JobRun(job, workdir, setup), Stop())
    assert result.ok, result.error
    assert (workdir / "staged.root").read_bytes() == data
    (unset,) = stages.stage_in(JobRun(job, tmp_path, JobSetup(tools_in=("xrdcp",))), Stop())
    assert unset.error_code == ErrorCode.STAGEINFAILED


def test_choose_middleware_from_the_queue() -> None:
    """``container_type``'s middleware entry names the runtime (``container``: the payload's); the image is the
    pilot's; ``workernode``, no entry or no image: none."""
    defaults = ContainerDefaults(runtime="podman", middleware_image="/cvmfs/mw")

    def queue(types: str) -> QueueDescription:
        return parse_queue({"name": "Q", "container_type": types})

    assert choose_middleware(queue("bubblewrap:middleware"), defaults) == ContainerChoice("bubblewrap", "/cvmfs/mw")
    assert choose_middleware(queue("apptainer:pilot;container:middleware"), defaults) == ContainerChoice(
        "apptainer", "/cvmfs/mw")
    assert choose_middleware(queue("container:middleware"), defaults) == ContainerChoice("podman", "/cvmfs/mw")
    assert choose_middleware(queue("workernode:middleware"), defaults) is None
    assert choose_middleware(queue("apptainer:pilot"), defaults) is None
    assert choose_middleware(queue("bubblewrap:middleware"), ContainerDefaults()) is None
    assert choose_middleware(None, defaults) is None


def test_the_job_set_up_names_the_middleware_container(tmp_path: Path) -> None:
    """The set-up resolver gives a job on a ``bubblewrap:middleware`` queue the pilot's middleware image."""
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": "bubblewrap:middleware",
             "acopytools": {"pr": ["xrdcp"], "pw": ["xrdcp"]}}
    path = tmp_path / "queue.json"
    path.write_text(json.dumps(queue))
    info = InfoService([FileSource(path)], pandaqueue="Q")
    setup = SetupResolver(info, containers=ContainerDefaults(middleware_image="/images/mw")).resolve(Job(panda_id=3))
    assert setup.middleware == ContainerChoice("bubblewrap", "/images/mw")
    assert setup.container is None
    assert SetupResolver(info).resolve(Job(panda_id=3)).middleware is None


def test_container_copytool_never_writes_a_secret(tmp_path: Path, no_tools_env: dict[str, str],
                                                  middleware_image: Path) -> None:
    """The request file holds no proxy content and no token: a token in the URL goes to the container's
    environment; the proxy is bound as a file, named by its path."""
    seen: dict[str, object] = {}

    class Recorder(BubblewrapRuntime):
        def wrap(self, argv, env, spec):  # type: ignore[no-untyped-def]
            seen["request"] = Path(argv[3]).read_text()
            seen["env"], seen["spec"] = dict(env), spec
            return ("true",), env

    runtimes = RuntimeRegistry(load_entry_points=False)
    runtimes.register("bubblewrap", lambda: Recorder(BWRAP))
    inner = XrdcpCopytool("command", base_env=no_tools_env)
    tool = ContainerCopytool(inner, {"backend": "command"}, ContainerChoice("bubblewrap", str(middleware_image)),
                             MiddlewareLauncher(runtimes), no_tools_env)
    url = "root://127.0.0.1:1094//data/f?authz=Bearer%20eyJhbGciOi.secret-part.sig"
    (result,) = tool.transfer([TransferRequest("f", Direction.STAGE_IN, url, "f")], tmp_path)
    request = str(seen["request"])
    assert "SECRET-PROXY-CONTENT" not in request and "eyJhbGciOi" not in request and "authz" not in request
    assert json.loads(request)["requests"][0]["source"] == "root://127.0.0.1:1094//data/f"
    env = seen["env"]
    assert isinstance(env, dict)
    assert env["BEARER_TOKEN"] == "eyJhbGciOi.secret-part.sig"
    assert env["X509_USER_PROXY"] == no_tools_env["X509_USER_PROXY"]
    assert "HOME" in env and env["HOME"] == str(tmp_path)
    spec = seen["spec"]
    assert isinstance(spec, ContainerSpec)
    assert spec.secrets == (Path(no_tools_env["X509_USER_PROXY"]),)
    assert result.error_code == ErrorCode.STAGEINFAILED  # "true" wrote no results
    assert "gave no results" in str(result.error)
    assert list(tmp_path.glob(".pilotlib-middleware-*")) == []


@pytest.mark.reliability("faults", "storage",
                         "slow download in the middleware container cut off by the stop: nothing left")
def test_stop_ends_the_container_at_once(xrootd_slow_server: XRootDServer, tmp_path: Path, middleware_image: Path,
                                         launcher: MiddlewareLauncher, no_tools_env: dict[str, str]) -> None:
    """The stop kills the container while its ``xrdcp`` reads a slow file: the copy fails with the stop's reason
    (SIGTERM 1201) within seconds and leaves nothing in the work directory."""
    data = b"s" * 60_000_000  # 5 s through the slow server
    xrootd_slow_server.put("mw/slow.dat", data)
    workdir = tmp_path / "work"
    workdir.mkdir()
    registry = CopytoolRegistry(base_env=no_tools_env)
    fallback = launcher.fallback(ContainerChoice("bubblewrap", str(middleware_image)), no_tools_env)
    source = StaticReplicaSource({"mc23:slow.dat": (Replica("XRD", xrootd_slow_server.root_url("mw/slow.dat")),)})
    stage = StageIn(registry, ["xrdcp"], workdir, replicas=source, tool_options=COMMAND_ONLY, attempts=1,
                    fallback=fallback)
    stop = Stop()
    stopped: list[float] = []

    def stop_when_under_way() -> None:  # the copy's first bytes are in the work directory
        target = workdir / "slow.dat"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (target.exists() and target.stat().st_size > 0):
            time.sleep(0.02)
        stopped.append(time.monotonic())
        stop.set(error_for_signal(15))

    watcher = threading.Thread(target=stop_when_under_way, daemon=True)
    watcher.start()
    (result,) = stage.run(Job(panda_id=9, inputs=(_input("slow.dat", data),)), stop)
    ended = time.monotonic()
    watcher.join()
    assert result.error_code == ErrorCode.SIGTERM
    assert ended - stopped[0] < 4.0
    assert list(workdir.iterdir()) == []


def test_a_missing_image_fails_the_files_with_its_code(tmp_path: Path, no_tools_env: dict[str, str]) -> None:
    """A middleware image that is not there fails every file with IMAGENOTFOUND (1360); nothing is left behind."""
    runtimes = RuntimeRegistry(load_entry_points=False)
    runtimes.register("bubblewrap", lambda: BubblewrapRuntime(BWRAP))
    tool = ContainerCopytool(XrdcpCopytool("command", base_env=no_tools_env), {},
                             ContainerChoice("bubblewrap", str(tmp_path / "no-image")), MiddlewareLauncher(runtimes),
                             no_tools_env)
    requests = [TransferRequest(n, Direction.STAGE_IN, f"root://127.0.0.1//{n}", n) for n in ("a", "b")]
    assert [r.error_code for r in tool.transfer(requests, tmp_path)] == [ErrorCode.IMAGENOTFOUND] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-bin", "x509up"]


def test_grid_pilot_takes_the_middleware_image(tmp_path: Path) -> None:
    """``grid-pilot --middleware-image`` is the pilot's middleware image (its ContainerDefaults)."""
    settings = parse_settings(["-q", "Q1", "--url", "https://panda.example:25443", "-a", str(tmp_path),
                               "--middleware-image", "/images/mw"], environ={})
    assert settings.middleware_image == "/images/mw"
    assert build_kit(settings, Stop()).containers == ContainerDefaults(middleware_image="/images/mw")
