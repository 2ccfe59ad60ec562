"""Resource usage of the payload's process tree, read from /proc (private: import from :mod:`pilotlib.payload`).

The payload runs in its own session (``start_new_session``), so its processes are those whose session id is the
payload's pid (a process that calls ``setsid`` itself leaves the tree). Memory figures are in kB and named as prmon
names them in ``memory_monitor_summary.json`` (``Max``: ``pss rss vmem swap``; ``Avg`` likewise), which pilot3
turns into ``maxPSS``/``avgRSS``/... for the job report and heartbeats (``pilot/user/atlas/utilities.py``,
``pilot/user/atlas/memory.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from pathlib import Path

import attrs

__all__ = [
    "ResourceSnapshot",
    "ResourceUsage",
    "UsageTracker",
    "marked_processes",
    "read_prmon_summary",
    "sample_session",
    "session_members",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@attrs.frozen
class ResourceSnapshot:
    """One reading of a process tree.

    Attributes:
        time: when it was taken (the runner's clock, seconds since the epoch).
        nprocs: processes in the tree.
        cpu_seconds: user + system CPU of the live processes and of the children they have reaped.
        pss_kb: proportional set size, summed.
        rss_kb: resident set size, summed.
        vmem_kb: virtual memory, summed.
        swap_kb: swapped-out memory, summed.
    """

    time: float
    nprocs: int = 0
    cpu_seconds: float = 0.0
    pss_kb: int = 0
    rss_kb: int = 0
    vmem_kb: int = 0
    swap_kb: int = 0


@attrs.frozen
class ResourceUsage:
    """Summary of a payload's resource use, with prmon's figures (kB) for heartbeats and the job report.

    Attributes:
        cpu_seconds: CPU time consumed so far (or in total, after the end).
        max_pss_kb: ``maxPSS``.
        max_rss_kb: ``maxRSS``.
        max_vmem_kb: ``maxVMEM``.
        max_swap_kb: ``maxSWAP``.
        avg_pss_kb: ``avgPSS``.
        avg_rss_kb: ``avgRSS``.
        avg_vmem_kb: ``avgVMEM``.
        avg_swap_kb: ``avgSWAP``.
        samples: how many snapshots the averages are over (0 when read from prmon).
    """

    cpu_seconds: float = 0.0
    max_pss_kb: int = 0
    max_rss_kb: int = 0
    max_vmem_kb: int = 0
    max_swap_kb: int = 0
    avg_pss_kb: int = 0
    avg_rss_kb: int = 0
    avg_vmem_kb: int = 0
    avg_swap_kb: int = 0
    samples: int = 0

    def update_fields(self) -> dict[str, int]:
        """The ``updateJob`` fields: ``cpuConsumptionTime`` (whole seconds) and the memory figures of
        :meth:`as_prmon`. ``cpuConsumptionUnit``/``cpuConversionFactor`` are the caller's (they describe the node)."""
        return {"cpuConsumptionTime": round(self.cpu_seconds), **self.as_prmon()}

    def as_prmon(self) -> dict[str, int]:
        """The figures under the names PanDA uses (``maxPSS``, ``avgRSS``, ... in kB)."""
        return {
            "maxPSS": self.max_pss_kb,
            "maxRSS": self.max_rss_kb,
            "maxVMEM": self.max_vmem_kb,
            "maxSWAP": self.max_swap_kb,
            "avgPSS": self.avg_pss_kb,
            "avgRSS": self.avg_rss_kb,
            "avgVMEM": self.avg_vmem_kb,
            "avgSWAP": self.avg_swap_kb,
        }


class UsageTracker:
    """Folds snapshots into a :class:`ResourceUsage` (maxima and running averages). Not thread-safe by itself."""

    def __init__(self) -> None:
        self._n = 0
        self._sums = [0, 0, 0, 0]
        self._usage = ResourceUsage()

    @property
    def usage(self) -> ResourceUsage:
        """The summary so far."""
        return self._usage

    def add(self, snap: ResourceSnapshot) -> ResourceUsage:
        """Fold in one snapshot and return the new summary."""
        if snap.nprocs == 0:
            return self._usage
        self._n += 1
        figures = (snap.pss_kb, snap.rss_kb, snap.vmem_kb, snap.swap_kb)
        self._sums = [s + f for s, f in zip(self._sums, figures, strict=True)]
        u = self._usage
        self._usage = ResourceUsage(
            cpu_seconds=max(u.cpu_seconds, snap.cpu_seconds),
            max_pss_kb=max(u.max_pss_kb, snap.pss_kb),
            max_rss_kb=max(u.max_rss_kb, snap.rss_kb),
            max_vmem_kb=max(u.max_vmem_kb, snap.vmem_kb),
            max_swap_kb=max(u.max_swap_kb, snap.swap_kb),
            avg_pss_kb=self._sums[0] // self._n,
            avg_rss_kb=self._sums[1] // self._n,
            avg_vmem_kb=self._sums[2] // self._n,
            avg_swap_kb=self._sums[3] // self._n,
            samples=self._n,
        )
        return self._usage

    def finish(self, cpu_seconds: float, max_rss_kb: int) -> ResourceUsage:
        """Fold in the final figures from the reaped process (``wait4`` rusage) and return the summary."""
        u = self._usage
        self._usage = attrs.evolve(
            u, cpu_seconds=max(u.cpu_seconds, cpu_seconds), max_rss_kb=max(u.max_rss_kb, max_rss_kb)
        )
        return self._usage


def _session_pids(sid: int, proc: Path, others: Collection[int] = ()) -> Iterator[tuple[int, list[str]]]:
    """Yield (pid, stat fields after the command name) of every process in session ``sid`` (or in ``others``)."""
    sessions = {sid, *others}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = (proc / entry.name / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rfind(")") + 2 :].split()
        # fields[0] is state (field 3); session is field 6 -> index 3
        if len(fields) > 21 and int(fields[3]) in sessions and fields[0] != "Z":
            yield int(entry.name), fields


def session_members(sid: int, proc: Path = Path("/proc")) -> list[tuple[int, int]]:
    """(pid, process group id) of every live (non-zombie) process in session ``sid``."""
    # pgrp is field 5 -> index 2
    return [(pid, int(fields[2])) for pid, fields in _session_pids(sid, proc)]


def marked_processes(name: str, value: str, proc: Path = Path("/proc")) -> list[int]:
    """The live processes whose environment holds ``name=value`` (the payload runner's mark: every process the
    payload started carries it, also one that left the payload's session with ``setsid``), this process excluded."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not _is_zombie(entry):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _is_zombie(entry: Path) -> bool:
    text = (entry / "stat").read_text()
    return text[text.rfind(")") + 2] == "Z"


def _smaps_rollup(pid: int, proc: Path) -> tuple[int, int] | None:
    """(Pss, Swap) in kB from ``/proc/<pid>/smaps_rollup``; ``None`` when unreadable (kernel before 4.14, gone)."""
    pss = swap = 0
    try:
        with open(proc / str(pid) / "smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Swap:"):
                    swap = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pss, swap


def sample_session(sid: int, now: float, proc: Path = Path("/proc"), *,
                   others: Collection[int] = ()) -> ResourceSnapshot:
    """Read the resource use of every live process in session ``sid``.

    Args:
        sid: the session id (the payload's pid, as it was started with ``start_new_session``).
        now: the time to stamp the snapshot with.
        proc: the proc file system (a test may pass a fake tree).
        others: further sessions whose processes are the payload's (a container outside its session), summed in.

    Returns:
        The summed figures; ``nprocs == 0`` when the session has no live process.
    """
    n = 0
    cpu_ticks = pss = rss = vmem = swap = 0
    for pid, f in _session_pids(sid, proc, others):
        n += 1
        # utime stime cutime cstime are fields 14-17 -> indexes 11-14; vsize 23 -> 20; rss 24 -> 21
        cpu_ticks += sum(int(x) for x in f[11:15])
        vmem += int(f[20]) // 1024
        proc_rss = int(f[21]) * _PAGE_KB
        rss += proc_rss
        rollup = _smaps_rollup(pid, proc)
        # without smaps_rollup, RSS stands in for PSS (an upper bound: the memory limit errs on the safe side)
        p, s = rollup if rollup is not None else (proc_rss, 0)
        pss += p
        swap += s
    return ResourceSnapshot(
        time=now,
        nprocs=n,
        cpu_seconds=cpu_ticks / _CLK_TCK,
        pss_kb=pss,
        rss_kb=rss,
        vmem_kb=vmem,
        swap_kb=swap,
    )


def read_prmon_summary(path: Path) -> ResourceUsage | None:
    """Read prmon's ``memory_monitor_summary.json`` (``Max``/``Avg`` sections, kB; CPU ``utime + stime``).

    Args:
        path: the summary file.

    Returns:
        The figures, or ``None`` when the file is absent or not a prmon summary (yet).
    """
    try:
        data = json.loads(path.read_text())
        mx, avg = data["Max"], data["Avg"]
        return ResourceUsage(
            cpu_seconds=float(mx.get("utime", 0)) + float(mx.get("stime", 0)),
            max_pss_kb=int(mx["pss"]),
            max_rss_kb=int(mx["rss"]),
            max_vmem_kb=int(mx["vmem"]),
            max_swap_kb=int(mx.get("swap", 0)),
            avg_pss_kb=int(avg.get("pss", 0)),
            avg_rss_kb=int(avg.get("rss", 0)),
            avg_vmem_kb=int(avg.get("vmem", 0)),
            avg_swap_kb=int(avg.get("swap", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):  # any other shape: not prmon's
        return None
