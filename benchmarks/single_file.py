"""The single-file grid pilot beside the installed one: start-up, overhead and peak RSS, measured in the same run.

Run: ``.venv/bin/python benchmarks/single_file.py [--repeat N]`` (as root; builds the archive into a temporary
directory; about a minute).

Three pilots run the same jobs as ``benchmarks/overhead.py`` (one input, one output, a payload that sleeps 2 s;
launch-directory (ARC) mode and server mode against the local PanDA server):

- ``installed``: the project's venv (``python -m apps.grid_pilot``) with its byte code compiled (``setup.sh`` runs
  ``compileall``, as pip does for a wheel), run as root: the venv's interpreter lives under ``/root``, which
  ``nobody`` cannot enter;
- ``pyz``: ``/usr/bin/python3 grid-pilot.pyz``, as ``nobody`` in an empty environment, the archive read-only
  (0444 in a 0555 directory owned by root);
- ``pyz-no-pyc``: the same archive without its ``.pyc`` entries (what an archive, or an installation, without byte
  code costs an unprivileged user: every module compiled at every start);
- ``pyz-venvbase``: the archive run by the interpreter the venv was made from (``sys._base_executable``, as root,
  empty environment): the same interpreter as ``installed``, so the difference is the packaging alone.

Start-up = wall time of ``python -c "import apps.grid_pilot.__main__"`` with the pilot on ``sys.path``. Overhead =
pilot wall time - payload wall time. Peak RSS = ``wait4``'s ``ru_maxrss`` (the pilot and the processes it waited
for). Best and median of ``--repeat`` runs (default 3), as in ``benchmarks/overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from overhead import _QUEUE, PAYLOAD, Figures, _definition, _payload_seconds  # noqa: E402

from panda_devserver import DevServer  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = pwd.getpwnam("nobody")


class Pilot:
    """How one variant is started: its argv prefix, its environment, whether it runs as nobody."""

    def __init__(self, name: str, prefix: list[str], env: dict[str, str], path_entry: str, unprivileged: bool):
        self.name, self.prefix, self.env, self.path_entry, self.unprivileged = (
            name, prefix, env, path_entry, unprivileged)

    def popen(self, argv: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` (after the prefix) as this variant's user, in ``cwd``."""
        user = {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []} if self.unprivileged else {}
        return subprocess.Popen([*self.prefix, *argv], cwd=cwd, env=self.env, stdout=subprocess.DEVNULL,
                                **user)  # type: ignore[call-overload]

    def python(self) -> str:
        """The interpreter (the prefix's first word)."""
        return self.prefix[0]


def _measure(proc: subprocess.Popen[bytes], began: float) -> tuple[float, int, int, float]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - began, usage.ru_maxrss, proc.returncode, usage.ru_utime + usage.ru_stime


