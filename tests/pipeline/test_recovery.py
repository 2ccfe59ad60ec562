"""Final updates on disk: atomic save, sent once and acknowledged, recovered by a later pilot."""

from __future__ import annotations

import json
from pathlib import Path

from pilotlib.panda.base import JobUpdate
from pilotlib.recovery import FINAL_NAME, FinalStore, RetryPolicy, deliver_final, recover

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
    assert deliver_final(_update(), reporter, store, RetryPolicy(deadline=100.0, first_delay=1.0), pauses.append)
    assert pauses == [1.0, 2.0]
    assert [u.fields["pilotErrorCode"] for u in reporter.updates] == [1201]


def test_server_down_leaves_update_for_the_next_pilot(tmp_path: Path) -> None:
    """When the server stays down past the deadline, the update stays on disk; recover() sends it later."""
    store = FinalStore(tmp_path)
    down = FakeReporter(fail_final=100)
    assert not deliver_final(_update(), down, store, RetryPolicy(deadline=0.0), lambda s: None)
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
