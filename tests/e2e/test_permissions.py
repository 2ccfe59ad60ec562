"""Work directories and state files are created readable only by the pilot's user (issue 16, security), whatever
the umask the batch system gave the pilot: a real ``grid-pilot`` job in ARC mode under umask 000 and 022."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from .pilot_process import arc_launch, run_watched, spy_job

pytestmark = pytest.mark.integration


def _exposed(root: Path) -> list[str]:
    """Every path under ``root`` another user could read: a file or directory whose chain of directories from
    ``root`` down to it lets others in (each directory ``o+x``) and that is itself readable by others."""
    found = []
    for path in sorted(root.rglob("*")):
        chain = [root, *reversed(path.relative_to(root).parents[:-1])]
        dirs_open = all((root / p).stat().st_mode & stat.S_IXOTH for p in chain)
        if dirs_open and not path.is_symlink() and path.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH):
            found.append(f"{path} {stat.filemode(path.stat().st_mode)}")
    return found


@pytest.mark.parametrize("umask", [pytest.param(0o000, id="umask-000"), pytest.param(0o022, id="umask-022")])
@pytest.mark.reliability("security", "permissions", "work area and state private under any umask")
def test_the_work_area_and_state_are_private(tmp_path: Path, umask: int, ledger: Ledger) -> None:
    """The work area the pilot makes, each job's directory and the state directory are ``0700``; every file the
    pilot wrote in its state (journal, final updates, logs) has no group or other bits; nothing under the work area
    is readable by another user, the payload's own files included (they are inside the job's directory)."""
    work = tmp_path / "work"
    launch = arc_launch(tmp_path, spy_job(9701, tmp_path / "in"))
    done = run_watched(["--mode", "arc", "--launch-dir", str(launch), "-a", str(work), "--input-dir",
                        str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
                        "--no-cleanup"], {"PATH": "/usr/bin:/bin"}, umask=umask)
    assert json.loads((launch / "heartbeat.json").read_text())["state"] == "finished", done.stderr[-2000:]
    state = work / "pilot-state"
    job_dir = next(p for p in work.iterdir() if p.is_dir() and p.name != "pilot-state")
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (work, state, job_dir)}
    state_files = [p for p in state.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]
    exposed = _exposed(work)
    ledger.add(secrets_leaked=len(exposed))
    assert modes == dict.fromkeys(modes, 0o700), {str(p): oct(m) for p, m in modes.items()}
    assert state_files == []
    assert exposed == []
