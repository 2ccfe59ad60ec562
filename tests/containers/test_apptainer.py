"""The Apptainer/Singularity runtime without Apptainer (it cannot be installed here): the exact command lines it
writes, the failures it recognises (pilot3 ``pilot/common/errorcodes.py:465-477``, ``pilot/control/payload.py:
842-847``), its check against the pilot's ``PATH``, and the registry giving it the pilot's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotlib.containers import (
    ApptainerRuntime,
    Bind,
    ContainerError,
    ContainerSpec,
    ImageNotFoundError,
    RuntimeNotInstalledError,
    RuntimeRegistry,
    SingularityRuntime,
)
from pilotlib.payload import PayloadSettings
from pilotlib.workflow import RunnerExecutor


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A work directory, a ``.sif`` file, an unpacked image directory, a CVMFS mount and a proxy."""
    found = {"work": tmp_path / "work", "sif": tmp_path / "el9.sif", "unpacked": tmp_path / "unpacked" / "el9",
             "cvmfs": tmp_path / "cvmfs", "proxy": tmp_path / "x509up"}
    for name in ("work", "unpacked", "cvmfs"):
        found[name].mkdir(parents=True)
    found["sif"].write_bytes(b"SIF")
    found["proxy"].write_text("proxy")
    return found


def _runtime(places: dict[str, Path], *, cvmfs: bool = False, cls: type[ApptainerRuntime] = ApptainerRuntime,
             contain: bool = False) -> ApptainerRuntime:
    return cls(cvmfs=places["cvmfs"] if cvmfs else places["work"] / "no-cvmfs", base_env={"PATH": ""},
               contain=contain)


ARGV = ("/bin/sh", "-c", "echo 'a b' > out.dat")


def test_a_sif_image_without_cvmfs(places: dict[str, Path]) -> None:
    """``exec -B WORKDIR --pwd WORKDIR IMAGE ARGV``: the payload's arguments as they are, no shell around them."""
    work = str(places["work"])
    argv, env = _runtime(places).wrap(ARGV, {"X509_USER_PROXY": "/p"}, ContainerSpec(str(places["sif"]), work))
    assert argv == ("apptainer", "exec", "-B", work, "--pwd", work, str(places["sif"]), *ARGV)
    assert env == {"X509_USER_PROXY": "/p"}


def test_an_unpacked_directory_with_cvmfs_and_secrets(places: dict[str, Path]) -> None:
    """``/cvmfs`` is bound when it exists; the proxy read-only at its own path; the environment goes unchanged."""
    work, cvmfs, proxy = str(places["work"]), str(places["cvmfs"]), str(places["proxy"])
    spec = ContainerSpec(str(places["unpacked"]), work, secrets=(places["proxy"],))
    argv, _env = _runtime(places, cvmfs=True).wrap(ARGV, {}, spec)
    assert argv == ("apptainer", "exec", "-B", f"{work},{cvmfs},{proxy}:{proxy}:ro", "--pwd", work,
                    str(places["unpacked"]), *ARGV)


def test_queue_options_split_after_the_binds(places: dict[str, Path]) -> None:
    """The queue's ``container_options`` become separate arguments (shell quoting rules) after pilotlib's ``-B``;
    further binds are ``SRC:DEST`` (``:ro``)."""
    work = str(places["work"])
    spec = ContainerSpec("docker://atlas/athena:24.0", work, binds=(Bind("/scratch", Path("/data"), read_only=True),
                                                                      Bind("/opt/sw")),
                         options="-B /etc/grid-security/certificates --env-file 'my env'")
    argv, _env = _runtime(places).wrap(ARGV, {}, spec)
    assert argv == ("apptainer", "exec", "-B", f"{work},/scratch:/data:ro,/opt/sw", "-B",
                    "/etc/grid-security/certificates", "--env-file", "my env", "--pwd", work,
                    "docker://atlas/athena:24.0", *ARGV)


def test_queue_options_naming_the_workdir_bind_it_themselves(places: dict[str, Path]) -> None:
    """pilot3's form ``-B /etc/grid-security/certificates,/cvmfs,${workdir} --contain`` (``pilot/info/queuedata.py:
    227``): ``${workdir}`` is the work directory, and pilotlib does not bind it a second time."""
    work = str(places["work"])
    spec = ContainerSpec(str(places["sif"]), work, options="-B /etc/grid-security/certificates,${workdir} --contain")
    argv, _env = _runtime(places).wrap(ARGV, {}, spec)
    assert argv == ("apptainer", "exec", "-B", f"/etc/grid-security/certificates,{work}", "--contain", "--pwd",
                    work, str(places["sif"]), *ARGV)


