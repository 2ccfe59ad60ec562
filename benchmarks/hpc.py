"""The HPC pilot at scale: its own start-up and wrap-up per rank, and its file-system operations per job.

Run: ``.venv/bin/python benchmarks/hpc.py [--ranks 1,2,8] [--repeat R] [--poll-ranks N] [--paths] [--skip PART]``
(defaults 1,2,8, 3 and 4; prints the figures; takes under a minute on a 2-core machine). The estimate for 1,000 and
10,000 ranks built on these figures is ``docs/hpc-scale.rst``.

1. Start-up and wrap-up per rank. An access point as Harvester's ``feed_jobs`` leaves it for a many-jobs worker
   (``worker_pandaids.json``, ``<PandaID>/HPCJobs.json``), one trivial job per rank: the payload is ``bash -c``
   writing ``$EPOCHREALTIME`` (bash's microsecond clock, no fork) at its start and at its end into a folder outside
   the access point, no input, the log tarball as the only output. ``hpc-pilot`` (generic site) is launched with
   the real ``mpirun --allow-run-as-root --enable-recovery -np N`` (``--oversubscribe`` when N is above the cores).

   - start-up: from the launch (just before ``mpirun`` is spawned) to each rank's payload start;
   - own wrap-up: from a rank's payload end to its check-out (the ``st_mtime`` of its ``outcome.json``, written once
     its job is reported and its work directory cleaned);
   - worker wrap-up: from the last payload end to ``mpirun``'s exit (rank 0's wait for the others, polling every
     0.5 s, the worker files, every interpreter's exit, ``MPI_Finalize``, mpirun's teardown).

   Baselines in the same run: the same ``mpirun`` launching a rank that imports mpi4py, initialises MPI, writes
   ``time.time()`` and exits (launch -> rank ready is MPI's start-up floor, last stamp -> mpirun's exit its
   wrap-up floor), and the bare interpreter (``python -c pass``). The ratio to the MPI baseline is the pilot's own
   cost. Also the no-MPI single process (``hpc-pilot --no-mpi`` alone, running the N jobs itself one after the
   other): launch -> first payload start, the mean gap between one payload's end and the next one's start, last
   payload end -> exit. Every figure is run ``--repeat`` times in turn; median and best are printed.
2. File-system operations per job in the access point (the shared file system): the rank runs in this process
   (``apps.hpc_pilot.__main__.main``, ``--no-mpi`` and the launcher's variables ``PMI_RANK``/``PMI_SIZE``) under
   :func:`sys.addaudithook` (events ``open``, ``os.rename`` (``os.replace`` too), ``os.remove``, ``os.rmdir``,
   ``os.mkdir``, ``os.listdir``, ``os.scandir``, ``os.chmod``, ``os.utime``, ``os.symlink``, ``fcntl.flock``,
   ``shutil.copyfile``) with ``os.stat``/``os.lstat`` wrapped for the stats (no audit event), a path given by a
   file descriptor or ``dir_fd`` resolved through ``/proc/self/fd``. Counted: the pilot's own operations (threads of
   this process); the payload is another process and its own I/O is not counted, it goes wherever its work
   directory is. The job: one input ``in.dat`` that Harvester linked into the job's directory, the payload copies
   it to ``out.dat``, outputs ``out.dat`` and the log. Split by phase (the pilot's thread: ``retrieve`` reads the
   job, ``validate``, ``stage-in``, ``payload``, ``heartbeat``, ``stage-out``, ``log``, ``report``; ``MainThread``
   checks the rank in and out, gathers and writes the worker files) and by place (Harvester's job directory, the
   worker-level files, the pilot's state, the rank board, the work directory), for the generic site (work
   directories under ``<access point>/.hpc-pilot/work``) and the olcf site (``ramdisk=`` a folder on ``/dev/shm``:
   counted apart, off the shared file system). Then rank 0 of ``--poll-ranks`` ranks, the others real
   processes whose payload sleeps 2 s: its gather's operations per look at one pending rank. The job's payload
   writes 20 small files, lists its directory, removes one of them and copies its input to its output.

   Part 2b, when strace is installed: the same job, the rank as a process of its own under ``strace -f -y -e
   trace=%file,getdents64,flock`` (with the process creations and ``execve`` to tell the pilot's processes from the
   payload's: a process that executes anything but Python is the payload's), every system call on a path or a
   descriptor under the access point or the RAM disk, by actor and place: the payload's own calls included (and
   descriptor-based ``fstat`` shown apart: on Lustre it needs no lookup).
3. The file-system calls of one rank's imports (``strace -f -c -e trace=%file`` of ``import apps.hpc_pilot.__main__,
   mpi4py.MPI``) against ``python -c pass``: they go wherever the interpreter and the venv are installed (skipped
   when strace is not installed).

Goal (the issue): under 1 s per rank at start and at end.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CORES = os.cpu_count() or 1
#: part 2's payload's own I/O in its work directory: 20 small files written, listed, one removed, the input copied.
PAYLOAD_IO = "for i in $(seq 20); do echo $i > scratch.$i; done; ls > listing; rm scratch.1; cat in.dat > out.dat"
MPI_RANK = ("import sys, time\nfrom mpi4py import MPI\nr = MPI.COMM_WORLD.Get_rank()\n"
            "open(f'{sys.argv[1]}/{r}.ready', 'w').write(repr(time.time()))\n")


# ---------------------------------------------------------------------------------------------------- access point
def _job(panda_id: int, payload: str, inputs: Sequence[tuple[str, bytes]] = (), outputs: Sequence[str] = ()) -> dict[
        str, str]:
    """A job definition as the server sends it: ``bash -c payload``, the inputs, the outputs and the log."""
    names = [name for name, _ in inputs]
    outs = [*outputs, "log.tgz"]
    return {
        "PandaID": str(panda_id), "attemptNr": "1", "prodSourceLabel": "managed", "jobName": f"bench.{panda_id}",
        "transformation": "/bin/bash", "jobPars": f"-c '{payload}'",
        "inFiles": ",".join(names), "scopeIn": ",".join("bench" for _ in names),
        "GUID": ",".join(f"g{n}" for n in range(len(names))),
        "fsize": ",".join(str(len(data)) for _, data in inputs),
        "checksum": ",".join(f"ad:{zlib.adler32(data):08x}" for _, data in inputs),
        "ddmEndPointIn": ",".join("LOCAL" for _ in names),
        "outFiles": ",".join(outs), "scopeOut": "bench", "scopeLog": "bench", "logFile": "log.tgz",
        "logGUID": "0B1C2D3E-4F50-4617-8293-A4B5C6D7E8F9", "realDatasets": ",".join(f"ds{n}" for n in range(len(outs))),
        "destinationDblock": ",".join(f"db{n}" for n in range(len(outs))),
        "ddmEndPointOut": ",".join("LOCAL" for _ in outs), "coreCount": "1", "maxWalltime": "600",
    }


def _stamped(stamps: Path, panda_id: int, middle: str = "") -> str:
    """The payload: its start stamp, ``middle``, its end stamp (bash's ``$EPOCHREALTIME``, microseconds)."""
    return (f"echo $EPOCHREALTIME > {stamps}/{panda_id}.start; {middle}"
            f"echo $EPOCHREALTIME > {stamps}/{panda_id}.end")


def access_point(base: Path, n_jobs: int, *, first: int = 1001, io: bool = False, sleep: float = 0.0) -> tuple[
        Path, Path, list[int]]:
    """A fresh access point with ``n_jobs`` jobs in per-job directories, ``worker_pandaids.json`` written last;
    ``io``: each job has the input ``in.dat`` (a link Harvester made to its storage) and the output ``out.dat``.
    Returns the access point, the stamps folder (outside it) and the PandaIDs."""
    ap, stamps, storage = base / "ap", base / "stamps", base / "storage"
    for folder in (ap, stamps, storage):
        folder.mkdir(parents=True)
    data = b"benchmark input\n" * 64
    (storage / "in.dat").write_bytes(data)
    ids = list(range(first, first + n_jobs))
    for panda_id in ids:
        folder = ap / str(panda_id)
        folder.mkdir()
        middle = f"sleep {sleep}; " if sleep else ""
        if io:
            (folder / "in.dat").symlink_to(storage / "in.dat")
            middle += f"{PAYLOAD_IO}; "
            job = _job(panda_id, _stamped(stamps, panda_id, middle), [("in.dat", data)], ["out.dat"])
        else:
            job = _job(panda_id, _stamped(stamps, panda_id, middle))
        (folder / "HPCJobs.json").write_text(json.dumps({str(panda_id): job}))
    (ap / "worker_pandaids.json").write_text(json.dumps(ids))
    return ap, stamps, ids


def _stamp(path: Path) -> float:
    return float(path.read_text())


# ------------------------------------------------------------------------------------------------------- part 1
def mpirun(n: int) -> list[str]:
    """The launch command of ``n`` ranks."""
    return ["mpirun", "--allow-run-as-root", "--enable-recovery", *(["--oversubscribe"] if n > CORES else []),
            "-np", str(n)]


def _launch(command: Sequence[str], out: Path) -> tuple[float, float, float]:
    """Run ``command`` (stdout and stderr to ``out``); its launch and exit epoch times and the CPU seconds (user +
    system, ``wait4``) of it and every process it waited for (mpirun's daemon, the ranks, their payloads)."""
    with out.open("wb") as sink:
        began = time.time()
        proc = subprocess.Popen(command, env=ENV, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:6]} exited {proc.returncode}: {out.read_text()[-2000:]}")
    return began, ended, usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Figure:
    """Samples of one figure (seconds)."""

    samples: list[float] = dataclasses.field(default_factory=list)

    def cell(self) -> str:
        """``median (best)``."""
        if not self.samples:
            return f"{'-':>15}"
        return f"{statistics.median(self.samples):7.3f} ({min(self.samples):5.3f})"

    @property
    def median(self) -> float:
        """The median."""
        return statistics.median(self.samples)


