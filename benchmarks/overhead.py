"""The grid pilot's own overhead: wall time beyond the payload's, peak RSS, HTTP calls, multi-job throughput.

Run: ``.venv/bin/python benchmarks/overhead.py`` (prints the figures; takes about half a minute).

1. One job whose payload sleeps 2 s, one small input, one small output, local files; in launch-directory (ARC)
   mode and against the local PanDA server. Overhead = pilot process wall time - payload wall time (the payload
   stamps its own start and end). Peak RSS is the pilot process's (``wait4`` ``ru_maxrss``: the largest of the
   pilot and the processes it waited for; the payload here is a shell and ``sleep``). HTTP calls are counted by
   the server. Each single-job figure is run ``REPEAT`` times (default 3, ``--repeat N``) and printed as the best
   and the median: on a shared machine the best run is the pilot's own cost, the median what the load adds. The
   pilot's CPU time (user + system, ``wait4``, its payload's few milliseconds included) does not depend on the
   load.
2. Twenty jobs whose payload sleeps 0.1 s in one multi-job pilot against the local server: jobs per minute.

Reference (the issue): a production pilot spends about 31 s of overhead on such a job with about 36 MiB peak RSS;
the target is under 0.5 s, under 40 MiB, over 60 jobs per minute. The pilot runs with the installed ``cp``
copytool (one input directory serves every job; ``mv`` would move the inputs away after the first).
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from panda_devserver import DevServer  # noqa: E402

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


@dataclasses.dataclass(frozen=True)
class Figures:
    """One pilot run."""

    wall: float
    payload: float
    cpu: float
    rss_kb: int
    status: int

    @property
    def overhead(self) -> float:
        """Pilot wall time beyond the payload's."""
        return self.wall - self.payload


def _run(area: Path, args: list[str]) -> tuple[float, int, int, float]:
    (area / "in").mkdir(exist_ok=True)
    (area / "in" / "in.dat").write_bytes(b"benchmark input\n")
    (area / "in" / "payload.sh").write_text(PAYLOAD)
    argv = [sys.executable, "-m", "apps.grid_pilot", *args, "-a", str(area / "work"), "--input-dir", str(area / "in"),
            "--output-dir", str(area / "storage"), "--copytool", "cp", "--log-level", "WARNING",
            "--no-cleanup"]  # the payload's timing files are read back from the work directory
    began = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode, usage.ru_utime + usage.ru_stime


def _payload_seconds(workdir: Path) -> float:
    return float((workdir / "t_end").read_text()) - float((workdir / "t_start").read_text())


def _summary(label: str, runs: list[Figures], extra: str) -> str:
    best = min(runs, key=lambda r: r.overhead)
    median = statistics.median(r.overhead for r in runs)
    cpu = min(r.cpu for r in runs)
    rss = max(r.rss_kb for r in runs) / 1024
    return (f"{label} rc={[r.status for r in runs]} payload={best.payload:.2f}s overhead best={best.overhead:.2f}s "
            f"median={median:.2f}s cpu={cpu:.2f}s peak_rss={rss:.1f}MiB {extra}")


def one_job_arc(area: Path) -> Figures:
    """One 2 s job in ARC mode; the job's final state must be finished."""
    launch = area / "launch"
    launch.mkdir(parents=True)
    (launch / "pandaJobData.out").write_text(json.dumps(_definition(1, 2.0)))
    wall, rss_kb, rc, cpu = _run(area, ["--mode", "arc", "--launch-dir", str(launch)])
    state = json.loads((launch / "heartbeat.json").read_text())["state"]
    assert state == "finished", state
    return Figures(wall, _payload_seconds(area / "work" / "1"), cpu, rss_kb, rc)


_QUEUE = {"nickname": "BENCH", "state": "ACTIVE", "status": "online"}


def one_job_server(area: Path) -> tuple[Figures, dict[str, int]]:
    """One 2 s job against the local PanDA server; its HTTP calls by kind."""
    with DevServer(area / "server") as server:
        server.add_queue("BENCH", _QUEUE)
        server.add_job(_definition(2, 2.0))
        wall, rss_kb, rc, cpu = _run(area, ["-q", "BENCH", "--url", server.url, "--api", "v1"])
        assert server.final_state(2) == "finished", server.final_state(2)
        calls = {c: server.request_count(c) for c in ("getJob", "updateJob", "schedconfig", "ddmendpoints")}
    return Figures(wall, _payload_seconds(area / "work" / "2"), cpu, rss_kb, rc), calls


def twenty_jobs(area: Path) -> None:
    """Twenty 0.1 s jobs in one multi-job pilot: jobs per minute."""
    with DevServer(area / "server") as server:
        server.add_queue("BENCH", _QUEUE)
        for i in range(20):
            server.add_job(_definition(100 + i, 0.1))
        wall, rss_kb, rc, cpu = _run(area, ["-q", "BENCH", "--url", server.url, "--api", "v1", "--max-jobs", "20",
                                            "--in-flight", "2"])
        done = sum(1 for i in range(20) if server.final_state(100 + i) == "finished")
        calls = sum(server.request_count(c) for c in ("getJob", "updateJob", "schedconfig", "ddmendpoints"))
        print(f"multi-job:       {done}/20 finished rc={rc} wall={wall:.2f}s jobs_per_minute={done / wall * 60:.0f} "
              f"cpu={cpu:.2f}s peak_rss={rss_kb / 1024:.1f}MiB http_calls={calls}")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each single-job figure (default 3)")
    repeat = max(1, parser.parse_args().repeat)
    # An installed pilot has its bytecode compiled (pip byte-compiles wheels); an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module at every start, which is not the pilot's cost.
    compiled = all(compileall.compile_dir(str(REPO / d), quiet=2) for d in ("pilotlib", "apps"))
    print(f"bytecode compiled for pilotlib and apps: {compiled}")
    with tempfile.TemporaryDirectory(prefix="pilotlib-bench-") as tmp:
        root = Path(tmp)
        arc = [one_job_arc(root / f"arc{i}") for i in range(repeat)]
        print(_summary("launch-dir mode:", arc, "http_calls=0"))
        server = [one_job_server(root / f"server{i}") for i in range(repeat)]
        print(_summary("server mode:    ", [f for f, _ in server], f"http_calls={sum(server[0][1].values())} "
                       f"{server[0][1]}"))
        twenty_jobs(root / "multi")


if __name__ == "__main__":
    main()
