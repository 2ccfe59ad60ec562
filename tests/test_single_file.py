"""The single-file pilots (``scripts/build_single_file.py``, ``docs/single-file.rst``), built here and run as the
unprivileged user ``nobody`` in a clean environment (``env -i PATH=/usr/bin:/bin``) with the system's Python 3.11
(``/usr/bin/python3``, not the project's venv), from a read-only copy (mode 0444 in a directory nobody can write).

Byte code: :mod:`zipimport` looks for ``x.pyc`` before ``x.py`` at the same place in the archive (CPython 3.11
``Lib/zipimport.py``, ``_zip_searchorder``) and never writes one; a module loaded from byte code has ``__file__``
ending in ``.pyc``, one compiled from source at import ends in ``.py``. The check is structural: every module of the
archive that the apps import came from its ``.pyc``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.grid_pilot import demo
from pilotlib.errors import ErrorCode
from tests.e2e.helpers import make_inputs
from tests.e2e.test_hpc_pilot import _hpc_job, feed_jobs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
CLEAN_ENV = ["env", "-i", "PATH=/usr/bin:/bin"]
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """Both archives, built by the build script into a root-owned directory (0555) as read-only files (0444)."""
    top = Path(tempfile.mkdtemp(prefix="pilotlib-onefile-"))
    top.chmod(0o755)
    out = top / "dist"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_single_file.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    for path in out.iterdir():
        path.chmod(0o444)
    out.chmod(0o555)
    yield out
    out.chmod(0o755)
    shutil.rmtree(top)


@pytest.fixture
def area() -> Iterator[Path]:
    """A scratch directory owned by nobody (pytest's tmp_path is not reachable by nobody)."""
    path = Path(tempfile.mkdtemp(prefix="pilotlib-onefile-area-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _give_to_nobody(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        os.lchown(item, NOBODY.pw_uid, NOBODY.pw_gid)


def _as_nobody(argv: list[str], *, cwd: Path, path_dirs: tuple[Path, ...] = (), timeout: float = 120,
               ) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"])
    return subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i", f"PATH={path}", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_system_python_is_the_target() -> None:
    """The node's interpreter used here is CPython 3.11, the version the archive's byte code is built for."""
    done = subprocess.run([*CLEAN_ENV, SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2], sys.prefix)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split(")")[0] == "(3, 11" and ".venv" not in done.stdout


def _arc_demo(area: Path, copytool: str) -> tuple[list[str], Path, Path, dict[str, str]]:
    """``make run``'s ARC-mode job (``apps/grid_pilot/demo.py``: the example job, its input, its transformation)
    laid out in ``area``; the pilot's options as the demo gives them."""
    definition, bindir = demo._prepare(area)  # the demo's own preparation of the shipped example job
    launch = area / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(definition))
    _give_to_nobody(area)
    args = ["--mode", "arc", "--launch-dir", str(launch), "--copytool", copytool, "-a", str(area / "work"),
            "--input-dir", str(area / "inputs"), "--output-dir", str(area / "storage"), "--heartbeat", "0.5",
            "--log-level", "WARNING"]
    return args, bindir, launch, definition


def test_grid_pilot_runs_the_example_job_unprivileged(built: Path, area: Path) -> None:
    """``python3 grid-pilot.pyz`` (read-only, as nobody, ``env -i``) runs the shipped example job in ARC mode as
    ``make run`` does: exit 0, heartbeat.json says finished with code 0, the output and the log are in storage."""
    args, bindir, launch, definition = _arc_demo(area, "mv")
    done = _as_nobody([SYSTEM_PYTHON, str(built / "grid-pilot.pyz"), *args], cwd=area, path_dirs=(bindir,))
    assert done.returncode == 0, done.stderr[-3000:]
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["state"] == "finished" and heartbeat["pilotErrorCode"] == 0
    stored = sorted(p.name for p in (area / "storage").rglob("*") if p.is_file())
    assert stored == sorted([definition["outFiles"].split(",")[0], definition["logFile"]])


def test_grid_pilot_runs_by_its_shebang(built: Path, area: Path) -> None:
    """An executable copy (0555) runs by its ``#!/usr/bin/env python3`` line: ``--help`` prints the usage."""
    exe = area / "bin" / "grid-pilot.pyz"
    exe.parent.mkdir()
    shutil.copyfile(built / "grid-pilot.pyz", exe)
    exe.chmod(0o555)
    assert exe.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    done = _as_nobody([str(exe), "--help"], cwd=area)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")


def test_a_job_needing_an_absent_backend_fails_with_the_stage_in_code(built: Path, area: Path) -> None:
    """The node's Python has no Rucio clients: the same job with ``--copytool rucio`` fails in stage-in with
    STAGEINFAILED (1099) and a diagnostic naming the missing library; the pilot itself does not crash."""
    probe = subprocess.run([*CLEAN_ENV, SYSTEM_PYTHON, "-c", "import rucio"], capture_output=True, check=False)
    assert probe.returncode == 1  # the premise: rucio is absent from the node's interpreter
    args, bindir, launch, _ = _arc_demo(area, "rucio")
    done = _as_nobody([SYSTEM_PYTHON, str(built / "grid-pilot.pyz"), *args], cwd=area, path_dirs=(bindir,))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["state"] == "failed"
    assert heartbeat["pilotErrorCode"] == ErrorCode.STAGEINFAILED == 1099
    assert heartbeat["pilotErrorDiag"].startswith("no usable copytool (rucio: rucio-clients is not installed")


def test_hpc_pilot_runs_a_harvester_job_without_mpi(built: Path, area: Path) -> None:
    """``hpc-pilot.pyz --harvester-workdir AP --no-mpi`` (read-only, as nobody, ``env -i``) runs the job that
    Harvester's ``feed_jobs`` laid out: its worker_attributes.json says finished with code 0."""
    access_point = area / "access_point"
    feed_jobs(access_point, [_hpc_job(9801, "sh payload.sh")], make_inputs(area / "prestaged"))
    folder = access_point / "9801"
    _give_to_nobody(area)
    done = _as_nobody([SYSTEM_PYTHON, str(built / "hpc-pilot.pyz"), "--harvester-workdir", str(access_point),
                       "--site-name", "Q", "--no-mpi"], cwd=area)
    assert done.returncode == 0, done.stderr[-3000:]
    attributes = json.loads((folder / "worker_attributes.json").read_text())
    assert attributes["jobStatus"] == "finished" and attributes["pilotErrorCode"] == 0



def test_hpc_pilot_ranks_under_mpirun_without_mpi4py(built: Path, area: Path) -> None:
    """Under a real ``mpirun -np 2`` (as nobody, ``env -i``) with a node interpreter that has no mpi4py, each rank
    of ``hpc-pilot.pyz`` takes its place from Open MPI's variables (``detect_rank`` falls back on ImportError) and
    runs its job: rank i the i-th PandaID, both finished."""
    probe = subprocess.run([*CLEAN_ENV, SYSTEM_PYTHON, "-c", "import mpi4py"], capture_output=True, check=False)
    assert probe.returncode == 1  # the premise: mpi4py is absent from the node's interpreter
    access_point = area / "access_point"
    feed_jobs(access_point, [_hpc_job(9811, "sh payload.sh"), _hpc_job(9812, "sh payload.sh")],
              make_inputs(area / "prestaged"))
    _give_to_nobody(area)
    done = _as_nobody(["mpirun", "--enable-recovery", "-np", "2", SYSTEM_PYTHON, str(built / "hpc-pilot.pyz"),
                       "--harvester-workdir", str(access_point), "--site-name", "Q", "--grace", "2"], cwd=area)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank, panda_id in enumerate((9811, 9812)):
        attributes = json.loads((access_point / str(panda_id) / "worker_attributes.json").read_text())
        assert attributes["jobStatus"] == "finished" and attributes["pilotErrorCode"] == 0
        assert attributes["pilotID"].startswith(f"hpc-pilot-rank{rank}-")

_PROBE = """
import importlib.metadata, sys
sys.path.insert(0, sys.argv[1])
import apps.grid_pilot.__main__, apps.hpc_pilot.__main__, charset_normalizer, requests
from pilotlib.transfer.registry import default_registry
tops = {"pilotlib", "apps", "attr", "attrs", "requests", "urllib3", "idna", "charset_normalizer", "certifi"}
mods = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] in tops}
groups = {g: sorted(e.name for e in importlib.metadata.entry_points(group=g))
          for g in ("pilotlib.copytools", "pilotlib.containers", "pilotlib.hpc_sites")}
tool = default_registry().create("cp")
print(repr({"mods": mods, "groups": groups, "cp": type(tool).__module__,
            "best": charset_normalizer.from_bytes("d\\u00e9j\\u00e0 vu".encode()).best().encoding}))
"""


def test_modules_load_from_byte_code_and_entry_points_are_found(built: Path, area: Path) -> None:
    """Imported from the read-only archive by nobody (``PYTHONDONTWRITEBYTECODE`` unset): every module of pilotlib,
    the apps and the dependencies comes from its ``.pyc`` inside the archive (none compiled at start, none
    written); the three entry-point groups are read from the archive's ``pilotlib-0.1.0.dist-info``; charset
    normalizer works without its compiled extensions."""
    archive = built / "grid-pilot.pyz"
    done = _as_nobody([SYSTEM_PYTHON, "-c", _PROBE, str(archive)], cwd=area)
    assert done.returncode == 0, done.stderr
    found = eval(done.stdout)  # our own probe's repr of plain data
    assert len(found["mods"]) > 100
    assert {n: f for n, f in found["mods"].items() if not (f or "").startswith(f"{archive}/")} == {}
    assert {n: f for n, f in found["mods"].items() if not f.endswith(".pyc")} == {}
    assert found["groups"] == {
        "pilotlib.copytools": ["cp", "gfal", "lsm", "mv", "rucio", "symlink", "xrdcp"],
        "pilotlib.containers": ["apptainer", "bubblewrap", "podman", "singularity"],
        "pilotlib.hpc_sites": ["generic", "olcf"],
    }
    assert found["cp"] == "pilotlib.transfer.copytools.mv"
    assert found["best"] == "utf_8"
    assert list(area.rglob("*.pyc")) == [] and list(area.rglob("__pycache__")) == []


def test_every_source_has_its_byte_code(built: Path) -> None:
    """In both archives each ``x.py`` has ``x.pyc`` beside it (unchecked-hash: flags 0b01 in the header, so no
    source stat or hash at import), and no ``__pycache__``."""
    for archive in built.iterdir():
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            sources = {n for n in names if n.endswith(".py")}
            assert {s for s in sources if s + "c" not in names} == set()
            assert not any("__pycache__" in n for n in names)
            header = zf.read("pilotlib/job.pyc")[:16]
            assert int.from_bytes(header[4:8], "little") == 0b01


_SUSPECT_NAME = re.compile(r"(^|/)(tests?|conftest\.py|panda_devserver|examples|devserver)(/|$)|demo\.py"
                           r"|\.(pem|key|p12|so|crt)$|(^|/)\.?netrc$|(^|/)x509up|proxy[^/]*\.(pem|txt)$")
_SECRET = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----|-----BEGIN CERTIFICATE REQUEST|"
                     rb"(?:api|access|secret)[_-]?token\s*[:=]\s*['\"][A-Za-z0-9]{16,}")


def test_no_test_code_and_no_secrets_inside(built: Path) -> None:
    """Neither archive holds tests, the local PanDA server, examples, compiled extensions, keys, proxies, netrc
    files or private-key material; the only certificate file is certifi's public CA bundle."""
    for archive in built.iterdir():
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            tops = {n.split("/")[0] for n in names}
            packages = {t for t in tops if not t.endswith(".dist-info")} - {"__main__.py", "__main__.pyc"}
            assert packages == {"pilotlib", "apps", "attr", "attrs", "requests", "urllib3", "idna",
                                "charset_normalizer", "certifi"}
            assert sorted(t.split("-")[0] for t in tops if t.endswith(".dist-info")) == [
                "attrs", "certifi", "charset_normalizer", "idna", "pilotlib", "requests", "urllib3"]
            bad = [n for n in names if _SUSPECT_NAME.search(n)]
            assert bad == ["certifi/cacert.pem"]
            for name in names:
                data = zf.read(name)
                assert not _SECRET.search(data), name
                if name != "certifi/cacert.pem":
                    assert b"-----BEGIN " not in data or name.endswith((".py", ".pyc")), name


_ORPHAN = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from pilotlib.payload._lifeline import Lifeline
assert sys.modules[Lifeline.__module__].__file__.endswith(".pyc")
lifeline = Lifeline.start(python=sys.executable)
payload = subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
lifeline.watch(payload.pid)
print(lifeline.pid, payload.pid, flush=True)
os._exit(0)  # the pilot dies without saying goodbye
"""


def test_the_lifeline_runs_from_the_archive(built: Path, area: Path) -> None:
    """The lifeline (a separate program, ``pilotlib/payload/_lifeline.py``) has no file on disk in the archive: it
    is started from its source, and when its pilot dies it kills the payload session the pilot registered."""
    done = _as_nobody([SYSTEM_PYTHON, "-c", _ORPHAN, str(built / "grid-pilot.pyz")], cwd=area, timeout=30)
    assert done.returncode == 0, done.stderr
    lifeline, payload = map(int, done.stdout.split())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_alive(payload) or _alive(lifeline)):
        time.sleep(0.05)
    assert not _alive(payload) and not _alive(lifeline)


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