@dataclasses.dataclass
class Line:
    """One row of part 1: start-up, own wrap-up, worker wrap-up, wall."""

    label: str
    start: Figure = dataclasses.field(default_factory=Figure)
    own_end: Figure = dataclasses.field(default_factory=Figure)
    end: Figure = dataclasses.field(default_factory=Figure)
    wall: Figure = dataclasses.field(default_factory=Figure)
    gap: Figure = dataclasses.field(default_factory=Figure)
    cpu: Figure = dataclasses.field(default_factory=Figure)


def pilot_mpi(base: Path, n: int, line: Line) -> None:
    """One MPI run of ``n`` ranks, one trivial job each; adds its samples to ``line`` (start-up of every rank)."""
    ap, stamps, ids = access_point(base, n)
    began, ended, cpu = _launch([*mpirun(n), PY, "-m", "apps.hpc_pilot", "--harvester-workdir", str(ap),
                                 "--site-name", "BENCH"], base / "out.txt")
    line.cpu.samples.append(cpu / n)
    outcomes = [json.loads((ap / ".hpc-pilot" / "ranks" / f"rank-{r}" / "outcome.json").read_text()) for r in range(n)]
    bad = [o for o in outcomes if o["exitStatus"] != 0 or any(j["state"] != "finished" for j in o["jobs"])]
    if bad:
        raise RuntimeError(f"ranks failed: {bad}")
    ends = []
    for rank, panda_id in enumerate(ids):
        start, end = _stamp(stamps / f"{panda_id}.start"), _stamp(stamps / f"{panda_id}.end")
        checked_out = (ap / ".hpc-pilot" / "ranks" / f"rank-{rank}" / "outcome.json").stat().st_mtime_ns / 1e9
        line.start.samples.append(start - began)
        line.own_end.samples.append(checked_out - end)
        ends.append(end)
    line.end.samples.append(ended - max(ends))
    line.wall.samples.append(ended - began)


