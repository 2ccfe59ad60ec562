"""Stage-in benchmark against a local XRootD server: pilotlib's xrdcp and gfal tools versus plain baselines.

Starts its own XRootD server (the test fixture's :class:`XRootDServer`) in a temporary folder, puts N small and M
large files on it, and stages them in with, in the same run:

* baseline ``xrdcp-loop``: the ``xrdcp`` command, one file after another;
* baseline ``xrootd-parallel``: the XRootD client's own ``CopyProcess`` with ``parallel`` jobs (no checksum);
* ``pilotlib-xrdcp``: :class:`~pilotlib.transfer.copytools.XrdcpCopytool` (end-to-end adler32 against the
  expected value);
* ``pilotlib-gfal``: :class:`~pilotlib.transfer.copytools.GfalCopytool` (root://, local adler32 verification).

It prints wall time and throughput per method and set, and the ratios the issue sets as targets: pilotlib at least
0.9x the best baseline for large files, at least 3x the sequential xrdcp loop for small files. Not part of the
test suite. Run: ``.venv/bin/python benchmarks/stagein.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.xrootd import XRootDServer  # noqa: E402
from XRootD import client  # noqa: E402

from pilotlib.errors import Direction  # noqa: E402
from pilotlib.transfer import TransferRequest, transfer_timeout  # noqa: E402
from pilotlib.transfer.copytools import GfalCopytool, XrdcpCopytool  # noqa: E402

MB = 1_000_000


def make_files(server: XRootDServer, prefix: str, count: int, size: int) -> dict[str, str]:
    """Write ``count`` random files of ``size`` bytes on the storage; return name -> adler32."""
    sums = {}
    block = os.urandom(min(size, 8 * 1024 * 1024))
    for i in range(count):
        name = f"{prefix}.{i:04d}"
        target = server.local(f"bench/{name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        value = 1
        with open(target, "wb") as handle:
            left = size
            salt = i.to_bytes(4, "big")
            while left > 0:
                chunk = (salt + block)[: min(left, len(block))]
                handle.write(chunk)
                value = zlib.adler32(chunk, value)
                left -= len(chunk)
        sums[name] = f"{value:08x}"
    subprocess.run(["chown", "-R", "xrootd:xrootd", str(server.local("bench"))], check=True)
    return sums


def xrdcp_loop(server: XRootDServer, names: list[str], dest: Path) -> None:
    for name in names:
        subprocess.run(["xrdcp", "--nopbar", "--force", server.root_url(f"bench/{name}"), str(dest / name)],
                       check=True, timeout=3600)


def xrootd_parallel(server: XRootDServer, names: list[str], dest: Path, parallel: int) -> None:
    process = client.CopyProcess()
    process.parallel(parallel)
    for name in names:
        process.add_job(server.root_url(f"bench/{name}"), str(dest / name), force=True)
    process.prepare()
    status, _results = process.run()
    if not status.ok:
        raise RuntimeError(f"CopyProcess failed: {status.message}")


def pilotlib_tool(tool: XrdcpCopytool | GfalCopytool, server: XRootDServer, sums: dict[str, str], names: list[str],
                  dest: Path, size: int) -> None:
    requests = [
        TransferRequest(lfn=name, direction=Direction.STAGE_IN, source=server.root_url(f"bench/{name}"),
                        destination=name, filesize=size, checksum=("adler32", sums[name]),
                        timeout=transfer_timeout(size))
        for name in names
    ]
    results = tool.transfer(requests, dest)
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} transfers failed, first: {failed[0].error}")


def timed(label: str, run: Callable[[Path], None], scratch: Path, names: list[str]) -> float:
    """One timed run into a fresh folder; the copies are removed and flushed afterwards, outside the timing."""
    dest = scratch / label
    dest.mkdir()
    os.sync()
    start = time.monotonic()
    run(dest)
    seconds = time.monotonic() - start
    got = sum(1 for _ in dest.iterdir())
    if got != len(names):
        raise RuntimeError(f"{label}: {got} files instead of {len(names)}")
    shutil.rmtree(dest)
    os.sync()
    return seconds


def bench_set(server: XRootDServer, title: str, sums: dict[str, str], size: int, parallel: int,
              scratch: Path, repeat: int) -> dict[str, float]:
    """Best-of-``repeat`` seconds per method; the order of the methods rotates between rounds."""
    names = sorted(sums)
    print(f"{title}: {len(names)} files of {size / MB:.0f} MB, best of {repeat}", flush=True)
    runs: dict[str, Callable[[Path], None]] = {
        "xrdcp-loop": lambda d: xrdcp_loop(server, names, d),
        "xrootd-parallel": lambda d: xrootd_parallel(server, names, d, parallel),
        "pilotlib-xrdcp": lambda d: pilotlib_tool(XrdcpCopytool(parallel=parallel), server, sums, names, d, size),
        "pilotlib-gfal": lambda d: pilotlib_tool(GfalCopytool(parallel=parallel), server, sums, names, d, size),
    }
    labels = list(runs)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for round_ in range(repeat):
        order = labels[round_ % len(labels):] + labels[: round_ % len(labels)]
        for label in order:
            times[label].append(timed(label, runs[label], scratch, names))
    total = len(names) * size
    for label in labels:
        best = min(times[label])
        shown = " ".join(f"{t:.2f}" for t in times[label])
        print(f"  {label:18s} {best:8.2f} s  {total / MB / best:9.1f} MB/s   (runs: {shown})", flush=True)
    return {label: min(times[label]) for label in labels}


def report(small: dict[str, float], large: dict[str, float]) -> None:
    print("ratios (speed-up = baseline seconds / pilotlib seconds):")
    best_large = min(large["xrdcp-loop"], large["xrootd-parallel"])
    for tool in ("pilotlib-xrdcp", "pilotlib-gfal"):
        r_large = best_large / large[tool]
        r_small = small["xrdcp-loop"] / small[tool]
        print(f"  {tool:15s} large vs best baseline {r_large:5.2f}x (target >= 0.9)   "
              f"small vs xrdcp loop {r_small:5.2f}x (target >= 3)   "
              f"small vs xrootd-parallel {small['xrootd-parallel'] / small[tool]:5.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-count", type=int, default=200)
    parser.add_argument("--small-mb", type=int, default=1)
    parser.add_argument("--large-count", type=int, default=4)
    parser.add_argument("--large-mb", type=int, default=256)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time of each method counts")
    parser.add_argument("--tmp", default="/tmp", help="where the server's data and the copies go")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pilotlib-bench-", dir=args.tmp))
    base.chmod(0o755)  # the xrootd user must reach the server folder inside
    scratch = base / "scratch"
    scratch.mkdir()
    server = XRootDServer(base=base / "server")
    (base / "server").mkdir()
    try:
        server.start()
        print(f"xrootd {server.endpoint}, data in {server.data}, parallel={args.parallel}", flush=True)
        small_sums = make_files(server, "small", args.small_count, args.small_mb * MB)
        large_sums = make_files(server, "large", args.large_count, args.large_mb * MB)
        small = bench_set(server, "small", small_sums, args.small_mb * MB, args.parallel, scratch, args.repeat)
        large = bench_set(server, "large", large_sums, args.large_mb * MB, args.parallel, scratch, args.repeat)
        report(small, large)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
