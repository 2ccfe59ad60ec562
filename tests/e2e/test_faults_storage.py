"""Output storage that fails, end to end: a real grid-pilot process against the local PanDA server.

The output storage (``--output-dir``, the ``cp`` copytool) is a real file system mounted for the test (the tests run
as root, so a ``chmod 0555`` would not stop the pilot: a read-only tmpfs, or a small one, does): read-only, or too
small for the job's output. The pilot's own ``lsm`` site commands, made slow (the ``lsm-get``/``lsm-put`` scripts of
test_transfer_phases.py wait for a release file), let a pilot be SIGKILLed in the middle of a stage-in or a
stage-out; a new pilot in the same work area then reports the job.

What pilot3 does (PanDAWMS/pilot3, read for behaviour): its ``mv``/``cp`` copytool (``pilot/copytool/mv.py``
``move_all_files``) sets STAGEOUTFAILED (1137) on an output whose copy failed, whatever the reason; only the
command-line copytools classify "No space left on device" as NOREMOTESPACE (1333,
``pilot/copytool/common.py`` ``resolve_common_transfer_errors``). A pilot lost mid-job is KILLSIGNAL (1200,
``pilot/common/errorcodes.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from fixtures.ledger import Ledger
from fixtures.processes import descendants, process_gone
from fixtures.smallfs import mounted_tmpfs

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode
from pilotlib.transfer.paths import deterministic_path

from .helpers import REPO, SLOW_LSM_GET, final_updates, job_definition, make_inputs, pilot_argv, run_grid_pilot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLOW_PUT = """#!/bin/sh
# lsm-put [options] SOURCE DESTINATION: record the call and its pid, wait for the release, copy
for last; do :; done
dest="${{last#file://}}"
echo "$dest" >> "{calls}"
echo $$ >> "{pids}"
i=0
while [ ! -e "{release}" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
eval "src=\\${{$(($#-1))}}"
mkdir -p "$(dirname "$dest")" && cp "$src" "$dest"
"""
#: the same commands without the wait, for the pilot that comes after (its own calls in ``calls-after.txt``)
FAST_GET = """#!/bin/sh
echo "$1" >> "{calls}"
cp "${{1#file://}}" "$2"
"""
FAST_PUT = """#!/bin/sh
for last; do :; done
dest="${{last#file://}}"
echo "$dest" >> "{calls}"
eval "src=\\${{$(($#-1))}}"
mkdir -p "$(dirname "$dest")" && cp "$src" "$dest"
"""


@pytest.fixture(autouse=True)
def _queue(panda_server: DevServer) -> None:
    """The server describes LOCAL_QUEUE (active, no copytools: the tests name theirs)."""
    panda_server.add_queue("LOCAL_QUEUE", {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online"})


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _record(ledger: Ledger, server: DevServer, panda_id: int, left: int = 0) -> list[dict[str, object]]:
    finals = final_updates(server, panda_id)
    ledger.add(faults_injected=1, jobs_lost=0 if server.final_state(panda_id) else 1,
               finals_duplicated=max(0, len(finals) - 1), processes_left=left)
    return finals


@pytest.mark.reliability("faults", "storage", "output storage read-only: stage-out fails, reported once")
def test_read_only_output_storage_fails_the_job_with_stageoutfailed(panda_server: DevServer, tmp_path: Path,
                                                                    ledger: Ledger) -> None:
    """The output storage is a read-only file system (a ``ro`` tmpfs): every copy into it fails with EROFS. The job
    fails with STAGEOUTFAILED (1137: pilot3's ``cp`` gives it to any failed copy, ``pilot/copytool/mv.py``
    ``move_all_files``; with ``mvfinaldest`` its ``build_final_path`` says MKDIR 1199 for a folder it cannot
    create, pilotlib keeps 1137), reported once. The log tarball is made but cannot be stored either: the final
    update says so in ``pilotErrorDiag`` ("log not staged out"), registers no file (``xml`` is ``{}``), carries
    the tail of the job's pilot log in ``pilotLog``, and the pilot exits 1 (a job of its own whose log was not
    staged out). Nothing is written to the storage."""
    panda_server.add_job(job_definition(8801, sleep=0.2))
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1")
    with mounted_tmpfs(tmp_path / "storage", "size=1m,ro") as storage:
        status, _pid, err = run_grid_pilot(argv)
        stored = _files(storage)
    finals = _record(ledger, panda_server, 8801)
    assert status == 1, err[-2000:]
    assert [f["state"] for f in finals] == ["failed"] and panda_server.final_state(8801) == "failed"
    (final,) = finals
    assert int(str(final["pilotErrorCode"])) == ErrorCode.STAGEOUTFAILED, final["pilotErrorDiag"]
    diag = str(final["pilotErrorDiag"])
    assert diag.startswith("cp of out.dat failed: [Errno 30] Read-only file system"), diag
    assert "log not staged out: cp of log.tgz failed: [Errno 30] Read-only file system" in diag
    assert final["xml"] == "{}"
    assert "stage-out failed lfn=log.tgz tool=cp code=1137" in str(final["pilotLog"])
    assert stored == []
    assert panda_server.ignored_updates(8801) == []
    assert (tmp_path / "work" / "pilot-state" / "8801" / "final_update.json.sent").is_file()


@pytest.mark.reliability("faults", "storage", "output storage full: stage-out fails, no partial file left")
def test_full_output_storage_fails_the_job_and_leaves_no_partial_file(panda_server: DevServer, tmp_path: Path,
                                                                      ledger: Ledger) -> None:
    """The output storage is a 64 KiB tmpfs and ``out.dat`` 512 KiB (the payload copies its input, of zeros): the
    copy ends with ENOSPC and the job fails with STAGEOUTFAILED (1137), reported once. pilot3's ``cp``/``mv``
    copytool gives 1137 too (``pilot/copytool/mv.py`` ``move_all_files``); only its command-line copytools make
    "No space left on device" NOREMOTESPACE (1333, ``pilot/copytool/common.py``
    ``resolve_common_transfer_errors``), as pilotlib's ``lsm`` does. The partial copy is removed: the storage holds
    no ``out.dat`` and no ``*.part``, only the log tarball (zeros pack small, so it fits), which the final update
    registers; the pilot exits 0."""
    data = b"\0" * 512 * 1024
    panda_server.add_job(job_definition(8802, sleep=0.2, data=data))
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--max-jobs", "1")
    make_inputs(tmp_path / "in", data)
    with mounted_tmpfs(tmp_path / "storage", "size=64k") as storage:
        status, _pid, err = run_grid_pilot(argv)
        stored = _files(storage)
    finals = _record(ledger, panda_server, 8802)
    assert status == 0, err[-2000:]
    assert [f["state"] for f in finals] == ["failed"] and panda_server.final_state(8802) == "failed"
    (final,) = finals
    assert int(str(final["pilotErrorCode"])) == ErrorCode.STAGEOUTFAILED, final["pilotErrorDiag"]
    assert final["pilotErrorDiag"] == "cp of out.dat failed: [Errno 28] No space left on device"
    assert stored == [deterministic_path("e2e", "log.tgz")], stored
    assert '"log.tgz"' in str(final["xml"]) and "out.dat" not in str(final["xml"])
    assert "stage-out failed lfn=out.dat tool=cp code=1137" in err


def _site_commands(tmp_path: Path) -> tuple[Path, Path]:
    """``bin/`` with the slow ``lsm-get``/``lsm-put`` and ``bin-after/`` with the fast ones."""
    slow, fast = tmp_path / "bin", tmp_path / "bin-after"
    names = {"calls": tmp_path / "calls.txt", "pids": tmp_path / "pids.txt", "release": tmp_path / "release"}
    for folder, get, put, fields in ((slow, SLOW_LSM_GET, SLOW_PUT, names),
                                     (fast, FAST_GET, FAST_PUT, {"calls": tmp_path / "calls-after.txt"})):
        folder.mkdir()
        (folder / "lsm-get").write_text(get.format(**fields))
        (folder / "lsm-put").write_text(put.format(**fields))
        for name in ("lsm-get", "lsm-put"):
            (folder / name).chmod(0o755)
    return slow, fast


def _spawn(argv: list[str], bin_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(argv: list[str], bin_dir: Path) -> tuple[int, int, str]:
    proc = _spawn(argv, bin_dir)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, proc.pid, err.decode(errors="replace")


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not process_gone(pid)]


@attrs.frozen
class _Killed:
    """What :func:`_killed_during` saw: the pilots' argv and bin folder of the fast commands, the SIGKILLed pilot's
    pid, its process tree at the kill and its copy commands among them, the new pilot's status, pid and stderr, and
    the copies still running after the new pilot ended."""

    argv: list[str]
    fast: Path
    first: int
    tree: list[int]
    copies: list[int]
    status: int
    second: int
    err: str
    left: list[int]


@contextlib.contextmanager
def _killed_during(panda_server: DevServer, tmp_path: Path, phase: str) -> Iterator[_Killed]:
    """A pilot SIGKILLed while a slow copy of ``phase`` runs (its ``lsm`` command waits for the release file), then
    a new pilot in the same work area (the fast commands). Yields what happened; at the end the slow copies left
    are released and ended (by their pid: the test's own)."""
    slow, fast = _site_commands(tmp_path)
    panda_server.add_job(job_definition(8803, sleep=0.2))
    tools = ("lsm", "cp") if phase == "stage-in" else ("cp", "lsm")
    argv = pilot_argv(panda_server, tmp_path, "--heartbeat", "600", "--copytool-in", tools[0],
                      "--copytool-out", tools[1])
    first = _spawn(argv, slow)
    copies: list[int] = []
    try:
        try:
            deadline = time.monotonic() + 30
            while not _lines(tmp_path / "pids.txt"):
                assert first.poll() is None, f"the pilot ended before its {phase}: {first.communicate()[1][-2000:]!r}"
                assert time.monotonic() < deadline, f"never saw the {phase}"
                time.sleep(0.05)
            time.sleep(0.3)  # every copy of the phase started
            tree = descendants(first.pid)
        finally:
            first.kill()
            first.communicate(timeout=30)
        copies = [int(pid) for pid in _lines(tmp_path / "pids.txt")]
        assert copies and set(copies) <= set(tree), (copies, tree)
        status, second, err = _run(argv, fast)
        time.sleep(0.3)  # a copy ended by the new pilot is gone by now
        yield _Killed(argv, fast, first.pid, tree, copies, status, second, err, _alive(copies))
    finally:
        (tmp_path / "release").touch()
        for pid in _alive(copies):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


PHASES = pytest.mark.parametrize("phase", ["stage-in", "stage-out"])


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL during a slow stage-in or stage-out: reported once")
@PHASES
def test_sigkill_during_a_transfer_then_a_new_pilot_reports_the_job_once(panda_server: DevServer, tmp_path: Path,
                                                                         ledger: Ledger, phase: str) -> None:
    """A pilot SIGKILLed while its ``lsm`` copy of an input (stage-in) or of ``out.dat`` (stage-out) runs; a new
    pilot in the same work area reports the job failed with KILLSIGNAL (1200, as for a mid-payload kill in
    test_pilot_lost.py; pilot3 ``pilot/common/errorcodes.py``) once, naming the lost pilot and itself, stages the
    job's log out (with the new pilot's own commands) and ends 0; it does not start the lost job's copies again.
    The old pilot's own processes are gone (its copies: see the next test); a third pilot reports nothing more."""
    with _killed_during(panda_server, tmp_path, phase) as seen:
        finals = _record(ledger, panda_server, 8803, left=len(seen.left))
        assert seen.status == 0, seen.err[-2000:]
        (final,) = finals
        assert final["state"] == "failed" and int(str(final["pilotErrorCode"])) == ErrorCode.KILLSIGNAL
        assert panda_server.final_state(8803) == "failed"
        diag = str(final["pilotErrorDiag"])
        assert f"pilot grid-pilot-{seen.first} was lost" in diag, diag
        assert f"recovered by pilot grid-pilot-{seen.second}" in diag, diag
        states = [u["state"] for u in panda_server.updates(8803)]
        assert ("running" in states) is (phase == "stage-out"), states
        assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
        assert '"log.tgz"' in str(final["xml"]) and "out.dat" not in str(final["xml"])
        after = _lines(tmp_path / "calls-after.txt")
        assert not any(c.endswith(("in.dat", "payload.sh", "out.dat")) for c in after), after
        pilots = [pid for pid in seen.tree if pid not in seen.copies]
        assert _alive(pilots) == [], pilots  # the old pilot's own processes
        updates = len(panda_server.updates(8803))
        status, _pid, err = _run(seen.argv, seen.fast)
        assert status == 0, err[-2000:]
        assert len(panda_server.updates(8803)) == updates and panda_server.ignored_updates(8803) == []


@pytest.mark.reliability("faults", "pilot killed", "SIGKILL during a slow transfer: the copy commands end too")
@PHASES
def test_sigkill_during_a_transfer_leaves_no_copy_running(panda_server: DevServer, tmp_path: Path, ledger: Ledger,
                                                          phase: str) -> None:
    """After the SIGKILL and the new pilot's recovery, none of the old pilot's copy commands still runs: each was
    tied to the pilot's lifeline (``pilotlib/_tether.py``), which ends its session when the pilot dies (a
    stage-out command left running can put ``out.dat`` into the storage after the job was reported failed: here the
    left ``lsm-put``, released, finds its source gone with the lost job's work directory, but a command that had the
    file open already would finish its upload)."""
    with _killed_during(panda_server, tmp_path, phase) as seen:
        _record(ledger, panda_server, 8803, left=len(seen.left))
        assert seen.status == 0, seen.err[-2000:]
        assert seen.left == [], f"copies of the SIGKILLed pilot still running: {seen.left}"