def pilot_single(base: Path, n: int, line: Line) -> None:
    """``hpc-pilot --no-mpi`` alone running ``n`` trivial jobs one after the other."""
    ap, stamps, ids = access_point(base, n)
    began, ended, cpu = _launch([PY, "-m", "apps.hpc_pilot", "--harvester-workdir", str(ap), "--site-name",
                                 "BENCH", "--no-mpi"], base / "out.txt")
    line.cpu.samples.append(cpu)
    starts = [_stamp(stamps / f"{i}.start") for i in ids]
    ends = [_stamp(stamps / f"{i}.end") for i in ids]
    line.start.samples.append(min(starts) - began)
    line.end.samples.append(ended - max(ends))
    line.wall.samples.append(ended - began)
    order = sorted(zip(starts, ends, strict=True))
    line.gap.samples.extend(b[0] - a[1] for a, b in itertools.pairwise(order))


def baseline_mpi(base: Path, n: int, line: Line) -> None:
    """``mpirun`` of ``n`` ranks that import mpi4py, initialise MPI, stamp and exit."""
    base.mkdir(parents=True)
    script = base / "rank.py"
    script.write_text(MPI_RANK)
    began, ended, cpu = _launch([*mpirun(n), PY, str(script), str(base)], base / "out.txt")
    line.cpu.samples.append(cpu / n)
    ready = [_stamp(base / f"{r}.ready") for r in range(n)]
    line.start.samples.extend(t - began for t in ready)
    line.end.samples.append(ended - max(ready))
    line.wall.samples.append(ended - began)


