"""Monitors' checks with a hand-made context: limits, defaults, prmon input, bounded scans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pilotlib import errors
from pilotlib.errors import ErrorCode
from pilotlib.payload import (
    FreeDiskMonitor,
    LoopingJobError,
    LoopingMonitor,
    MemoryLimitExceededError,
    MemoryMonitor,
    Monitor,
    MonitorContext,
    NoLocalSpaceError,
    ReachedMaxTimeError,
    ResourceSnapshot,
    StdoutSizeMonitor,
    StdoutTooBigError,
    UserDirTooLargeError,
    WalltimeMonitor,
    WorkdirSizeMonitor,
    memory_limit_kb,
)
from pilotlib.payload import errors as perrors
from pilotlib.payload._monitors import newest_mtime, tree_size

T0 = 1_700_000_000.0


def _ctx(workdir: Path, now: float, snapshot: ResourceSnapshot | None = None) -> MonitorContext:
    return MonitorContext(
        now=now,
        started=T0,
        workdir=workdir,
        stdout=workdir / "payload.stdout",
        stderr=workdir / "payload.stderr",
        snapshot=snapshot,
    )


def test_defaults_are_production_values() -> None:
    """Defaults follow production pilots: looping 2 h, stdout 2 GiB, free space 1 GB."""
    assert LoopingMonitor().limit == 7200
    assert StdoutSizeMonitor().limit_bytes == 2 * 1024**3
    assert FreeDiskMonitor().min_free_bytes == 10**9


def test_monitors_satisfy_protocol() -> None:
    """Every monitor class is a Monitor (interval + check)."""
    for monitor in (
        WalltimeMonitor(),
        LoopingMonitor(),
        MemoryMonitor(limit_kb=1),
        WorkdirSizeMonitor(limit_bytes=1),
        StdoutSizeMonitor(),
        FreeDiskMonitor(),
    ):
        assert isinstance(monitor, Monitor)


def test_walltime_limit(tmp_path: Path) -> None:
    """The job's wall-time limit is reached exactly at max_seconds after start (1213)."""
    monitor = WalltimeMonitor(max_seconds=100)
    assert monitor.check(_ctx(tmp_path, T0 + 99.9)) is None
    error = monitor.check(_ctx(tmp_path, T0 + 100))
    assert isinstance(error, ReachedMaxTimeError)
    assert error.code == ErrorCode.REACHEDMAXTIME


def test_pilot_deadline_with_margin(tmp_path: Path) -> None:
    """The pilot's end of life minus the margin stops the payload (1213), whatever the job's own limit."""
    monitor = WalltimeMonitor(deadline=T0 + 1000, margin=300)
    assert monitor.check(_ctx(tmp_path, T0 + 699)) is None
    error = monitor.check(_ctx(tmp_path, T0 + 700))
    assert isinstance(error, ReachedMaxTimeError)
    assert "lifetime" in str(error)


def test_looping_uses_newest_mtime(tmp_path: Path) -> None:
    """Looping is measured from the newest file mtime anywhere under the work dir (1150)."""
    (tmp_path / "a").mkdir()
    old, new = tmp_path / "old.txt", tmp_path / "a" / "new.txt"
    old.write_text("1")
    new.write_text("2")
    os.utime(old, (T0 + 10, T0 + 10))
    os.utime(new, (T0 + 500, T0 + 500))
    monitor = LoopingMonitor(limit=1000)
    assert monitor.check(_ctx(tmp_path, T0 + 1500)) is None
    error = monitor.check(_ctx(tmp_path, T0 + 1501))
    assert isinstance(error, LoopingJobError)
    assert error.code == 1150


def test_looping_counts_from_start(tmp_path: Path) -> None:
    """Files older than the payload's start do not make a fresh payload look like a looping one."""
    stale = tmp_path / "input.root"
    stale.write_text("x")
    os.utime(stale, (T0 - 10_000, T0 - 10_000))
    monitor = LoopingMonitor(limit=1000)
    assert monitor.check(_ctx(tmp_path, T0 + 999)) is None
    assert isinstance(monitor.check(_ctx(tmp_path, T0 + 1001)), LoopingJobError)


def test_newest_mtime_bounded(tmp_path: Path) -> None:
    """The scan stops after max_entries entries (it stays cheap on huge work dirs)."""
    for i in range(50):
        f = tmp_path / f"f{i:02d}"
        f.write_text("x")
        os.utime(f, (T0 + i, T0 + i))
    assert newest_mtime(tmp_path) == T0 + 49
    with os.scandir(tmp_path) as it:
        first_five = [e.stat().st_mtime for _, e in zip(range(5), it, strict=False)]
    assert newest_mtime(tmp_path, max_entries=5) == max(first_five)
    assert tree_size(tmp_path, max_entries=5) == 5
    assert tree_size(tmp_path) == 50