def startup(pilot: Pilot, cwd: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of importing the app's main module in a fresh interpreter."""
    code = f"import sys; sys.path.insert(0, {pilot.path_entry!r}); import apps.grid_pilot.__main__"
    user = {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []} if pilot.unprivileged else {}
    began = time.monotonic()
    proc = subprocess.Popen([pilot.python(), "-c", code], cwd=cwd, env=pilot.env,
                            **user)  # type: ignore[call-overload]
    wall, rss, rc, _ = _measure(proc, began)
    assert rc == 0, f"{pilot.name}: start-up failed"
    return wall, rss


def _area(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "in").mkdir()
    (root / "in" / "in.dat").write_bytes(b"benchmark input\n")
    (root / "in" / "payload.sh").write_text(PAYLOAD)
    return root


def _own(root: Path) -> None:
    for item in [root, *root.rglob("*")]:
        os.lchown(item, NOBODY.pw_uid, NOBODY.pw_gid)


def _job(pilot: Pilot, area: Path, mode_args: list[str]) -> tuple[float, int, int, float]:
    if pilot.unprivileged:
        _own(area)
    argv = [*mode_args, "-a", str(area / "work"), "--input-dir", str(area / "in"), "--output-dir",
            str(area / "storage"), "--copytool", "cp", "--log-level", "WARNING", "--no-cleanup"]
    began = time.monotonic()
    return _measure(pilot.popen(argv, area), began)


def one_job_arc(pilot: Pilot, area: Path) -> Figures:
    """One 2 s job in ARC mode; it must finish."""
    _area(area)
    (area / "launch").mkdir()
    (area / "launch" / "pandaJobData.out").write_text(json.dumps(_definition(1, 2.0)))
    wall, rss, rc, cpu = _job(pilot, area, ["--mode", "arc", "--launch-dir", str(area / "launch")])
    state = json.loads((area / "launch" / "heartbeat.json").read_text())["state"]
    assert state == "finished", f"{pilot.name}: {state}"
    return Figures(wall, _payload_seconds(area / "work" / "1"), cpu, rss, rc)


def one_job_server(pilot: Pilot, area: Path) -> Figures:
    """One 2 s job against the local PanDA server; it must finish."""
    _area(area)
    with DevServer(area / "server") as server:
        server.add_queue("BENCH", _QUEUE)
        server.add_job(_definition(2, 2.0))
        wall, rss, rc, cpu = _job(pilot, area, ["-q", "BENCH", "--url", server.url, "--api", "v1"])
        assert server.final_state(2) == "finished", f"{pilot.name}: {server.final_state(2)}"
    return Figures(wall, _payload_seconds(area / "work" / "2"), cpu, rss, rc)


@contextmanager
def archives() -> Iterator[tuple[Path, Path]]:
    """The built archive and a copy without byte code, read-only in a root-owned 0555 directory."""
    top = Path(tempfile.mkdtemp(prefix="pilotlib-bench-pyz-"))
    top.chmod(0o755)
    out = top / "dist"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_single_file.py"), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    full, bare = out / "grid-pilot.pyz", out / "grid-pilot-no-pyc.pyz"
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(bare, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if not info.filename.endswith(".pyc"):
                dst.writestr(info, src.read(info))
    for path in out.iterdir():
        path.chmod(0o444)
    out.chmod(0o555)
    try:
        yield full, bare
    finally:
        out.chmod(0o755)
        shutil.rmtree(top)


def _line(label: str, runs: list[Figures]) -> str:
    best = min(runs, key=lambda r: r.overhead)
    median = statistics.median(r.overhead for r in runs)
    return (f"{label} rc={[r.status for r in runs]} overhead best={best.overhead:.2f}s median={median:.2f}s "
            f"cpu={min(r.cpu for r in runs):.2f}s peak_rss={max(r.rss_kb for r in runs) / 1024:.1f}MiB")


def main() -> None:
    """Print the figures of the three variants."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (default 3)")
    repeat = max(1, parser.parse_args().repeat)
    clean = {"PATH": "/usr/bin:/bin"}
    with archives() as (full, bare), tempfile.TemporaryDirectory(prefix="pilotlib-bench-sf-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        pilots = [
            Pilot("installed", [sys.executable, "-m", "apps.grid_pilot"], {**os.environ, "PYTHONPATH": str(REPO)},
                  str(REPO), unprivileged=False),
            Pilot("pyz", [SYSTEM_PYTHON, str(full)], clean, str(full), unprivileged=True),
            Pilot("pyz-no-pyc", [SYSTEM_PYTHON, str(bare)], clean, str(bare), unprivileged=True),
            Pilot("pyz-venvbase", [sys._base_executable, str(full)], clean, str(full), unprivileged=False),
        ]
        print(f"archive: {full.stat().st_size / 1024:.0f} KiB; interpreters: installed={sys.executable} "
              f"pyz={SYSTEM_PYTHON}")
        for pilot in pilots:
            starts = [startup(pilot, root) for _ in range(repeat)]
            print(f"{pilot.name:12s} start-up best={min(s for s, _ in starts):.2f}s "
                  f"median={statistics.median(s for s, _ in starts):.2f}s "
                  f"peak_rss={max(r for _, r in starts) / 1024:.1f}MiB")
        for label, run in (("launch-dir", one_job_arc), ("server    ", one_job_server)):
            for pilot in pilots:
                runs = [run(pilot, root / f"{pilot.name}-{label.strip()}-{i}") for i in range(repeat)]
                print(_line(f"{pilot.name:12s} {label}", runs))


if __name__ == "__main__":
    main()
