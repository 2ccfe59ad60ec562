"""Load: many real ``grid-pilot`` processes at once against one local PanDA server: jobs and ranges per second, and
the server's latency for ``updateJob`` and ``updateEventRanges``.

Run: ``.venv/bin/python benchmarks/load.py [--pilots N] [--jobs-per-pilot J] [--es-jobs E] [--ranges R]``
(defaults 50, 10, 10, 100: the reliability suite's load scenario; about a minute on 2 cores).

The scenario is ``tests/fixtures/load_scenario.py`` (shared with ``tests/load/test_load.py``): N pilots told to take
J short jobs each (``/bin/true``, only the log staged out) and E pilots told to take one event-service job of R ranges
each (the reference payload), all started at once, each with its own work directory, against one
:class:`panda_devserver.DevServer` of the benchmark's own. Figures:

- jobs/s: all jobs (N*J + E) over the wall time from the first pilot's start to the last pilot's end (pilot start-up
  included); ranges/s: E*R over the same wall time;
- the server's latency per call (from the request's body read to its answer written, as the server measures it:
  :meth:`DevServer.request_durations`): p50 and p99 of ``updateJob`` and ``updateEventRanges``;
- a baseline in the same run, on a fresh server: as many raw ``pilot/update_job`` calls as the pilots made, from a
  plain ``requests`` loop (one kept-alive session), then from N threads at once (a session each): updates/s and the
  server's p50/p99 for them. The ratios say what the pilots' load costs the server against the same calls alone.
  The baseline's threads share the server's process (and its GIL): its N-thread latency is an upper bound.

The run is checked with :func:`~fixtures.load_scenario.check`: a figure from a run that lost a job is not printed as a
clean one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import requests  # noqa: E402
from fixtures.load_scenario import check, percentile, run_load, short_job  # noqa: E402

from panda_devserver import DevServer  # noqa: E402


def _latency(durations: list[float]) -> str:
    return f"p50 {percentile(durations, 0.5) * 1000:7.1f} ms  p99 {percentile(durations, 0.99) * 1000:7.1f} ms"


def _raw_updates(server: DevServer, count: int, threads: int) -> float:
    """``count`` ``pilot/update_job`` calls (state running) spread over ``threads`` threads, each with a session of
    its own, for one queued job each; return the wall time."""
    ids = list(range(1, threads + 1))
    for panda_id in ids:
        server.add_job(short_job(panda_id))
    url = f"{server.url}/api/v1/pilot/update_job"
    shares = [count // threads + (1 if n < count % threads else 0) for n in range(threads)]

    def loop(panda_id: int, calls: int) -> None:
        with requests.Session() as session:
            for _ in range(calls):
                answer = session.post(url, json={"job_id": panda_id, "job_status": "running"}, timeout=60)
                answer.raise_for_status()
                if not answer.json()["success"]:
                    raise RuntimeError(f"update refused: {answer.text}")

    workers = [threading.Thread(target=loop, args=(i, n)) for i, n in zip(ids, shares, strict=True)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilots", type=int, default=50)
    parser.add_argument("--jobs-per-pilot", type=int, default=10)
    parser.add_argument("--es-jobs", type=int, default=10)
    parser.add_argument("--ranges", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with DevServer(tmp / "server") as server:
            result = run_load(server, tmp, pilots=args.pilots, jobs_per_pilot=args.jobs_per_pilot,
                              es_jobs=args.es_jobs, ranges=args.ranges)
            records = check(server, result)
            update_job = server.request_durations("updateJob")
            update_ranges = server.request_durations("updateEventRanges")
            get_job = server.request_durations("getJob")
        jobs = len(result.short_ids) + len(result.es_ids)
        clean = not (records.jobs_lost or records.finals_duplicated or records.taken_twice or records.not_finished
                     or records.ranges_lost or records.ranges_duplicated or records.pilots_failed
                     or records.error_lines or records.server_errors or result.left)
        print(f"scenario: {args.pilots} pilots x {args.jobs_per_pilot} short jobs + {args.es_jobs} event-service "
              f"jobs x {args.ranges} ranges, {len(result.pilots)} pilots at once")
        print(f"  clean run: {clean}" + ("" if clean else f"  {records}"))
        print(f"  wall {result.wall:.1f} s   jobs/s {jobs / result.wall:7.1f}   "
              f"ranges/s {len(result.es_ids) * args.ranges / result.wall:7.1f}")
        print(f"  updateJob          x{len(update_job):5d}  {_latency(update_job)}   "
              f"({len(update_job) / result.wall:.1f}/s)")
        print(f"  updateEventRanges  x{len(update_ranges):5d}  {_latency(update_ranges)}   "
              f"({records.range_updates} range statuses)")
        print(f"  getJob             x{len(get_job):5d}  {_latency(get_job)}")
        baseline = {}
        for threads in (1, args.pilots):
            with DevServer(tmp / f"baseline-{threads}") as raw:
                wall = _raw_updates(raw, len(update_job), threads)
                baseline[threads] = (wall, raw.request_durations("updateJob"))
        print(f"baseline: {len(update_job)} raw pilot/update_job calls (requests), fresh server")
        for threads, (wall, durations) in baseline.items():
            print(f"  {threads:3d} thread(s): wall {wall:5.1f} s  {len(durations) / wall:7.1f} updates/s  "
                  f"{_latency(durations)}")
        alone_wall, alone = baseline[args.pilots]
        print("ratios (pilots' run / raw calls from as many threads):")
        print(f"  updates/s    {(len(update_job) / result.wall) / (len(alone) / alone_wall):6.3f}")
        print(f"  updateJob p50 {percentile(update_job, 0.5) / max(percentile(alone, 0.5), 1e-9):6.1f}x   "
              f"p99 {percentile(update_job, 0.99) / max(percentile(alone, 0.99), 1e-9):6.1f}x")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