def baseline_python(line: Line) -> None:
    """The bare interpreter: ``python -c pass``."""
    began = time.time()
    subprocess.run([PY, "-c", "pass"], check=True)
    line.wall.samples.append(time.time() - began)


def startup_figures(base: Path, ranks: Sequence[int], repeat: int) -> None:
    """Part 1: print start-up and wrap-up per rank, the pilot's and the baselines', runs taken in turn."""
    python = Line("python -c pass")
    rows: dict[int, tuple[Line, Line, Line]] = {
        n: (Line(f"hpc-pilot mpirun -np {n}"), Line(f"mpi4py rank mpirun -np {n}"),
            Line(f"hpc-pilot --no-mpi, {n} jobs")) for n in ranks}
    for i in range(repeat):
        baseline_python(python)
        for n, (pilot, bare, single) in rows.items():
            pilot_mpi(base / f"p{n}-{i}", n, pilot)
            baseline_mpi(base / f"b{n}-{i}", n, bare)
            pilot_single(base / f"s{n}-{i}", n, single)
    print(f"part 1: trivial jobs, one per rank, generic site, {CORES} cores; seconds, median (best) of {repeat} runs; "
          "start-up and own wrap-up are per rank (every rank of every run); CPU = user + system seconds of the whole "
          "launch (mpirun, daemon, ranks, payloads) per rank")
    print(f"{'':30} {'start-up':>15} {'own wrap-up':>15} {'worker wrap-up':>15} {'wall':>15} {'CPU/rank':>15}")
    print(f"{python.label:30} {'':>15} {'':>15} {'':>15} {python.wall.cell()}")
    for pilot, bare, _ in rows.values():
        print(f"{bare.label:30} {bare.start.cell()} {'':>15} {bare.end.cell()} {bare.wall.cell()} {bare.cpu.cell()}")
        print(f"{pilot.label:30} {pilot.start.cell()} {pilot.own_end.cell()} {pilot.end.cell()} {pilot.wall.cell()} "
              f"{pilot.cpu.cell()}")
        print(f"  vs the MPI baseline (medians): start-up x{pilot.start.median / bare.start.median:.2f} "
              f"(+{pilot.start.median - bare.start.median:.3f} s), worker wrap-up "
              f"x{pilot.end.median / bare.end.median:.2f} (+{pilot.end.median - bare.end.median:.3f} s), CPU/rank "
              f"x{pilot.cpu.median / bare.cpu.median:.2f} (+{pilot.cpu.median - bare.cpu.median:.3f} s)")
    print("no MPI: one process running the jobs itself; start-up = launch -> first payload start, gap = one payload's "
          "end -> the next one's start, wrap-up = last payload end -> exit; CPU of the whole run")
    print(f"{'':30} {'start-up':>15} {'gap':>15} {'wrap-up':>15} {'wall':>15} {'CPU':>15}")
    for _, _, single in rows.values():
        print(f"{single.label:30} {single.start.cell()} {single.gap.cell()} {single.end.cell()} {single.wall.cell()} "
              f"{single.cpu.cell()}")


