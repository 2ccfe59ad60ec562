"""A real pilot process, watched: what its descendants show in ``/proc`` while it runs, and what it leaves behind.

The security tests (secrets, permissions) run ``grid-pilot`` or ``hpc-pilot`` as a process of its own and look at
everything it exposes: the command line and environment of every process it starts (sampled from
``/proc/<pid>/cmdline`` and ``/proc/<pid>/environ`` while it runs), its stdout and stderr, and every file under the
directories it wrote (the members of tarballs too).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import attrs
from fixtures.processes import descendants

from .helpers import adler32, job_definition, make_inputs

__all__ = ["REPO", "SPY_PAYLOAD", "Finished", "arc_launch", "file_texts", "grep", "run_watched", "spy_job"]

REPO = Path(__file__).resolve().parents[2]

#: A payload that copies its input to its output, writes a job report, dumps its own environment and command line
#: into its work directory (so that they end up in the log tarball) and sleeps long enough to be sampled.
SPY_PAYLOAD = """#!/bin/sh
cat in.dat > out.dat
printf '{"exitCode": 0, "exitMsg": "OK"}' > jobReport.json
cat /proc/$$/environ > payload.environ
cat /proc/$$/cmdline > payload.cmdline
env > payload.env.txt
sleep "${SLEEP:-1.5}"
"""


def spy_job(panda_id: int, inputs: Path, *, sleep: float = 1.5) -> dict[str, str]:
    """The job of :func:`~tests.e2e.helpers.job_definition` with :data:`SPY_PAYLOAD` as ``payload.sh``, its inputs
    made in ``inputs``."""
    make_inputs(inputs)
    (inputs / "payload.sh").write_text(SPY_PAYLOAD)
    definition = job_definition(panda_id, sleep=sleep)
    data = (inputs / "in.dat").read_bytes()
    definition["fsize"] = f"{len(data)},{len(SPY_PAYLOAD.encode())}"
    definition["checksum"] = f"ad:{adler32(data)},ad:{adler32(SPY_PAYLOAD.encode())}"
    return definition


def arc_launch(tmp_path: Path, job: dict[str, str]) -> Path:
    """An ARC CE's launch directory in ``tmp_path`` holding ``job`` as its ``pandaJobData.out``."""
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    return launch


@attrs.frozen
class Finished:
    """A pilot process that ended: its exit status, its output, and what its descendants showed while it ran
    (``seen``: ``(pid, what)`` -> the bytes of ``/proc/<pid>/<what>``, ``what`` being ``cmdline`` or ``environ``)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seen: dict[tuple[int, str], bytes]

    @property
    def pids(self) -> set[int]:
        """The descendants seen."""
        return {pid for pid, _what in self.seen}


def _sample(root: int, seen: dict[tuple[int, str], bytes]) -> None:
    """Sample each descendant's command line and environment; a fork of the pilot that has not called ``exec`` yet
    (its command line still the pilot's) is the pilot's own memory, not a process it started, and is skipped."""
    try:
        own = Path(f"/proc/{root}/cmdline").read_bytes()
    except OSError:
        return
    for pid in descendants(root):
        try:
            sample = {what: Path(f"/proc/{pid}/{what}").read_bytes() for what in ("cmdline", "environ")}
        except OSError:
            continue
        if sample["cmdline"] == own:
            continue
        seen.update({(pid, what): data for what, data in sample.items() if data})


def run_watched(argv: Sequence[str], env: dict[str, str], *, app: str = "apps.grid_pilot", umask: int = -1,
                timeout: float = 180.0) -> Finished:
    """Run ``python -m app argv`` in a session of its own (``umask``: the process's, -1 keeps the test's), sampling
    the command line and environment of each of its descendants every 20 ms until it ends.

    Raises:
        subprocess.TimeoutExpired: the pilot did not end within ``timeout`` seconds (it is killed first).
    """
    proc = subprocess.Popen([sys.executable, "-m", app, *argv], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, umask=umask)
    seen: dict[tuple[int, str], bytes] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            _sample(proc.pid, seen)
            done.wait(0.02)

    watcher = threading.Thread(target=watch, name="proc-sampler", daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise
    finally:
        done.set()
        watcher.join()
    return Finished(proc.returncode, out, err, seen)


def _members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """The regular files of a tarball (recursively), or nothing when ``data`` is no tarball."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    inner = handle.read()
                    yield f"{name}!{member.name}", inner
                    yield from _members(f"{name}!{member.name}", inner)
    except (tarfile.TarError, EOFError, OSError):
        return


def file_texts(roots: Iterable[Path], *, allowed: Iterable[Path] = ()) -> dict[str, bytes]:
    """Every regular file under ``roots`` (and each member of a tarball among them), by path, except the files
    ``allowed`` (where a secret must be: the proxy file itself). Symbolic links are not followed."""
    skip = {p.resolve() for p in allowed}
    found: dict[str, bytes] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            if path.is_symlink() or not path.is_file() or path.resolve() in skip:
                continue
            data = path.read_bytes()
            found[str(path)] = data
            if tarfile.is_tarfile(path):
                found.update(_members(str(path), data))
    return found


def grep(markers: Iterable[str], places: dict[str, bytes]) -> list[str]:
    """``"<place>: <marker>"`` for each marker found in each place."""
    return [f"{place}: {marker}" for place, data in places.items() for marker in markers if marker.encode() in data]
