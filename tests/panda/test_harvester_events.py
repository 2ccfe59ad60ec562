"""Event ranges through Harvester's files, and merges of files that Harvester renames to ``.read``.

Threads below play Harvester as ``shared_file_messenger.py`` and ``event_feeder.py`` do: read the request, write
``JobsEventRanges.json`` with a plain ``open(..., "w")``, then remove the request.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.job import Job
from pilotlib.panda import _files
from pilotlib.panda._file_errors import LaunchDirFormatError, LaunchDirTimeoutError
from pilotlib.panda.base import EventRange, EventRangeSource, EventRangeUpdate, UpdateAnswer
from pilotlib.panda.harvester import HarvesterEventRanges, HarvesterFiles, HarvesterReporter, StageOutFile

JOB = Job(panda_id=8001, task_id=31000001, jobset_id=42)


def event_range(number: int) -> dict[str, Any]:
    """An event range as the PanDA server hands it out (``acquire_event_ranges``)."""
    return {
        "eventRangeID": f"31000001-8001-1-{number}-1",
        "startEvent": number,
        "lastEvent": number,
        "LFN": "EVNT.36000001._000001.pool.root.1",
        "GUID": "0A1B2C3D-0000-1111-2222-333344445555",
        "scope": "mc23_13p6TeV",
    }


class Harvester(threading.Thread):
    """Plays Harvester's event feeder: answers each request with the next batch of ranges."""

    def __init__(self, ap: Path, batches: list[list[dict[str, Any]]], split_write: bool = False) -> None:
        super().__init__(daemon=True)
        self.ap = ap
        self.batches = batches
        self.split_write = split_write
        self.requests: list[Any] = []
        self.done = threading.Event()

    def run(self) -> None:
        request = self.ap / "worker_requestevents.json"
        while self.batches and not self.done.wait(0.01):
            if not request.exists():
                continue
            body = json.loads(request.read_text())
            self.requests.append(body)
            answer = {panda_id: self.batches.pop(0) for panda_id in body}
            text = json.dumps(answer)
            with open(self.ap / "JobsEventRanges.json", "w") as handle:
                if self.split_write:  # a reader may look between the halves
                    handle.write(text[: len(text) // 2])
                    handle.flush()
                    threading.Event().wait(0.1)
                handle.write(text[len(text) // 2 :] if self.split_write else text)
            request.unlink()


def test_implements_the_interface(ap: Path) -> None:
    """HarvesterEventRanges satisfies the EventRangeSource protocol."""
    assert isinstance(HarvesterEventRanges(HarvesterFiles(ap)), EventRangeSource)


def test_request_answer_cycle(ap: Path) -> None:
    """The source writes the request Harvester expects, waits for the answer, parses it and consumes the file."""
    harvester = Harvester(ap, [[event_range(1), event_range(2)], []], split_write=True)
    harvester.start()
    source = HarvesterEventRanges(HarvesterFiles(ap), timeout=20, poll_interval=0.02)
    ranges = source.get_event_ranges(JOB, 2)
    assert [r.event_range_id for r in ranges] == ["31000001-8001-1-1-1", "31000001-8001-1-2-1"]
    assert ranges[0] == EventRange(
        event_range_id="31000001-8001-1-1-1",
        start_event=1,
        last_event=1,
        lfn="EVNT.36000001._000001.pool.root.1",
        guid="0A1B2C3D-0000-1111-2222-333344445555",
        scope="mc23_13p6TeV",
    )
    assert harvester.requests[0] == {"8001": {"pandaID": 8001, "taskID": 31000001, "jobsetID": 42, "nRanges": 2}}
    assert not (ap / "JobsEventRanges.json").exists()
    assert source.get_event_ranges(JOB, 2) == ()  # Harvester answers with an empty list: no ranges left
    harvester.done.set()


def test_prefetched_ranges_taken_without_request(ap: Path) -> None:
    """Ranges Harvester placed before the pilot asked (prefetchEvents) are taken without writing a request."""
    with open(ap / "JobsEventRanges.json", "w") as handle:
        json.dump({"8001": [event_range(5)], "8002": [event_range(6)]}, handle)
    ranges = HarvesterEventRanges(HarvesterFiles(ap), timeout=1, poll_interval=0.02).get_event_ranges(JOB, 4)
    assert [r.start_event for r in ranges] == [5]
    assert not (ap / "worker_requestevents.json").exists()
    assert json.loads((ap / "JobsEventRanges.json").read_text()) == {"8002": [event_range(6)]}


def test_surplus_ranges_are_kept_for_the_next_call(ap: Path) -> None:
    """More ranges than asked for are handed out by later calls, not dropped."""
    with open(ap / "JobsEventRanges.json", "w") as handle:
        json.dump({"8001": [event_range(n) for n in range(1, 4)]}, handle)
    source = HarvesterEventRanges(HarvesterFiles(ap), timeout=1, poll_interval=0.02)
    assert [r.start_event for r in source.get_event_ranges(JOB, 2)] == [1, 2]
    assert [r.start_event for r in source.get_event_ranges(JOB, 2)] == [3]


@pytest.mark.reliability("faults", "harvester", "no answer to the event range request: EXCEEDEDMAXWAITTIME")
def test_no_answer_is_a_timeout_error(ap: Path) -> None:
    """Without an answer before the deadline the source raises LaunchDirTimeoutError (EXCEEDEDMAXWAITTIME)."""
    source = HarvesterEventRanges(HarvesterFiles(ap), timeout=0.1, poll_interval=0.02)
    with pytest.raises(LaunchDirTimeoutError) as caught:
        source.get_event_ranges(JOB, 1)
    assert caught.value.code == ErrorCode.EXCEEDEDMAXWAITTIME == 1317
    assert (ap / "worker_requestevents.json").exists()


@pytest.mark.reliability("faults", "harvester", "event range without lastEvent: LaunchDirFormatError")
def test_malformed_range_is_a_format_error(ap: Path) -> None:
    """A range without ``lastEvent`` is a LaunchDirFormatError (CONVERSIONFAILURE) naming the field."""
    bad = event_range(1)
    del bad["lastEvent"]
    (ap / "JobsEventRanges.json").write_text(json.dumps({"8001": [bad]}))
    with pytest.raises(LaunchDirFormatError, match="lastEvent") as caught:
        HarvesterEventRanges(HarvesterFiles(ap), timeout=1).get_event_ranges(JOB, 1)
    assert caught.value.code == ErrorCode.CONVERSIONFAILURE


def test_updates_merged_into_the_event_status_dump_beside_a_read_file(ap: Path) -> None:
    """Range statuses go to ``event_status.dump.json``, merged, never to ``worker_updateevents.json``.

    HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py`` (commit d561b72),
    ``get_files_to_stage_out``: the dump is renamed to ``.read`` while Harvester works (l.251); every entry's
    ``eventRangeID`` and ``eventStatus`` is collected, with or without a ``path`` (l.285-332), and whenever there is
    one, ``worker_updateevents.json`` is replaced by them (l.338-343), so a status written there would be lost. The
    ``.read`` file stays untouched; an update Harvester already holds is not written again, a newer status of the
    same range is.
    """
    taken = {"8001": [{"eventRangeID": "r1", "eventStatus": "running"}]}
    (ap / "event_status.dump.json.read").write_text(json.dumps(taken))
    source = HarvesterEventRanges(HarvesterFiles(ap))
    answer = source.update_event_ranges(
        [EventRangeUpdate("r1", "running", 8001), EventRangeUpdate("r2", "running", 8001)]
    )
    assert answer == UpdateAnswer(accepted=True)
    source.update_event_ranges([EventRangeUpdate("r3", "failed", 8001, {"errorCode": 1224})])
    source.update_event_ranges([EventRangeUpdate("r1", "finished", 8001)])
    assert json.loads((ap / "event_status.dump.json.read").read_text()) == taken
    dump = json.loads((ap / "event_status.dump.json").read_text())
    assert dump == {
        "8001": [
            {"eventRangeID": "r2", "eventStatus": "running"},
            {"errorCode": 1224, "eventRangeID": "r3", "eventStatus": "failed"},
            {"eventRangeID": "r1", "eventStatus": "finished"},
        ]
    }
    assert all("path" not in entry for entry in dump["8001"])  # l.289: not a file to stage out
    assert not (ap / "worker_updateevents.json").exists()


def test_range_statuses_and_declared_files_share_the_dump(ap: Path) -> None:
    """The reporter's declared outputs and the range statuses merge into one dump: neither overwrites the other
    (shared_file_messenger.py@d561b72 reads one ``eventStatusDumpJsonFile`` per job, l.236)."""
    files = HarvesterFiles(ap)
    HarvesterReporter(files).add_stageout_files(8001, [StageOutFile(path=str(ap / "out.root"), fsize=3)])
    HarvesterEventRanges(files).update_event_ranges([EventRangeUpdate("r1", "finished", 8001)])
    assert json.loads((ap / "event_status.dump.json").read_text()) == {
        "8001": [
            {"path": str(ap / "out.root"), "type": "output", "fsize": 3},
            {"eventRangeID": "r1", "eventStatus": "finished"},
        ]
    }


@pytest.mark.reliability("faults", "harvester", "dump renamed to .read mid-merge: merge redone, nothing declared twice")
def test_merge_redone_when_harvester_takes_the_file_meanwhile(ap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If Harvester renames the file to ``.read`` between the pilot's read and write, the new plain file holds only
    the new entries: nothing is declared twice."""
    path = ap / "event_status.dump.json"
    path.write_text(json.dumps({"1": [{"path": "/w/a"}]}))
    real = _files.read_json
    state = {"renamed": False}

    def harvester_renames_first(target: Path) -> Any:
        if target.name.endswith(".read") and not state["renamed"]:
            os.rename(path, str(path) + ".read")  # Harvester's get_files_to_stage_out, mid-merge
            state["renamed"] = True
        return real(target)

    monkeypatch.setattr(_files, "read_json", harvester_renames_first)
    _files.merge_entries(path, {"1": [{"path": "/w/b"}]}, lambda e: e["path"])
    assert json.loads((ap / "event_status.dump.json.read").read_text()) == {"1": [{"path": "/w/a"}]}
    assert json.loads(path.read_text()) == {"1": [{"path": "/w/b"}]}


@pytest.mark.reliability("faults", "harvester", "half-written (invalid JSON) event status dump: merge goes on")
def test_half_written_plain_file_is_replaced_not_fatal(ap: Path) -> None:
    """A plain file that is not valid JSON (an interrupted old writer) does not make the merge fail."""
    path = ap / "event_status.dump.json"
    path.write_text('{"1": [{"pa')
    _files.merge_entries(path, {"1": [{"path": "/w/b"}]}, lambda e: e["path"])
    assert json.loads(path.read_text()) == {"1": [{"path": "/w/b"}]}


def test_ranks_of_one_job_share_its_answer(ap: Path) -> None:
    """Several ranks of one job (a one-job worker, ``MT_OneToOne``, whose feed writes all of the job's ranges under
    its one PandaID, sfm l.460-466): each takes only what it asked for and leaves the rest for the others; the
    empty list (``panda_communicator.py`` l.481-483: none left) stays in the file, so every rank learns it, not
    only the first."""
    ranges = [event_range(n) for n in range(1, 6)]
    (ap / "JobsEventRanges.json").write_text(json.dumps({"8001": ranges}))
    rank_a, rank_b = (HarvesterEventRanges(HarvesterFiles(ap), timeout=1, poll_interval=0.01) for _ in range(2))
    assert [r.event_range_id for r in rank_a.get_event_ranges(JOB, 2)] == [ranges[0]["eventRangeID"],
                                                                          ranges[1]["eventRangeID"]]
    assert json.loads((ap / "JobsEventRanges.json").read_text()) == {"8001": ranges[2:]}
    assert [r.event_range_id for r in rank_b.get_event_ranges(JOB, 4)] == [r["eventRangeID"] for r in ranges[2:]]
    assert not (ap / "JobsEventRanges.json").exists()
    (ap / "JobsEventRanges.json").write_text(json.dumps({"8001": []}))
    assert rank_a.get_event_ranges(JOB, 2) == () and rank_b.get_event_ranges(JOB, 2) == ()
    assert json.loads((ap / "JobsEventRanges.json").read_text()) == {"8001": []}


def test_no_new_request_while_the_jobs_answer_is_still_in_the_file(ap: Path) -> None:
    """A rank that found nothing and is about to ask, while another rank's request of the same job was answered in
    between: it must not ask again, since Harvester's next feed would overwrite the answer file (sfm l.462-466,
    plain ``open(..., "w")``) and the ranges still in it would be lost. (The step is private; the race it closes
    is between two processes and cannot be staged from the public call.)"""
    (ap / "JobsEventRanges.json").write_text(json.dumps({"8001": [event_range(1)]}))
    source = HarvesterEventRanges(HarvesterFiles(ap), timeout=1, poll_interval=0.01)
    source._request(JOB, 2)
    assert not (ap / "worker_requestevents.json").exists()
    (ap / "JobsEventRanges.json").unlink()
    source._request(JOB, 2)
    assert json.loads((ap / "worker_requestevents.json").read_text())["8001"]["nRanges"] == 2