# ------------------------------------------------------------------------------------------------------- part 2
OPS = ("create", "read", "rename", "remove", "mkdir", "rmdir", "list", "stat", "flock", "meta", "copy")
_AUDITED = {"os.rename": "rename", "os.remove": "remove", "os.rmdir": "rmdir", "os.mkdir": "mkdir",
            "os.listdir": "list", "os.scandir": "list", "os.chmod": "meta", "os.utime": "meta",
            "os.symlink": "meta", "os.link": "meta", "fcntl.flock": "flock", "shutil.copyfile": "copy"}
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class FsCounter:
    """Counts this process's file-system operations under a root, by (phase, place, operation) (see the module)."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.ramdisk: str | None = None
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.paths: collections.Counter[tuple[str, str]] = collections.Counter()
        self._inside = threading.local()
        sys.addaudithook(self._hook)

    @contextlib.contextmanager
    def recording(self, root: Path, ramdisk: Path | None = None) -> Iterator[None]:
        """Count the operations under ``root`` (and, apart, under ``ramdisk``) while in the block."""
        self.counts.clear()
        self.paths.clear()
        stat, lstat = os.stat, os.lstat

        def counted_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            self._count("stat", path, kwargs.get("dir_fd"))
            return stat(path, *args, **kwargs)

        def counted_lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            self._count("stat", path, kwargs.get("dir_fd"))
            return lstat(path, *args, **kwargs)

        self.root, self.ramdisk = str(root), str(ramdisk) if ramdisk else None
        os.stat, os.lstat = counted_stat, counted_lstat  # type: ignore[assignment]
        try:
            yield
        finally:
            os.stat, os.lstat = stat, lstat
            self.root = self.ramdisk = None

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.root is None or getattr(self._inside, "busy", False):
            return
        if event == "open":
            path, _mode, flags = args
            if isinstance(path, int):  # fdopen of a descriptor already opened
                return
            self._count("create" if isinstance(flags, int) and flags & _WRITING else "read", path, None)
        elif event in _AUDITED:
            op = _AUDITED[event]
            dir_fd = args[-1] if event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod") else None
            self._count(op, args[0], dir_fd if isinstance(dir_fd, int) and dir_fd >= 0 else None)

    def _count(self, op: str, path: Any, dir_fd: int | None) -> None:
        if self.root is None:
            return
        self._inside.busy = True
        try:
            full = self._resolve(path, dir_fd)
        finally:
            self._inside.busy = False
        if full is None:
            return
        place = self._place(full)
        if place is not None:
            phase = threading.current_thread().name
            self.counts[(phase, place, op)] += 1
            self.paths[(op, full)] += 1

    @staticmethod
    def _resolve(path: Any, dir_fd: int | None) -> str | None:
        try:
            if isinstance(path, int):
                return os.readlink(f"/proc/self/fd/{path}")
            text = os.fsdecode(path)
            if dir_fd is not None and not text.startswith("/"):
                return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
            return os.path.abspath(text)
        except (OSError, TypeError):
            return None

    def _place(self, full: str) -> str | None:
        return place_of(full, self.root or "", self.ramdisk)


def place_of(full: str, root: str, ramdisk: str | None) -> str | None:
    """Where ``full`` is: the RAM disk, a part of the access point ``root``, or None (elsewhere)."""
    if ramdisk and (full == ramdisk or full.startswith(ramdisk + "/")):
        return "RAM disk (node-local)"
    if not full.startswith(root + "/"):
        return None
    rest = full[len(root) + 1:].split("/")
    if rest[0].isdigit():
        return "job dir <ap>/<PandaID>"
    if rest[0] != ".hpc-pilot":
        return "worker files <ap>/*"
    if len(rest) > 1 and rest[1] == "work":
        return "work dir <ap>/.hpc-pilot/work"
    if len(rest) > 1 and rest[1] == "ranks":
        return "rank board .hpc-pilot/ranks"
    return "pilot state .hpc-pilot/rank-N"


@contextlib.contextmanager
def _rank_env(rank: int, size: int) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("PMI_RANK", "PMI_SIZE")}
    os.environ.update(PMI_RANK=str(rank), PMI_SIZE=str(size))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _in_process(ap: Path, extra: Sequence[str], rank: int = 0, size: int = 1) -> int:
    """Run rank ``rank`` of ``size`` of hpc-pilot in this process (its console output to a file)."""
    from apps.hpc_pilot.__main__ import main  # noqa: PLC0415 - imported once part 2 starts

    with _rank_env(rank, size), (ap.parent / f"console-{rank}.txt").open("w") as sink, \
            contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return main(["--harvester-workdir", str(ap), "--site-name", "BENCH", "--no-mpi", "--log-level", "WARNING",
                     *extra])


def _table(title: str, counts: collections.Counter[tuple[str, str, str]], key: int, per: int) -> None:
    rows = sorted({k[key] for k in counts})
    print(title)
    print(f"  {'':32}" + "".join(f"{op:>7}" for op in OPS) + f"{'total':>7}")
    for row in rows:
        cells = [sum(v for k, v in counts.items() if k[key] == row and k[2] == op) / per for op in OPS]
        print(f"  {row:32}" + "".join(f"{c:7.4g}" if c else f"{'.':>7}" for c in cells) + f"{sum(cells):7.4g}")


def _shared(counts: collections.Counter[tuple[str, str, str]]) -> collections.Counter[tuple[str, str, str]]:
    return collections.Counter({k: v for k, v in counts.items() if not k[1].startswith("RAM disk")})


def _site_run(folder: Path, site: str) -> tuple[Path, Path | None, list[str]]:
    """An access point of one job with I/O, the RAM disk (olcf only) and the pilot's site options."""
    ap, _, _ = access_point(folder, 1, io=True)
    if site != "olcf":
        return ap, None, ["--site-option", "min_free_mb=1"]
    ramdisk = Path(tempfile.mkdtemp(prefix="bench-hpc-", dir="/dev/shm"))
    return ap, ramdisk, ["--site", "olcf", "--site-option", f"ramdisk={ramdisk}", "--site-option", "min_free_mb=1"]


