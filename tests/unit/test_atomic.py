"""The one atomic write and the one bounded wait (:mod:`pilotlib._atomic`)."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from pilotlib._atomic import wait_until, write_atomic
from pilotlib.errors import SigTermError
from pilotlib.stop import Stop


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------------------------------ write_atomic
def test_write_replaces_the_file_text_as_utf8_and_bytes_as_given(tmp_path: Path) -> None:
    """A ``str`` is written as UTF-8, ``bytes`` as they are; each write replaces the whole file; no temp is left."""
    target = tmp_path / "doc.json"
    write_atomic(target, "{\"name\": \"Zürich\"}")
    assert target.read_bytes() == "{\"name\": \"Zürich\"}".encode()
    write_atomic(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert _names(tmp_path) == ["doc.json"]


def test_mode_and_mtime(tmp_path: Path) -> None:
    """Without ``mode`` the new file is 0o600 (mkstemp's); with it, exactly ``mode``; ``mtime`` sets both times."""
    private, shared = tmp_path / "private", tmp_path / "shared"
    write_atomic(private, "x", fsync=False)
    write_atomic(shared, "x", mode=0o644, mtime=1_000_000.0)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert shared.stat().st_mtime == 1_000_000.0 and shared.stat().st_atime == 1_000_000.0


def test_full_disk_mid_write_keeps_the_old_file_and_no_temp(small_fs: Path) -> None:
    """A write that fills the (real, 16 MiB tmpfs) file system fails with ENOSPC: the old content is still there,
    whole, and the temporary file is gone (so the space is given back)."""
    target = small_fs / "final_update.json"
    write_atomic(target, "old")
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    with pytest.raises(OSError) as caught:
        write_atomic(target, b"n" * (free + (1 << 20)))
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old"
    assert _names(small_fs) == ["final_update.json"]


def test_failed_rename_keeps_the_old_target_and_no_temp(tmp_path: Path) -> None:
    """When the rename fails (the target is a non-empty directory) the error is raised and no temporary is left."""
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert (target / "inside").read_text() == "kept"
    assert _names(tmp_path) == ["taken"]


def test_interrupt_during_fsync_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception (here a KeyboardInterrupt in the fsync) leaves the old file untouched and no temporary."""
    target = tmp_path / "cache.json"
    write_atomic(target, "old")

    def interrupted(_fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["cache.json"]


def test_before_replace_sees_the_data_on_disk_and_can_stop_the_rename(tmp_path: Path) -> None:
    """``before_replace`` runs once the temporary file holds the whole new content, just before the rename; when it
    raises, the target keeps its old content, no temporary file is left and its exception reaches the caller."""
    target = tmp_path / "doc.json"
    target.write_text("old")
    seen: list[list[str]] = []

    def look() -> None:
        seen.append([(tmp_path / name).read_text() for name in _names(tmp_path) if name.endswith(".tmp")])

    write_atomic(target, "new", before_replace=look)
    assert seen == [["new"]] and target.read_text() == "new"

    def refuse() -> None:
        raise LookupError("changed meanwhile")

    with pytest.raises(LookupError, match="changed meanwhile"):
        write_atomic(target, "newer", before_replace=refuse)
    assert target.read_text() == "new"
    assert _names(tmp_path) == ["doc.json"]


def test_missing_directory_raises_oserror(tmp_path: Path) -> None:
    """The directory is not created: a missing one is a FileNotFoundError for the caller to report."""
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "x", "x")


# -------------------------------------------------------------------------------------------------------- wait_until
class _Counter:
    def __init__(self, passes_at: int) -> None:
        self.calls = 0
        self.passes_at = passes_at

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.passes_at


def test_true_as_soon_as_the_check_passes() -> None:
    """The check is called every ``interval`` until it passes; then True at once (not at the timeout)."""
    check = _Counter(passes_at=3)
    begin = time.monotonic()
    assert wait_until(check, timeout=10.0, interval=0.01, stop=threading.Event())
    assert check.calls == 3
    assert time.monotonic() - begin < 2.0


def test_false_at_the_timeout() -> None:
    """A check that never passes: False once ``timeout`` seconds passed, not before, not much after."""
    check = _Counter(passes_at=10**9)
    begin = time.monotonic()
    assert not wait_until(check, timeout=0.3, interval=0.05, stop=threading.Event())
    elapsed = time.monotonic() - begin
    assert 0.3 <= elapsed < 1.5
    assert check.calls >= 3


def test_zero_timeout_checks_once() -> None:
    """With no time left the check is still called once (a file already there is found)."""
    check = _Counter(passes_at=2)
    assert not wait_until(check, timeout=0.0, interval=1.0, stop=threading.Event())
    assert check.calls == 1
    assert wait_until(_Counter(passes_at=1), timeout=0.0, interval=1.0)


def test_the_pilots_stop_ends_the_pause_at_once() -> None:
    """The pilot's stop (:class:`pilotlib.stop.Stop`), set during a 30 s pause, ends the wait at once with False,
    without another call of the check."""
    stop = Stop()
    check = _Counter(passes_at=10**9)
    threading.Timer(0.1, lambda: stop.set(SigTermError("test"))).start()
    begin = time.monotonic()
    assert not wait_until(check, timeout=60.0, interval=30.0, stop=stop)
    assert time.monotonic() - begin < 2.0
    assert check.calls == 1


def test_a_stop_already_set_returns_without_checking() -> None:
    """A stop set before the wait: False at once, the check is never called."""
    stop = threading.Event()
    stop.set()
    check = _Counter(passes_at=1)
    assert not wait_until(check, timeout=60.0, interval=30.0, stop=stop)
    assert check.calls == 0


def test_without_a_stop_it_sleeps_between_checks() -> None:
    """``stop=None``: the wait pauses ``interval`` seconds between checks and ends at the timeout."""
    check = _Counter(passes_at=10**9)
    begin = time.monotonic()
    assert not wait_until(check, timeout=0.25, interval=0.1)
    assert 0.25 <= time.monotonic() - begin < 1.5
    assert 2 <= check.calls <= 5


def test_an_exception_of_the_check_ends_the_wait() -> None:
    """What the check raises is raised to the caller (a broken file is final at once)."""
    def broken() -> bool:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        wait_until(broken, timeout=10.0, interval=0.01)
