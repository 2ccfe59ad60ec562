"""Resource usage: /proc sampling of a real session, the summary tracker, prmon's summary, jobMetrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotlib.payload import ResourceSnapshot, ResourceUsage, build_job_metrics, read_prmon_summary, sample_session
from pilotlib.payload._usage import UsageTracker

from ._helpers import wait_for_file


def test_sample_real_session(tmp_path: Path) -> None:
    """Sampling a session started with start_new_session counts its processes and their memory."""
    ready = tmp_path / "ready"
    code = (
        "import pathlib, subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(kid.pid))\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        wait_for_file(ready)
        snap = sample_session(proc.pid, now=123.0)
        assert snap.nprocs == 2
        assert snap.time == 123.0
        assert snap.rss_kb > 0
        assert snap.pss_kb > 0
        assert snap.vmem_kb >= snap.rss_kb
        assert sample_session(os.getpid() + 10_000_000, now=0).nprocs == 0
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_tracker_max_and_avg() -> None:
    """The tracker keeps maxima and integer averages over the snapshots with live processes."""
    tracker = UsageTracker()
    tracker.add(ResourceSnapshot(time=1, nprocs=1, cpu_seconds=1.0, pss_kb=100, rss_kb=200, vmem_kb=300, swap_kb=0))
    tracker.add(ResourceSnapshot(time=2, nprocs=0))  # nothing running: ignored
    usage = tracker.add(
        ResourceSnapshot(time=3, nprocs=2, cpu_seconds=3.0, pss_kb=301, rss_kb=100, vmem_kb=900, swap_kb=4)
    )
    assert usage == ResourceUsage(
        cpu_seconds=3.0,
        max_pss_kb=301,
        max_rss_kb=200,
        max_vmem_kb=900,
        max_swap_kb=4,
        avg_pss_kb=200,
        avg_rss_kb=150,
        avg_vmem_kb=600,
        avg_swap_kb=2,
        samples=2,
    )
    final = tracker.finish(cpu_seconds=5.5, max_rss_kb=150)
    assert final.cpu_seconds == 5.5
    assert final.max_rss_kb == 200


def test_as_prmon_names() -> None:
    """The figures carry the names PanDA's updateJob uses (maxPSS, avgRSS, maxSWAP, ...)."""
    usage = ResourceUsage(max_pss_kb=1, max_rss_kb=2, max_vmem_kb=3, max_swap_kb=4, avg_pss_kb=5, avg_rss_kb=6)
    assert usage.as_prmon() == {
        "maxPSS": 1,
        "maxRSS": 2,
        "maxVMEM": 3,
        "maxSWAP": 4,
        "avgPSS": 5,
        "avgRSS": 6,
        "avgVMEM": 0,
        "avgSWAP": 0,
    }


def test_read_prmon_summary(tmp_path: Path) -> None:
    """prmon's memory_monitor_summary.json is read into the same figures; absent or broken files give None."""
    path = tmp_path / "memory_monitor_summary.json"
    assert read_prmon_summary(path) is None
    path.write_text("{not json")
    assert read_prmon_summary(path) is None
    path.write_text(json.dumps({"Max": {"rss": 10}}))
    assert read_prmon_summary(path) is None
    path.write_text(json.dumps({"Max": [1], "Avg": {}}))
    assert read_prmon_summary(path) is None
    path.write_text('{"Max": {"pss": Infinity, "rss": 1, "vmem": 1}, "Avg": {}}')
    assert read_prmon_summary(path) is None
    path.write_text(
        json.dumps(
            {
                "Max": {"pss": 1500, "rss": 2000, "vmem": 5000, "swap": 7, "utime": 12, "stime": 3},
                "Avg": {"pss": 1000.4, "rss": 1200, "vmem": 4000, "swap": 1},
            }
        )
    )
    assert read_prmon_summary(path) == ResourceUsage(
        cpu_seconds=15.0,
        max_pss_kb=1500,
        max_rss_kb=2000,
        max_vmem_kb=5000,
        max_swap_kb=7,
        avg_pss_kb=1000,
        avg_rss_kb=1200,
        avg_vmem_kb=4000,
        avg_swap_kb=1,
    )


def test_job_metrics_format() -> None:
    """jobMetrics is 'k=v' entries separated by one space, empty values left out, floats short."""
    text = build_job_metrics({"coreCount": 8, "nEvents": 100, "dbTime": 1.5, "dbData": "", "x": None, "hs06": 2.0})
    assert text == "coreCount=8 nEvents=100 dbTime=1.5 hs06=2"
    assert build_job_metrics({}) == ""


def test_job_metrics_limit_drops_whole_entries() -> None:
    """The string never exceeds the server's 500 characters and never cuts an entry."""
    entries = {f"k{i:03d}": "v" * 20 for i in range(40)}
    text = build_job_metrics(entries)
    assert len(text) <= 500
    assert all(part.split("=")[1] == "v" * 20 for part in text.split(" "))
    assert build_job_metrics({"a": 1, "b": 2}, limit=3) == "a=1"


@pytest.mark.parametrize("entries", [{"bad name": 1}, {"a=b": 1}, {"": 1}, {"ok": "two words"}])
def test_job_metrics_rejects_bad_tokens(entries: dict[str, object]) -> None:
    """Names or values that would break the server's whitespace/'=' split raise ValueError."""
    with pytest.raises(ValueError, match="jobMetrics"):
        build_job_metrics(entries)


def _fake_stat(pid: int, sid: int, state: str, ticks: tuple[int, int, int, int], vsize: int, rss_pages: int) -> str:
    fields = [state, "1", str(sid), str(sid), "0", "-1", "0", "0", "0", "0", "0", *map(str, ticks)]
    fields += ["20", "0", "1", "0", "100", str(vsize), str(rss_pages)] + ["0"] * 10
    return f"{pid} (odd ) name) " + " ".join(fields) + "\n"


def test_sample_fake_proc(tmp_path: Path) -> None:
    """Fields are read by position after the command name (which may hold ') '); zombies and other sessions are
    skipped; without smaps_rollup RSS stands in for PSS."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    tck = os.sysconf("SC_CLK_TCK")
    procs = {
        500: ("S", 500, (tck, tck, 2 * tck, 0), 4096 * 1024, 10, "Pss:  7 kB\nSwap: 3 kB\n"),
        501: ("R", 500, (tck, 0, 0, 0), 2048 * 1024, 20, None),
        502: ("Z", 500, (50 * tck, 0, 0, 0), 0, 0, None),
        503: ("S", 999, (50 * tck, 0, 0, 0), 1, 1, None),
    }
    for pid, (state, sid, ticks, vsize, rss, rollup) in procs.items():
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(_fake_stat(pid, sid, state, ticks, vsize, rss))
        if rollup:
            (d / "smaps_rollup").write_text(rollup)
    (tmp_path / "self").mkdir()
    snap = sample_session(500, now=5.0, proc=tmp_path)
    assert snap == ResourceSnapshot(
        time=5.0,
        nprocs=2,
        cpu_seconds=5.0,
        pss_kb=7 + 20 * page_kb,
        rss_kb=30 * page_kb,
        vmem_kb=6144,
        swap_kb=3,
    )
    with_other = sample_session(500, now=5.0, proc=tmp_path, others=(999,))
    assert with_other.nprocs == 3 and with_other.cpu_seconds == 55.0