def fs_figures(base: Path, counter: FsCounter, poll_ranks: int, detail: bool) -> None:
    """Part 2: print the file-system operations per job, generic and olcf, and rank 0's per look at a pending rank."""
    print("part 2: file-system operations of the pilot's own threads per job (one job: a linked input, one output, "
          "the log), in-process rank 0 of 1; per phase (thread) and per place")
    totals = {}
    for site in ("generic", "olcf"):
        folder = base / site
        ap, ramdisk, extra = _site_run(folder, site)
        try:
            with counter.recording(ap, ramdisk):
                status = _in_process(ap, extra)
            counts = collections.Counter(counter.counts)
            paths = collections.Counter(counter.paths)
        finally:
            if ramdisk is not None:
                shutil.rmtree(ramdisk, ignore_errors=True)
        if status != 0:
            raise RuntimeError(f"{site} rank exited {status}: {(folder / 'console-0.txt').read_text()[-2000:]}")
        totals[site] = counts
        _table(f"{site} site: by phase (shared file system only)", _shared(counts), 0, 1)
        _table(f"{site} site: by place", counts, 1, 1)
        if detail:
            for (op, path), n in sorted(paths.items()):
                print(f"    {n:3d} {op:7} {path.replace(str(ap), '<ap>')}")
    shared = {site: sum(_shared(c).values()) for site, c in totals.items()}
    print(f"shared-file-system operations per job: generic {shared['generic']}, olcf {shared['olcf']} "
          f"(olcf/generic {shared['olcf'] / shared['generic']:.2f}); "
          f"olcf on the RAM disk: {sum(totals['olcf'].values()) - shared['olcf']}")
    if shutil.which("strace") is not None:
        strace_figures(base / "strace")
    else:
        print("part 2b: strace is not installed, skipped")
    gather_figures(base / "gather", counter, poll_ranks)


STRACE_OPS = ("create", "read", "stat", "fstat", "rename", "remove", "mkdir", "list", "flock", "meta")
_STRACE_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
_STRACE_PATH = re.compile(r'^(?:(?:AT_FDCWD|\d+)<([^>]*)>,\s*)?"((?:[^"\\]|\\.)*)"')
_STRACE_FD = re.compile(r"^\d+<([^>]*)>")
_STRACE_KIND = {
    **dict.fromkeys(("stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink",
                     "readlinkat", "statfs", "getxattr", "lgetxattr"), "stat"),
    **dict.fromkeys(("rename", "renameat", "renameat2"), "rename"),
    **dict.fromkeys(("unlink", "unlinkat", "rmdir"), "remove"),
    **dict.fromkeys(("mkdir", "mkdirat"), "mkdir"),
    **dict.fromkeys(("chmod", "fchmodat", "utimensat", "utime", "utimes", "chown", "fchownat", "lchown", "symlink",
                     "symlinkat", "link", "linkat", "truncate"), "meta"),
    "getdents64": "list", "flock": "flock",
}


