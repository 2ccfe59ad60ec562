"""The grid pilot's own overhead: wall time beyond the payload's, peak RSS, HTTP calls, multi-job throughput.

Run: ``.venv/bin/python benchmarks/overhead.py`` (prints the figures; takes about half a minute).

1. One job whose payload sleeps 2 s, one small input, one small output, local files; in launch-directory (ARC)
   mode and against the local PanDA server. Overhead = pilot process wall time - payload wall time (the payload
   stamps its own start and end). Peak RSS is the pilot process's (``wait4`` ``ru_maxrss``: the largest of the
   pilot and the processes it waited for; the payload here is a shell and ``sleep``). HTTP calls are counted by
   the server.
2. Twenty jobs whose payload sleeps 0.1 s in one multi-job pilot against the local server: jobs per minute.

Reference (the issue): a production pilot spends about 31 s of overhead on such a job with about 36 MiB peak RSS;
the target is under 0.5 s, under 40 MiB, over 60 jobs per minute. The pilot runs with the installed ``cp``
copytool (one input directory serves every job; ``mv`` would move the inputs away after the first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pilotlib.devserver import DevServer  # noqa: E402

PAYLOAD = """#!/bin/sh
date +%s.%N > t_start
cat in.dat > out.dat
sleep "$SLEEP"
date +%s.%N > t_end
"""


def _definition(panda_id: int, sleep: float) -> dict[str, str]:
    data, script = b"benchmark input\n", PAYLOAD.encode()
    return {
        "PandaID": str(panda_id), "attemptNr": "1", "prodSourceLabel": "managed", "transformation": "/usr/bin/env",
        "jobPars": f"SLEEP={sleep} sh payload.sh", "inFiles": "in.dat,payload.sh", "scopeIn": "bench,bench",
        "GUID": "g1,g2", "fsize": f"{len(data)},{len(script)}",
        "checksum": f"ad:{zlib.adler32(data):08x},ad:{zlib.adler32(script):08x}",
        "outFiles": "out.dat,log.tgz", "scopeOut": "bench", "scopeLog": "bench", "logFile": "log.tgz",
        "logGUID": "g3", "realDatasets": "d1,d2", "destinationDblock": "b1,b2", "ddmEndPointOut": "LOCAL,LOCAL",
    }


def _run(area: Path, args: list[str]) -> tuple[float, int, int]:
    (area / "in").mkdir(exist_ok=True)
    (area / "in" / "in.dat").write_bytes(b"benchmark input\n")
    (area / "in" / "payload.sh").write_text(PAYLOAD)
    argv = [sys.executable, "-m", "apps.grid_pilot", *args, "-a", str(area / "work"), "--input-dir", str(area / "in"),
            "--output-dir", str(area / "storage"), "--copytool", "cp", "--log-level", "WARNING"]
    began = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def _payload_seconds(workdir: Path) -> float:
    return float((workdir / "t_end").read_text()) - float((workdir / "t_start").read_text())


def one_job_arc(area: Path) -> None:
    launch = area / "launch"
    launch.mkdir(parents=True)
    (launch / "pandaJobData.out").write_text(json.dumps(_definition(1, 2.0)))
    wall, rss_kb, rc = _run(area, ["--mode", "arc", "--launch-dir", str(launch)])
    payload = _payload_seconds(area / "work" / "1")
    state = json.loads((launch / "heartbeat.json").read_text())["state"]
    print(f"launch-dir mode: state={state} rc={rc} wall={wall:.2f}s payload={payload:.2f}s "
          f"overhead={wall - payload:.2f}s peak_rss={rss_kb / 1024:.1f}MiB http_calls=0")


_QUEUE = {"nickname": "BENCH", "state": "ACTIVE", "status": "online"}


def one_job_server(area: Path) -> None:
    with DevServer(area / "server") as server:
        server.add_queue("BENCH", _QUEUE)
        server.add_job(_definition(2, 2.0))
        wall, rss_kb, rc = _run(area, ["-q", "BENCH", "--url", server.url])
        payload = _payload_seconds(area / "work" / "2")
        calls = {c: server.request_count(c) for c in ("getJob", "updateJob", "schedconfig", "ddmendpoints")}
        print(f"server mode:     state={server.final_state(2)} rc={rc} wall={wall:.2f}s payload={payload:.2f}s "
              f"overhead={wall - payload:.2f}s peak_rss={rss_kb / 1024:.1f}MiB http_calls={sum(calls.values())} "
              f"{calls}")


def twenty_jobs(area: Path) -> None:
    with DevServer(area / "server") as server:
        server.add_queue("BENCH", _QUEUE)
        for i in range(20):
            server.add_job(_definition(100 + i, 0.1))
        wall, rss_kb, rc = _run(area, ["-q", "BENCH", "--url", server.url, "--max-jobs", "20", "--in-flight", "2"])
        done = sum(1 for i in range(20) if server.final_state(100 + i) == "finished")
        calls = sum(server.request_count(c) for c in ("getJob", "updateJob", "schedconfig", "ddmendpoints"))
        print(f"multi-job:       {done}/20 finished rc={rc} wall={wall:.2f}s jobs_per_minute={done / wall * 60:.0f} "
              f"peak_rss={rss_kb / 1024:.1f}MiB http_calls={calls}")


def main() -> None:
    """Print the figures."""
    with tempfile.TemporaryDirectory(prefix="pilotlib-bench-") as tmp:
        root = Path(tmp)
        one_job_arc(root / "arc")
        one_job_server(root / "server")
        twenty_jobs(root / "multi")


if __name__ == "__main__":
    main()
