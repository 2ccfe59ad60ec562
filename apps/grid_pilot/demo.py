"""``make run``: the grid pilot runs the shipped example job end to end, with no outside service.

It prepares a demo area (a temporary directory, printed), puts the example job's input file in a local directory,
provides the job's transformation (``example_payload.sh``: reads the input, writes the output and a job report),
and runs ``grid-pilot`` as a real process:

- default: NorduGrid/ARC mode, the job in ``launch/pandaJobData.out``, updates in ``launch/heartbeat.json``;
- ``--server``: server mode against a local PanDA server (:class:`panda_devserver.DevServer`) started here,
  which also serves the queue's description (``LOCAL_QUEUE``: active, ``mv`` copytools); its record of the job's
  updates is printed.

The example's ``fsize``/``checksum`` describe a file that is not shipped, so the demo's copy of the definition
carries the size and adler32 of the input it generates. Outputs and the log go to ``storage/`` in the
deterministic layout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from apps.grid_pilot.settings import STATE_DIR_NAME
from panda_devserver import DevServer

#: The demo server's queue description: the pilot refuses a queue it cannot find or that is not active.
LOCAL_QUEUE = {"nickname": "LOCAL_QUEUE", "state": "ACTIVE", "status": "online",
               "acopytools": {"pr": ["mv"], "pw": ["mv"], "pl": ["mv"]}}

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "production.json"

PAYLOAD = """#!/bin/sh
# example_payload.sh: a stand-in transform. Reads --inputEVNTFile, writes --outputHITSFile and jobReport.json.
for arg in "$@"; do
  case "$arg" in
    --inputEVNTFile=*) in="${arg#*=}" ;;
    --outputHITSFile=*) out="${arg#*=}" ;;
  esac
done
echo "example payload: $in -> $out"
sha256sum "$in" > "$out" && cat "$in" >> "$out"
sleep 1
printf '{"exitCode": 0, "exitMsg": "OK", "files": {"output": [{"subFiles": [{"name": "%s"}]}]}}' "$out" > jobReport.json
"""


def _prepare(area: Path) -> tuple[dict[str, str], Path]:
    definition = json.loads(EXAMPLE.read_text())
    lfn = definition["inFiles"]
    data = bytes((i * 7 + 3) % 251 for i in range(int(definition["fsize"])))
    (area / "inputs").mkdir(parents=True)
    (area / "inputs" / lfn).write_bytes(data)
    definition["checksum"] = f"ad:{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    bindir = area / "bin"
    bindir.mkdir()
    script = bindir / definition["transformation"]
    script.write_text(PAYLOAD)
    script.chmod(0o755)
    return definition, bindir


def _pilot(area: Path, bindir: Path, mode_args: list[str]) -> int:
    argv = [sys.executable, "-m", "apps.grid_pilot", *mode_args, "-a", str(area / "work"),
            "--input-dir", str(area / "inputs"), "--output-dir", str(area / "storage"),
            "--heartbeat", "0.5", "--log-level", "WARNING"]
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    print("$", " ".join(argv[1:]), flush=True)
    return subprocess.run(argv, env=env, timeout=600, check=False).returncode


def _show(area: Path) -> None:
    print("\nresults:")
    for path in sorted((area / "storage").rglob("*")) if (area / "storage").exists() else []:
        if path.is_file():
            print(f"  {path} ({path.stat().st_size} bytes)")
    print(f"  pilot log: {area / 'work' / STATE_DIR_NAME / 'pilotlog.txt'}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the pilot's exit status."""
    parser = argparse.ArgumentParser(description="run the grid pilot on the example job")
    parser.add_argument("--server", action="store_true", help="against a local PanDA server instead of ARC mode")
    args = parser.parse_args(argv)
    area = Path(tempfile.mkdtemp(prefix="pilotlib-demo-"))
    print(f"demo area: {area}")
    definition, bindir = _prepare(area)
    panda_id = int(definition["PandaID"])
    if not args.server:
        (area / "launch").mkdir()
        (area / "launch" / "pandaJobData.out").write_text(json.dumps(definition))
        status = _pilot(area, bindir, ["--mode", "arc", "--launch-dir", str(area / "launch"), "--copytool", "mv"])
        _show(area)
        print(f"  final report (ARC heartbeat.json): {area / 'launch' / 'heartbeat.json'}")
        print(f"  output list for the CE: {area / 'launch' / 'output.list'}")
        return status
    with DevServer(area / "server") as server:
        server.add_queue("LOCAL_QUEUE", LOCAL_QUEUE)
        server.add_job(definition)
        status = _pilot(area, bindir, ["-q", "LOCAL_QUEUE", "--url", server.url])
        _show(area)
        print(f"\nthe local PanDA server's record of job {panda_id}:")
        for update in server.updates(panda_id):
            keys = ("state", "pilotErrorCode", "transExitCode", "pilotTiming")
            print("  " + " ".join(f"{k}={update[k]}" for k in keys if k in update))
        print(f"  final state: {server.final_state(panda_id)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