def test_memory_from_snapshot(tmp_path: Path) -> None:
    """PSS from the runner's /proc snapshot above the limit gives PAYLOADEXCEEDMAXMEM (1235)."""
    monitor = MemoryMonitor(limit_kb=1000)
    assert monitor.check(_ctx(tmp_path, T0)) is None
    assert monitor.check(_ctx(tmp_path, T0, ResourceSnapshot(time=T0, nprocs=1, pss_kb=1000))) is None
    error = monitor.check(_ctx(tmp_path, T0, ResourceSnapshot(time=T0, nprocs=1, pss_kb=1001)))
    assert isinstance(error, MemoryLimitExceededError)
    assert error.code == ErrorCode.PAYLOADEXCEEDMAXMEM
    assert "/proc" in str(error)


def test_memory_from_prmon(tmp_path: Path) -> None:
    """prmon's summary Max.pss wins over the /proc snapshot when the file is there; else the snapshot is used."""
    summary = tmp_path / "memory_monitor_summary.json"
    monitor = MemoryMonitor(limit_kb=1000, prmon_summary=summary)
    small = ResourceSnapshot(time=T0, nprocs=1, pss_kb=10)
    assert monitor.check(_ctx(tmp_path, T0, small)) is None
    summary.write_text(json.dumps({"Max": {"pss": 5000, "rss": 6000, "vmem": 9000, "swap": 0}, "Avg": {}}))
    error = monitor.check(_ctx(tmp_path, T0, small))
    assert isinstance(error, MemoryLimitExceededError)
    assert "5000 kB" in str(error)
    assert "prmon" in str(error)


def test_workdir_size(tmp_path: Path) -> None:
    """The work dir's total file size (subdirectories included) above the limit gives USERDIRTOOLARGE (1104)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 600)
    (tmp_path / "g").write_bytes(b"x" * 400)
    assert WorkdirSizeMonitor(limit_bytes=1000).check(_ctx(tmp_path, T0)) is None
    error = WorkdirSizeMonitor(limit_bytes=999).check(_ctx(tmp_path, T0))
    assert isinstance(error, UserDirTooLargeError)
    assert error.code == 1104


@pytest.mark.parametrize("name", ["payload.stdout", "payload.stderr"])
def test_stdout_size(tmp_path: Path, name: str) -> None:
    """Payload stdout or stderr above the limit gives STDOUTTOOBIG (1106); absent files are fine."""
    monitor = StdoutSizeMonitor(limit_bytes=100)
    assert monitor.check(_ctx(tmp_path, T0)) is None
    (tmp_path / name).write_bytes(b"x" * 101)
    error = monitor.check(_ctx(tmp_path, T0))
    assert isinstance(error, StdoutTooBigError)
    assert error.code == 1106
    assert name in str(error)


def test_free_disk(tmp_path: Path) -> None:
    """Free space below the minimum gives NOLOCALSPACE (1098); a small minimum passes."""
    assert FreeDiskMonitor(min_free_bytes=1).check(_ctx(tmp_path, T0)) is None
    error = FreeDiskMonitor(min_free_bytes=10**18).check(_ctx(tmp_path, T0))
    assert isinstance(error, NoLocalSpaceError)
    assert error.code == ErrorCode.NOLOCALSPACE


def test_error_types_and_codes() -> None:
    """Monitors raise the ground-floor error types (one type per failure); payload-only errors have exact codes."""
    assert perrors.LoopingJobError is errors.LoopingJobError
    assert perrors.PandaKillError is errors.PandaKillError
    assert perrors.UserDirTooLargeError is errors.UserDirTooLargeError
    assert perrors.MemoryLimitExceededError is errors.MemoryLimitExceededError
    assert {
        cls.__name__: int(cls.code)
        for cls in (
            perrors.TrfDownloadError,
            perrors.TrfChmodError,
            perrors.TransformNotFoundError,
            perrors.PayloadStartError,
            perrors.PayloadKilledError,
        )
    } == {
        "TrfDownloadError": 1149,
        "TrfChmodError": 1143,
        "TransformNotFoundError": 1346,
        "PayloadStartError": 1305,
        "PayloadKilledError": 1200,
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"resource_type": "SCORE", "core_count": 1}, 2 * 2000 * 1024),
        ({"resource_type": "MCORE", "core_count": 8}, 2 * 2000 * 8 * 1024),
        ({"resource_type": "MCORE_HIMEM", "core_count": 8, "rss_grace": 1.5}, int(1.5 * 3000 * 8 * 1024)),
        ({"resource_type": "", "core_count": 0}, 2 * 4001 * 1024),
        (
            {"resource_type": "SCORE_VHIMEM", "core_count": 2, "queue_maxrss_mb": 16000, "queue_corecount": 8},
            2 * 4000 * 1024,
        ),
        ({"resource_type": "MCORE_VHIMEM", "core_count": 8, "queue_maxrss_mb": 64000}, 2 * 64000 * 1024),
        ({"resource_type": "MCORE_VHIMEM", "core_count": 8, "min_ram_mb": 5000}, 2 * 5000 * 1024),
        ({"resource_type": "MCORE_VHIMEM", "core_count": 8}, None),
    ],
)
def test_memory_limit(kwargs: dict[str, object], expected: int | None) -> None:
    """The limit is per-core memory of the resource type x cores x grace; VHIMEM uses the queue's maxrss; else
    minRamCount; else none."""
    assert memory_limit_kb(**kwargs) == expected  # type: ignore[arg-type]