def test_contain_and_singularity(places: dict[str, Path]) -> None:
    """``contain=True`` adds ``--contain``; Singularity's command line is Apptainer's under its own name."""
    work = str(places["work"])
    argv, _env = _runtime(places, cls=SingularityRuntime, contain=True).wrap(
        ARGV, {}, ContainerSpec(str(places["sif"]), work))
    assert argv == ("singularity", "exec", "--contain", "-B", work, "--pwd", work, str(places["sif"]), *ARGV)


def test_the_program_is_found_on_the_pilots_path(places: dict[str, Path], tmp_path: Path) -> None:
    """The executable is looked up on the ``PATH`` of the pilot's environment (not the process's)."""
    program = tmp_path / "bin" / "apptainer"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho apptainer version 1.3.4\n")
    program.chmod(0o755)
    runtime = ApptainerRuntime(base_env={"PATH": str(program.parent)}, cvmfs=tmp_path / "none")
    runtime.check()
    argv, _env = runtime.wrap(ARGV, {}, ContainerSpec(str(places["sif"]), places["work"]))
    assert argv[0] == str(program)


@pytest.mark.parametrize("image", ["missing.sif", "unpacked/el8"])
@pytest.mark.reliability("faults", "container runtime", "image not there: IMAGENOTFOUND before anything runs")
def test_a_local_image_that_does_not_exist_is_imagenotfound(places: dict[str, Path], tmp_path: Path,
                                                            image: str) -> None:
    """A ``.sif`` file or an unpacked directory that is not there fails before anything runs: 1360."""
    with pytest.raises(ImageNotFoundError) as caught:
        _runtime(places).wrap(ARGV, {}, ContainerSpec(str(tmp_path / image), places["work"]))
    assert int(caught.value.code) == 1360


@pytest.mark.reliability("faults", "container runtime", "work directory a bind list cannot hold: bind point failure")
def test_a_path_a_bind_list_cannot_hold_is_a_bind_failure(places: dict[str, Path], tmp_path: Path) -> None:
    """A work directory with a ``,`` cannot be written in a ``-B`` list: SINGULARITYBINDPOINTFAILURE 1308."""
    odd = tmp_path / "a,b"
    odd.mkdir()
    with pytest.raises(ContainerError) as caught:
        _runtime(places).wrap(ARGV, {}, ContainerSpec(str(places["sif"]), odd))
    assert int(caught.value.code) == 1308


def test_queue_options_with_an_open_quote_are_bad_queue_data(places: dict[str, Path]) -> None:
    """``container_options`` that do not split (an unclosed quote) are a bad queue description: 1117."""
    with pytest.raises(ContainerError) as caught:
        _runtime(places).wrap(ARGV, {}, ContainerSpec(str(places["sif"]), places["work"], options="-B '/x"))
    assert int(caught.value.code) == 1117


@pytest.mark.parametrize(("cls", "code"), [(ApptainerRuntime, 1372), (SingularityRuntime, 1325)])
@pytest.mark.reliability("faults", "container runtime", "runtime not installed: APPTAINER/SINGULARITYNOTINSTALLED")
def test_check_without_the_executable_is_not_installed(tmp_path: Path, cls: type[ApptainerRuntime],
                                                       code: int) -> None:
    """Not on the pilot's ``PATH``: APPTAINERNOTINSTALLED 1372, SINGULARITYNOTINSTALLED 1325."""
    with pytest.raises(RuntimeNotInstalledError) as caught:
        cls(base_env={"PATH": str(tmp_path)}).check()
    assert int(caught.value.code) == code


@pytest.mark.reliability("faults", "container runtime", "runtime whose --version fails: not installed")
def test_check_with_an_executable_that_does_not_answer_is_not_installed(tmp_path: Path) -> None:
    """An ``apptainer`` whose ``--version`` fails is not usable: 1372."""
    broken = tmp_path / "apptainer"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeNotInstalledError) as caught:
        ApptainerRuntime(base_env={"PATH": str(tmp_path)}).check()
    assert int(caught.value.code) == 1372