def _strace_line(line: str, roles: dict[str, str]) -> tuple[str, str, str] | None:
    """(actor, syscall kind, absolute path) of one ``strace -f -y`` line; None for a line that is no file call."""
    found = _STRACE_CALL.match(line)
    if found is None:
        return None
    pid, call, args = found.groups()
    if call in ("clone", "clone3", "fork", "vfork"):
        child = line.rsplit("= ", 1)[-1].split(maxsplit=1)[0] if "= " in line else ""
        if child.isdigit():
            roles[child] = roles.get(pid, "pilot")
        return None
    if call == "execve":
        binary = args.split('"', 2)[1] if '"' in args else ""
        roles[pid] = "pilot" if Path(binary).name.startswith("python") else "payload"
        return None
    actor = roles.get(pid, "pilot")
    path_arg = _STRACE_PATH.match(args)
    if path_arg is not None:
        folder, name = path_arg.groups()
        full = name if name.startswith("/") else os.path.join(folder or "", name) if folder else None
        if name == "" and folder:
            full = folder
        if full is None:
            return None
        if call in ("openat", "open", "creat", "openat2"):
            kind = "create" if ("O_CREAT" in args or "O_WRONLY" in args or "O_RDWR" in args) else "read"
        elif call == "newfstatat" and "AT_EMPTY_PATH" in args:
            kind = "fstat"
        else:
            kind = _STRACE_KIND.get(call, "")
        return (actor, kind, os.path.normpath(full)) if kind else None
    fd_arg = _STRACE_FD.match(args)
    kind = _STRACE_KIND.get(call, "")
    if fd_arg is not None and kind:
        return actor, kind, fd_arg.group(1)
    return None


