"""PodmanRuntime's command line and its reading of Podman's failures (the texts are podman 4.3.1's, captured on this
node; ``tests/e2e/test_containers.py`` runs Podman for real)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pilotlib.containers import ContainerError, ContainerSpec, ImageNotFoundError, PodmanRuntime
from pilotlib.containers.base import Bind
from pilotlib.containers.errors import RuntimeNotInstalledError
from pilotlib.errors import ErrorCode


def _wrap(tmp_path: Path, image: str = "localhost/img:1", **spec: object) -> tuple[str, ...]:
    runtime = PodmanRuntime(storage=tmp_path / "store", python="/py")
    argv, env = runtime.wrap(("sh", "-c", "true"), {"SECRET_TOKEN": "s3cr3t", "PATH": "/bin"},
                             ContainerSpec(image, tmp_path / "1234", **spec))  # type: ignore[arg-type]
    assert env == {"SECRET_TOKEN": "s3cr3t", "PATH": "/bin"}
    return argv


def test_the_environment_is_passed_by_name_only(tmp_path: Path) -> None:
    """Each variable is ``--env NAME``: no value is on the command line; the payload's argv ends it."""
    argv = _wrap(tmp_path)
    assert not any("s3cr3t" in arg for arg in argv)
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--env"] == ["SECRET_TOKEN", "PATH"]
    assert argv[-5:] == ("never", "localhost/img:1", "sh", "-c", "true")


def test_the_guard_runs_podman_on_the_storage_and_removes_the_named_container(tmp_path: Path) -> None:
    """The command is the guard, its clean-up ``podman rm`` of the container the run names, both on the storage."""
    argv = _wrap(tmp_path)
    assert argv[:3] == ("/py", "-I", "-S") and argv[3].endswith("pilotlib/containers/_guard.py")
    cleanup = json.loads(argv[4])
    store = str(tmp_path / "store")
    storage = ["--root", f"{store}/root", "--runroot", f"{store}/run", "--tmpdir", f"{store}/tmp"]
    name = argv[argv.index("--name") + 1]
    assert name.startswith("pilotlib-1234-")
    program = shutil.which("podman") or "podman"  # as found on the PATH (the pilot's; here the process's)
    assert cleanup == [program, *storage, "rm", "--force", "--ignore", "--time", "0", name]
    assert list(argv[5:13]) == [program, *storage, "run"]
    assert "--rm" in argv and "--init" in argv


def test_binds_secrets_and_workdir(tmp_path: Path) -> None:
    """The work directory read-write and the working directory, a read-only bind, a secret read-only."""
    secret = tmp_path / "proxy"
    argv = _wrap(tmp_path, binds=(Bind("/data", "/in", read_only=True),), secrets=(secret,))
    volumes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-v"]
    workdir = tmp_path / "1234"
    assert volumes == [f"{workdir}:{workdir}", "/data:/in:ro", f"{secret}:{secret}:ro"]
    assert argv[argv.index("-w") + 1] == str(workdir)


def test_images(tmp_path: Path) -> None:
    """A directory is ``--rootfs``; a registry reference is given as it is; a missing directory is 1360; a ':' in
    a path to bind is 1308."""
    (tmp_path / "rootfs").mkdir()
    assert _wrap(tmp_path, str(tmp_path / "rootfs"))[-5:-3] == ("--rootfs", str(tmp_path / "rootfs"))
    assert _wrap(tmp_path, "docker://alpine:3")[-4] == "docker://alpine:3"
    with pytest.raises(ImageNotFoundError) as missing:
        _wrap(tmp_path, str(tmp_path / "none"))
    assert missing.value.code == ErrorCode.IMAGENOTFOUND
    with pytest.raises(ContainerError) as colon:
        _wrap(tmp_path, binds=(Bind("/a:b"),))
    assert colon.value.code == ErrorCode.SINGULARITYBINDPOINTFAILURE


@pytest.mark.parametrize(("status", "stderr", "code"), [
    (125, "Error: localhost/nosuch:1: image not known", ErrorCode.IMAGENOTFOUND),
    (125, 'Trying to pull localhost/nosuch:1...\nError: initializing source docker://localhost/nosuch:1: pinging '
          'container registry localhost: Get "https://localhost/v2/": dial tcp 127.0.0.1:443: connect: connection '
          'refused', ErrorCode.IMAGENOTFOUND),
    (127, "Error: crun: executable file `/no/such` not found in $PATH: No such file or directory: OCI runtime "
          "attempted to invoke a command that was not found", ErrorCode.TRANSFORMNOTFOUND),
    (126, "Error: crun: open executable: Permission denied: OCI permission denied", ErrorCode.TRANSFORMNOTFOUND),
    (125, "Error: statfs /no/such/dir: no such file or directory", ErrorCode.SINGULARITYBINDPOINTFAILURE),
    (125, "Error: running container create option: stat /no/such/rootfs: no such file or directory",
     ErrorCode.IMAGENOTFOUND),
    (126, "Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied",
     ErrorCode.SETUPFAILURE),
    (125, "Error: unknown flag: --bogus\nSee 'podman run --help'", ErrorCode.SETUPFAILURE),
    (1, " ERROR (catatonit:2): failed to exec pid1: No such file or directory", ErrorCode.TRANSFORMNOTFOUND),
])
def test_podmans_failures(status: int, stderr: str, code: ErrorCode) -> None:
    """Podman's own failures, each with its code and its line as the message."""
    error = PodmanRuntime().failure(status, stderr)
    assert error is not None and error.code == code
    assert str(error).startswith("podman: ")


@pytest.mark.parametrize(("status", "stderr"), [(125, ""), (125, "payload says: no"), (1, "Error: x"),
                                                (0, "Error: image not known"), (3, "")])
def test_the_payloads_statuses_are_not_podmans(status: int, stderr: str) -> None:
    """A 125 without Podman's ``Error:`` line, or another status, is the payload's."""
    assert PodmanRuntime().failure(status, stderr) is None


def test_check_without_podman_is_setupfailure() -> None:
    """No such executable: SETUPFAILURE (1110)."""
    with pytest.raises(RuntimeNotInstalledError) as caught:
        PodmanRuntime(executable="/nonexistent/podman").check()
    assert caught.value.code == ErrorCode.SETUPFAILURE


def test_check_with_an_unusable_storage_is_setupfailure(tmp_path: Path) -> None:
    """``podman info`` refusing the storage (here its ``run`` directory, ``tmp_path/store/run``, is longer than
    Podman's 50 characters): SETUPFAILURE (1110) with Podman's own line."""
    assert len(str(tmp_path / "store" / "run")) > 50
    with pytest.raises(RuntimeNotInstalledError) as caught:
        PodmanRuntime(storage=tmp_path / "store").check()
    assert caught.value.code == ErrorCode.SETUPFAILURE
    assert str(caught.value) == "podman is not usable: Error: the specified runroot is longer than 50 characters"
