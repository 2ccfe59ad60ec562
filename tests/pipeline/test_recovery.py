"""Final updates on disk: atomic save, sent once and acknowledged, recovered by a later pilot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pilotlib.panda.base import JobUpdate, UpdateAnswer
from pilotlib.recovery import FINAL_NAME, FinalRetry, FinalStore, deliver_final, recover

from .fakes import FakeReporter


def _update(panda_id: int = 5001) -> JobUpdate:
    return JobUpdate(panda_id, "failed", {"jobId": panda_id, "pilotErrorCode": 1201}, final=True)


def test_save_writes_the_whole_update_and_no_temporary_file(tmp_path: Path) -> None:
    """save() leaves exactly final_update.json with the update's state and fields, no temporary file."""
    store = FinalStore(tmp_path)
    path = store.save(_update())
    assert path == tmp_path / "5001" / FINAL_NAME
    assert json.loads(path.read_text()) == {
        "panda_id": 5001,
        "state": "failed",
        "fields": {"jobId": 5001, "pilotErrorCode": 1201},
    }
    assert [p.name for p in path.parent.iterdir()] == [FINAL_NAME]
    assert store.pending() == [5001]


def test_final_sent_once_and_marked_sent(tmp_path: Path) -> None:
    """An acknowledged final update is marked sent; a later recovery does not send it again."""
    store, reporter = FinalStore(tmp_path), FakeReporter()
    assert deliver_final(_update(), reporter, store)
    assert store.is_sent(5001) and store.pending() == []
    assert recover(store, reporter) == []
    assert len(reporter.updates) == 1


def test_retries_within_the_deadline_until_acknowledged(tmp_path: Path) -> None:
    """When the server fails twice, the update is retried (with backoff) and then acknowledged."""
    store, reporter = FinalStore(tmp_path), FakeReporter(fail_final=2)
    pauses: list[float] = []
    assert deliver_final(_update(), reporter, store, FinalRetry(deadline=100.0, first_delay=1.0), pauses.append)
    assert pauses == [1.0, 2.0]
    assert [u.fields["pilotErrorCode"] for u in reporter.updates] == [1201]


def test_server_down_leaves_update_for_the_next_pilot(tmp_path: Path) -> None:
    """When the server stays down past the deadline, the update stays on disk; recover() sends it later."""
    store = FinalStore(tmp_path)
    down = FakeReporter(fail_final=100)
    assert not deliver_final(_update(), down, store, FinalRetry(deadline=0.0), lambda s: None)
    assert store.pending() == [5001] and down.updates == []
    up = FakeReporter()
    assert recover(FinalStore(tmp_path), up) == [5001]
    assert up.final(5001).fields == {"jobId": 5001, "pilotErrorCode": 1201}
    assert store.pending() == []


def test_claim_of_a_dead_process_goes_back_to_pending(tmp_path: Path) -> None:
    """A final update claimed by a pilot that died while sending is pending again for the next one."""
    store = FinalStore(tmp_path)
    path = store.save(_update())
    path.rename(path.with_name(FINAL_NAME + ".sending-999999999"))
    assert store.pending() == [5001]


def test_unreadable_file_is_set_aside(tmp_path: Path) -> None:
    """A corrupt final update file is set aside as .bad instead of blocking recovery."""
    store = FinalStore(tmp_path)
    (tmp_path / "5002").mkdir()
    (tmp_path / "5002" / FINAL_NAME).write_text("{not json")
    store.save(_update(5003))
    reporter = FakeReporter()
    assert recover(store, reporter) == [5003]
    assert (tmp_path / "5002" / (FINAL_NAME + ".bad")).exists()


class _StopsWhileWaiting:
    """A pilot stop that is set during the first pause (as a signal coming while the server is being retried)."""

    def __init__(self) -> None:
        self.waits: list[float | None] = []
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self._set = True
        return True


def test_stop_during_retries_cuts_the_final_update_short(tmp_path: Path) -> None:
    """A stop that comes while the final update is being retried (server down, 10 min deadline) wakes the pause and
    ends the tries within the stopping deadline; the update stays on disk for the next pilot."""
    store, down = FinalStore(tmp_path), FakeReporter(fail_final=100)
    stopping = _StopsWhileWaiting()
    policy = FinalRetry(deadline=600.0, first_delay=1.0, stopping_deadline=0.0)
    assert not deliver_final(_update(), down, store, policy, stopping=stopping)
    assert stopping.waits == [1.0]
    assert down.fail_final == 98  # two tries: before and after the pause the stop ended
    assert store.pending() == [5001]


def test_recovery_with_the_server_down_tries_once_not_once_per_job(tmp_path: Path) -> None:
    """With the server down, recovery gives up after the first unsent update past its deadline; all stay pending."""
    store = FinalStore(tmp_path)
    for panda_id in (7001, 7002, 7003):
        store.save(_update(panda_id))
    down = FakeReporter(fail_final=100)
    assert recover(store, down) == []
    assert down.fail_final == 99
    assert store.pending() == [7001, 7002, 7003]


def test_claim_with_our_own_pid_left_by_a_dead_pilot_is_recovered(tmp_path: Path) -> None:
    """A claim named with this process's pid that this process did not make (a killed pilot whose pid the next
    pilot got, as in a container) is pending again; a claim this process holds is not taken from it."""
    store = FinalStore(tmp_path)
    path = store.save(_update())
    path.rename(path.with_name(f"{FINAL_NAME}.sending-{os.getpid()}"))
    assert store.pending() == [5001]
    claimed = store.claim(5001)
    assert claimed is not None and store.pending() == []
    store.unclaim(claimed)
    assert store.pending() == [5001]


class _BrokenReporter:
    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        raise RuntimeError("reporter bug")


def test_unexpected_error_while_sending_leaves_the_update_pending(tmp_path: Path) -> None:
    """An unexpected error from the reporter propagates, but the update is pending again, not stuck claimed."""
    store = FinalStore(tmp_path)
    with pytest.raises(RuntimeError, match="reporter bug"):
        deliver_final(_update(), _BrokenReporter(), store)
    assert store.pending() == [5001]
    assert [p.name for p in (tmp_path / "5001").iterdir()] == [FINAL_NAME]


def test_final_update_is_sent_even_when_it_cannot_be_written(tmp_path: Path) -> None:
    """When the final update cannot be saved (the store's folder is unusable: a full disk alike), it is still sent
    and acknowledged rather than lost."""
    (tmp_path / "5001").write_text("a file where the job's folder should be")
    store, reporter = FinalStore(tmp_path), FakeReporter()
    assert deliver_final(_update(), reporter, store)
    assert reporter.final(5001).fields == {"jobId": 5001, "pilotErrorCode": 1201}
