"""Helpers of the end-to-end tests: job definitions and payload scripts.

The tests use the installed copytools (``pilotlib.copytools`` entry points): ``cp`` where one input directory
serves several jobs (the real ``mv`` MOVES its source, pilot3's semantics for pre-placed inputs), ``mv`` where the
inputs are placed for one job (ARC), ``xrdcp`` against the local XRootD server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from panda_devserver import DevServer

PAYLOAD = """#!/bin/sh
# a small payload: copies its input to its output, writes a job report, sleeps, exits with $EXIT
# (LINK_OUT=path: the output is a symbolic link to that path instead)
# (HOG_MB=N: holds N MiB in the Python interpreter $PY for a minute instead)
cat in.dat > out.dat 2>/dev/null || true
[ -n "$NO_OUTPUT" ] && rm -f out.dat
[ -n "$LINK_OUT" ] && ln -sf "$LINK_OUT" out.dat
printf '{"exitCode": %s, "exitMsg": "%s"}' "${EXIT:-0}" "${MSG:-OK}" > jobReport.json
[ -n "$SELF_KILL" ] && kill -9 $$
[ -n "$HOG_MB" ] && exec "$PY" -c "import time; x = b'x' * ($HOG_MB * 1048576); time.sleep(60)"
sleep "${SLEEP:-0.5}"
exit "${EXIT:-0}"
"""


def adler32(data: bytes) -> str:
    """8 hex digits."""
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def job_definition(panda_id: int, *, sleep: float = 0.5, exit_code: int = 0, env: str = "",
                   data: bytes = b"input data\n") -> dict[str, str]:
    """A job with one input ``in.dat``, one output ``out.dat`` and a log; the payload is ``payload.sh``."""
    pars = f"SLEEP={sleep} EXIT={exit_code} {env}".strip()
    return {
        "PandaID": str(panda_id), "attemptNr": "1", "prodSourceLabel": "managed", "jobName": f"e2e.{panda_id}",
        "transformation": "/usr/bin/env", "jobPars": f"{pars} sh payload.sh",
        "inFiles": "in.dat,payload.sh", "scopeIn": "e2e,e2e", "GUID": "g1,g2",
        "fsize": f"{len(data)},{len(PAYLOAD.encode())}",
        "checksum": f"ad:{adler32(data)},ad:{adler32(PAYLOAD.encode())}",
        "ddmEndPointIn": "LOCAL,LOCAL",
        "outFiles": "out.dat,log.tgz", "scopeOut": "e2e", "scopeLog": "e2e", "logFile": "log.tgz",
        "logGUID": "0B1C2D3E-4F50-4617-8293-A4B5C6D7E8F9", "realDatasets": "ds.out,ds.log",
        "destinationDblock": "db.out,db.log", "ddmEndPointOut": "LOCAL,LOCAL", "coreCount": "1",
        "maxWalltime": "600",
    }


def es_job(panda_id: int, *knobs: str) -> dict[str, str]:
    """An event-service job (``eventService``) whose payload is the reference payload with ``knobs``."""
    job = job_definition(panda_id)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": sys.executable,
                "jobPars": " ".join(["-m", "pilotlib.eventservice.reference_payload", *knobs])})
    return job


def es_ranges(count: int) -> list[dict[str, object]]:
    """``count`` event ranges of ten events each over ``in.dat`` (the server names them)."""
    return [{"startEvent": 10 * n + 1, "lastEvent": 10 * n + 10, "LFN": "in.dat", "GUID": "g1", "scope": "e2e"}
            for n in range(count)]


def make_inputs(directory: Path, data: bytes = b"input data\n") -> Path:
    """The input directory: ``in.dat`` and the payload script."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "in.dat").write_bytes(data)
    (directory / "payload.sh").write_text(PAYLOAD)
    return directory


def final_update(updates: list[dict[str, object]]) -> dict[str, object]:
    """The last update with a final state."""
    finals = [u for u in updates if u.get("state") in ("finished", "failed", "holding")]
    assert finals, f"no final update in {json.dumps(updates)[:500]}"
    return finals[-1]


def run_arc_job(tmp_path: Path, job: dict[str, str], queue: dict[str, object], *extra: str) -> dict[str, object]:
    """Run ``job`` with ``grid-pilot --mode arc`` on ``queue`` (a queue description file), the inputs of
    :func:`make_inputs` in ``<tmp>/in``, outputs to ``<tmp>/storage``; return the final ``heartbeat.json``."""
    from apps.grid_pilot.__main__ import main  # noqa: PLC0415 - the helpers serve tests that do not run the app too

    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file", str(tmp_path / "queue.json"),
          "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"),
          *extra])
    heartbeat: dict[str, object] = json.loads((launch / "heartbeat.json").read_text())
    return heartbeat


REPO = Path(__file__).resolve().parents[2]

#: A site ``lsm-get SOURCE DESTINATION`` that records its call (and its pid), starts the copy (a partial file), then
#: waits for the file ``{release}`` (at most 60 s) before copying: a stage-in as slow as a test needs.
SLOW_LSM_GET = """#!/bin/sh
# lsm-get SOURCE DESTINATION: record the call (and the script's PID), start the copy (a partial file), wait for
# the release file, copy
echo "$1" >> "{calls}"
echo $$ >> "{pids}"
printf partial > "$2"
i=0
while [ ! -e "{release}" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
cp "${{1#file://}}" "$2"
"""

FINAL_STATES = ("finished", "failed", "holding")


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (looked at every 20 ms)."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def pilot_argv(server: DevServer, tmp_path: Path, *extra: str) -> list[str]:
    """A grid pilot's arguments for LOCAL_QUEUE on ``server`` (v1 API), work area, inputs and storage in ``tmp_path``,
    cp, heartbeat 0.2 s; ``extra`` after them (a repeated option wins)."""
    make_inputs(tmp_path / "in")
    return ["-q", "LOCAL_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"), "--input-dir",
            str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
            "--heartbeat", "0.2", "--log-level", "INFO", *extra]


def spawn_grid_pilot(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start a real grid-pilot process with ``argv`` (stdout and stderr piped)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_grid_pilot(argv: list[str]) -> tuple[int, int, str]:
    """Run a pilot to its end: (exit status, pid, stderr)."""
    proc = spawn_grid_pilot(argv)
    try:
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, proc.pid, err.decode(errors="replace")


def final_updates(server: DevServer, panda_id: int) -> list[dict[str, object]]:
    """The updates of ``panda_id`` the server applied that carry a final state."""
    return [u for u in server.updates(panda_id) if u.get("state") in FINAL_STATES]