def strace_counts(ap: Path, ramdisk: Path | None, extra: Sequence[str], trace: Path) -> collections.Counter[
        tuple[str, str, str]]:
    """The system calls on paths of one rank (``hpc-pilot --no-mpi`` under ``strace -f -y``), its processes and
    its payload's, by (actor, place, kind)."""
    subprocess.run(["strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(trace), "-e",
                    "trace=%file,getdents64,flock,clone,clone3,fork,vfork", PY, "-m", "apps.hpc_pilot",
                    "--harvester-workdir", str(ap), "--site-name", "BENCH", "--no-mpi", *extra],
                   env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    roles: dict[str, str] = {}
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    with trace.open(errors="replace") as lines:
        for line in lines:
            if "resumed>" in line:  # the call's arguments were on its "<unfinished ...>" line
                continue
            parsed = _strace_line(line, roles)
            if parsed is None:
                continue
            actor, kind, full = parsed
            place = place_of(full, str(ap), str(ramdisk) if ramdisk else None)
            if place is not None:
                counts[(actor, place, kind)] += 1
    return counts


def strace_figures(base: Path) -> None:
    """Part 2b: the rank's and its payload's system calls on paths, generic and olcf (strace)."""
    print("part 2b: system calls on paths of the whole rank (strace -f -y: the pilot's processes and the payload's; "
          "the same job, the payload writing 20 small files, listing, removing one), per job")
    shared_by = {}
    for site in ("generic", "olcf"):
        folder = base / site
        ap, ramdisk, extra = _site_run(folder, site)
        try:
            counts = strace_counts(ap, ramdisk, extra, folder / "trace.txt")
        finally:
            if ramdisk is not None:
                shutil.rmtree(ramdisk, ignore_errors=True)
        print(f"{site} site")
        print(f"  {'':42}" + "".join(f"{op:>7}" for op in STRACE_OPS) + f"{'total':>7}")
        for actor, place in sorted({(k[0], k[1]) for k in counts}):
            cells = [counts[(actor, place, op)] for op in STRACE_OPS]
            print(f"  {actor + ': ' + place:42}" + "".join(f"{c:7d}" if c else f"{'.':>7}" for c in cells)
                  + f"{sum(cells):7d}")
        shared_by[site] = {actor: sum(v for k, v in counts.items() if k[0] == actor and not k[1].startswith("RAM"))
                           for actor in ("pilot", "payload")}
    print("on the shared file system per job: " + "; ".join(
        f"{site} pilot {v['pilot']}, payload {v['payload']}" for site, v in shared_by.items()))


def gather_figures(base: Path, counter: FsCounter, size: int) -> None:
    """Rank 0 of ``size`` in this process, the others real processes whose payloads sleep 2 s: its gather."""
    ap, _, ids = access_point(base, size, sleep=2.0)
    (ap / str(ids[0]) / "HPCJobs.json").write_text(json.dumps({str(ids[0]): _job(ids[0], "true")}))
    env = {**ENV, "PMI_SIZE": str(size)}
    others = [subprocess.Popen([PY, "-m", "apps.hpc_pilot", "--harvester-workdir", str(ap), "--site-name", "BENCH",
                                "--no-mpi"], env={**env, "PMI_RANK": str(r)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for r in range(1, size)]
    began = time.monotonic()
    with counter.recording(ap):
        status = _in_process(ap, [], 0, size)
    wall = time.monotonic() - began
    for proc in others:
        proc.wait()
    if status != 0:
        raise RuntimeError(f"rank 0 exited {status}")
    main = collections.Counter({k: v for k, v in counter.counts.items() if k[0] == "MainThread"})
    board = {op: sum(v for k, v in main.items() if k[1].startswith("rank board") and k[2] == op) for op in OPS}
    outcome_reads = sum(n for (op, path), n in counter.paths.items()
                        if op == "read" and path.endswith("outcome.json") and "/rank-0/" not in path)
    looks = outcome_reads - (size - 1)  # a look at a pending rank reads its outcome (missing), a found one once more
    print(f"rank 0 of {size}, the others' payloads sleep 2 s; rank 0's wall {wall:.2f} s; its main thread on the rank "
          "board (own check-in and check-out, then the gather):")
    print("  " + ", ".join(f"{op} {n}" for op, n in board.items() if n))
    print(f"  {looks} looks at a pending rank ({outcome_reads} opens of outcome.json = {looks} missing + {size - 1} "
          f"found): {(board['read'] - (size - 1)) / max(looks, 1):.2f} opens (outcome.json, alive) and "
          f"{(board['flock'] - 1) / max(looks, 1):.2f} flocks (0 while a rank has not checked in yet) per look")


def import_figures() -> None:
    """Part 3: the file system calls of a rank's imports (strace), against the bare interpreter's."""
    if shutil.which("strace") is None:
        print("part 3: strace is not installed, skipped")
        return

    def calls(code: str) -> dict[str, int]:
        done = subprocess.run(["strace", "-f", "-c", "-e", "trace=%file", PY, "-c", code], env=ENV, check=True,
                              capture_output=True, text=True)
        found = {}
        for row in done.stderr.splitlines():
            cells = row.split()
            if len(cells) >= 5 and cells[3].isdigit():
                found[cells[-1]] = int(cells[3])
        return found

    bare, pilot = calls("pass"), calls("import apps.hpc_pilot.__main__, mpi4py.MPI")
    print("part 3: file system calls of one rank's start before its first line of work (strace -f -c -e trace=%file "
          "of the imports of hpc-pilot and mpi4py.MPI, compiled bytecode): they go where the interpreter and the "
          "venv are installed, the shared file system unless the site has them node-local (container, CVMFS)")
    for name in ("openat", "newfstatat", "stat", "statx", "total"):
        if name in pilot:
            print(f"  {name:12} {pilot[name]:6d}   python -c pass: {bare.get(name, 0):5d}")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2,8", help="comma-separated rank counts of part 1")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each part-1 figure")
    parser.add_argument("--poll-ranks", type=int, default=4, help="ranks of part 2's gather")
    parser.add_argument("--paths", action="store_true", help="part 2: list every path counted")
    parser.add_argument("--skip", choices=("1", "2", "3"), action="append", default=[], help="skip a part")
    args = parser.parse_args()
    compileall.compile_dir(str(REPO / "pilotlib"), quiet=2)  # an installed pilot has its bytecode compiled
    compileall.compile_dir(str(REPO / "apps"), quiet=2)
    with tempfile.TemporaryDirectory(prefix="bench-hpc-") as tmp:
        base = Path(tmp)
        if "1" not in args.skip:
            startup_figures(base / "startup", [int(n) for n in args.ranks.split(",")], max(1, args.repeat))
        if "2" not in args.skip:
            fs_figures(base / "fs", FsCounter(), max(2, args.poll_ranks), args.paths)
        if "3" not in args.skip:
            import_figures()


if __name__ == "__main__":
    main()