#: Apptainer's and Singularity's messages (as they print them) and the code pilot3 gives each
#: (``pilot/common/errorcodes.py:466-473``; 1340 and 1348: ``pilot/control/payload.py:842-844``; 1360: an image
#: that cannot be opened, pilot3 ``pilot/user/atlas/common.py:168-174`` checks an image path).
MESSAGES = [
    ("WARNING: Not mounting requested bind point (already mounted in container): /cvmfs", 1308),
    ("ERROR  : No more available loop devices, try increasing 'max loop devices' in singularity.conf", 1307),
    ("ERROR  : Failed to mount image in (read only): Invalid argument", 1309),
    ("FATAL:   container creation failed: mount /cvmfs->/cvmfs error: while mounting /cvmfs: no such file", 1309),
    ("ABORT  : Failed invoking the NEWUSER namespace runtime: Invalid argument", 1340),
    ("FATAL:   Failed to create user namespace: user namespace disabled", 1345),
    ("FATAL:   Failed to create user namespace: Operation not permitted", 1345),
    ("FATAL:   container creation failed: fork: resource temporarily unavailable", 1348),
    ("FATAL:   could not open image /cvmfs/x.sif: failed to retrieve path for /cvmfs/x.sif: no such file", 1360),
    ("FATAL:   While making image from oci registry: error fetching image to cache: manifest unknown", 1360),
    ("FATAL:   Apptainer is not installed on this node", 1372),
    ("ERROR: Singularity is not installed", 1325),
    ("FATAL:   mount proc failed: Operation not permitted", 1306),
    ("FATAL:   container creation failed: something new", 1306),
]


@pytest.mark.parametrize(("message", "code"), MESSAGES)
@pytest.mark.reliability("faults", "container runtime",
                         "runtime fails to start (loop devices, namespaces, mounts, image): its code")
def test_failures_are_recognised_with_their_code(message: str, code: int) -> None:
    """Exit status 255 and Apptainer's message among its other lines: the message's code, the line as the text."""
    stderr = f"INFO:    Converting SIF file to temporary sandbox...\n{message}\n"
    error = ApptainerRuntime().failure(255, stderr)
    assert error is not None and int(error.code) == code and str(error) == message


@pytest.mark.reliability("faults", "container runtime",
                         "runtime fails to start, general then specific message: the specific code")
def test_a_specific_failure_wins_over_an_earlier_general_one() -> None:
    """A general ``FATAL`` line before a specific message: the specific code (1307), not 1306."""
    stderr = "FATAL:   container creation failed\nERROR  : No more available loop devices\n"
    error = ApptainerRuntime().failure(255, stderr)
    assert error is not None and int(error.code) == 1307


@pytest.mark.parametrize(("exit_code", "stderr"), [
    (1, "FATAL:   Failed to create user namespace\n"),      # not Apptainer's status: the payload's
    (255, "Operation not permitted\n"),                    # the payload's own words, not Apptainer's log line
    (255, "WARNING: low disk space in the payload\n"),     # an Apptainer-like warning that is no failure
    (0, ""),
])
def test_the_payloads_own_status_is_not_a_runtime_failure(exit_code: int, stderr: str) -> None:
    """Another status than 255, or 255 without an Apptainer failure line: the payload's own (None)."""
    assert ApptainerRuntime().failure(exit_code, stderr) is None


def test_the_registry_gives_a_runtime_the_pilots_environment(tmp_path: Path) -> None:
    """A factory that takes ``base_env`` is given the registry's (the executor's default registry has its
    settings' ``base_env``); one that does not is called without it."""
    program = tmp_path / "apptainer"
    program.write_text("#!/bin/sh\necho 1.3\n")
    program.chmod(0o755)
    executor = RunnerExecutor(PayloadSettings(base_env={"PATH": str(tmp_path)}))
    executor.runtimes.register("apptainer", ApptainerRuntime)
    executor.runtimes.register("plain", lambda: ApptainerRuntime(base_env={"PATH": ""}))
    runtime = executor.runtimes.get("apptainer")
    runtime.check()
    assert isinstance(runtime, ApptainerRuntime) and runtime.program == str(program)
    plain = executor.runtimes.get("plain")
    with pytest.raises(RuntimeNotInstalledError):
        plain.check()
    assert RuntimeRegistry(load_entry_points=False, base_env={"PATH": str(tmp_path)}).names == ()


@pytest.mark.reliability("faults", "container runtime", "broken runtime plugin: only that runtime fails")
def test_a_broken_plugin_breaks_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed entry point whose module is missing fails only when that runtime is asked for, with the
    NOTINSTALLED code of a runtime PanDA has none for (1110); the other runtimes load."""
    info = tmp_path / "broken-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pilotlib.containers]\nbroken-test-runtime = no_such_module:Runtime\n"
                                           "apptainer = pilotlib.containers.apptainer:ApptainerRuntime\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = RuntimeRegistry()
    assert {"apptainer", "broken-test-runtime"} <= set(registry.names)
    assert isinstance(registry.get("apptainer"), ApptainerRuntime)
    with pytest.raises(RuntimeNotInstalledError) as caught:
        registry.get("broken-test-runtime")
    assert int(caught.value.code) == 1110
