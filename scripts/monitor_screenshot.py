"""Screenshot of the dev server's monitor page for the docs (``make monitor-screenshot``).

Starts a :class:`panda_devserver.DevServer`, runs three demo jobs through it with the real grid pilot (one that
finishes, one that fails for a missing output, one event-service job of six ranges, one of which fails), then takes
a headless Chromium screenshot of ``/monitor`` into ``docs/_static/monitor.png`` (or the path given).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from panda_devserver import DevServer  # noqa: E402
from tests.e2e.helpers import job_definition, make_inputs  # noqa: E402

CHROMIUM_TIMEOUT = 120.0
PILOT_TIMEOUT = 120.0


def es_job(panda_id: int, *knobs: str) -> dict[str, str]:
    """An event-service job run by the reference payload (``knobs``: its options, e.g. ``--fail <range id>``)."""
    job = job_definition(panda_id)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": sys.executable,
                "jobPars": " ".join(["-m", "pilotlib.eventservice.reference_payload", *knobs])})
    return job


def run_pilot(server: DevServer, work: Path, batch_id: str) -> None:
    """Run one grid pilot process against ``server`` (inputs in ``work/in``), as batch job ``batch_id``."""
    make_inputs(work / "in")
    command = [sys.executable, "-m", "apps.grid_pilot", "-q", "DEMO_QUEUE", "--url", server.url, "--api", "v1",
               "-a", str(work / "work"), "--input-dir", str(work / "in"), "--output-dir", str(work / "storage"),
               "--copytool", "cp", "--heartbeat", "0.2", "--log-level", "WARNING"]
    env = {**os.environ, "SLURM_JOB_ID": batch_id, "PYTHONPATH": str(REPO)}
    subprocess.run(command, env=env, capture_output=True, timeout=PILOT_TIMEOUT, check=True)


def run_demo_jobs(server: DevServer, work: Path) -> None:
    """Queue the demo jobs and run one pilot per job on them."""
    server.add_queue("DEMO_QUEUE", {"nickname": "DEMO_QUEUE", "state": "ACTIVE", "status": "online",
                                    "zip_time_gap": 1})
    server.add_job(job_definition(5001, sleep=2.0))
    server.add_job(job_definition(5002, env="NO_OUTPUT=1"))
    server.add_job(es_job(5003, "--fail", "1-5003-1-4-1"))
    server.add_event_ranges(5003, [{"startEvent": 10 * n + 1, "lastEvent": 10 * n + 10, "LFN": "in.dat",
                                    "GUID": "g1", "scope": "e2e"} for n in range(6)])
    for number in range(3):
        run_pilot(server, work / f"pilot{number}", f"{4711 + number}")


def chromium(*args: str, profile: Path, timeout: float = CHROMIUM_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium (as root it needs ``--no-sandbox``) with its own profile directory, bounded."""
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(url: str, path: Path, profile: Path, size: str = "1280,2400") -> None:
    """Save a screenshot of ``url`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chromium(f"--screenshot={path}", f"--window-size={size}", url, profile=profile)
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot to {path}")


def run(output: Path) -> None:
    """Start a server, run the demo jobs, take the screenshot."""
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as scratch:
        work = Path(scratch)
        with DevServer(work / "server") as server:
            run_demo_jobs(server, work)
            screenshot(f"{server.url}/monitor", output, work / "chromium")
    print(f"wrote {output}")


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "_static" / "monitor.png")
