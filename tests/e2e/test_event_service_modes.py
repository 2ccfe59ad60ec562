"""The event service end to end in the grid pilot's other situations: Harvester's files, a pilot stopped halfway, a
payload in POSIX sh, a payload that reports a range it was never given, and the server's ``softkill``.

Real parts: ``grid-pilot`` (``main()`` or a subprocess), the access point or the local PanDA server, the event
channel (a Unix socket in the work directory), the reference payload
(``python -m pilotlib.eventservice.reference_payload``) and ``examples/es_payload.sh`` (socat).

HSF/harvester ``pandaharvester/harvestermessenger/shared_file_messenger.py`` (commit d561b72fec24) is the authority
for Harvester's side; the docstrings cite its lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.grid_pilot.__main__ import main
from panda_devserver import DevServer
from pilotlib.errors import ErrorCode

from .helpers import final_update, job_definition, make_inputs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REFERENCE = ["-m", "pilotlib.eventservice.reference_payload"]


def _es_job(panda_id: int, *knobs: str) -> dict[str, str]:
    """An event-service job whose payload is the reference payload with ``knobs``."""
    job = job_definition(panda_id)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": sys.executable,
                "jobPars": " ".join([*REFERENCE, *knobs])})
    return job


def _ranges(count: int) -> list[dict[str, object]]:
    return [{"startEvent": 10 * n + 1, "lastEvent": 10 * n + 10, "LFN": "in.dat", "GUID": "g1", "scope": "e2e"}
            for n in range(count)]


# ------------------------------------------------------------------------------------------------ Harvester mode
class HarvesterStandIn:
    """Harvester's event feeder for one access point, on a thread of its own.

    It answers each ``worker_requestevents.json`` as ``events_requested`` (l.435-454) reads it and ``feed_events``
    (l.456-480) answers it: ``JobsEventRanges.json`` written with a plain ``open(..., "w")`` (l.465-466; here in two
    writes, so that the pilot may see it half written), then the request removed (l.474-476). Each answer holds at
    most ``nRanges`` of the job's ranges (``panda_communicator.py`` ``get_event_ranges`` l.455-471); once they are
    all given, an empty list (``ret_value.setdefault(panda_id, [])``, l.483).
    """

    def __init__(self, access_point: Path, panda_id: int, count: int, *, stager: bool = False) -> None:
        self.access_point = access_point
        self.stager = stager
        self.taken: list[dict[str, Any]] = []
        self.ranges = [{"eventRangeID": f"1-{panda_id}-1-{n}-1", **item}
                       for n, item in enumerate(_ranges(count), start=1)]
        self.requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="harvester-stand-in", daemon=True)

    def __enter__(self) -> HarvesterStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _serve(self) -> None:
        request = self.access_point / "worker_requestevents.json"
        while not self._stop.wait(0.05):
            if self.stager:
                self._stage_out()
            try:
                asked = json.loads(request.read_text())
            except (OSError, ValueError):
                continue
            self.requests.append(asked)
            answer: dict[str, list[dict[str, object]]] = {}
            for panda_id, body in asked.items():
                n_ranges = int(body.get("nRanges", 1))
                answer[panda_id], self.ranges = self.ranges[:n_ranges], self.ranges[n_ranges:]
            text = json.dumps(answer)
            with open(self.access_point / "JobsEventRanges.json", "w") as handle:
                handle.write(text[: len(text) // 2])
                handle.flush()
                time.sleep(0.02)
                handle.write(text[len(text) // 2:])
            os.remove(request)

    def _stage_out(self) -> None:
        """What the stager does with the dump while the worker runs: ``get_files_to_stage_out`` renames it to
        ``.read`` (l.240-251) and loads it (l.259); the files are staged out (here: 0.2 s); then
        ``acknowledge_events_files`` renames ``.read`` away (l.548-553)."""
        dump = self.access_point / "event_status.dump.json"
        read = Path(str(dump) + ".read")
        try:
            os.rename(dump, read)
        except FileNotFoundError:
            return
        document = json.loads(read.read_text())
        self.taken += [entry for entries in document.values() for entry in entries]
        time.sleep(0.2)
        os.rename(read, f"{read}.{len(self.taken)}")


def _run_harvester_job(tmp_path: Path, panda_id: int, count: int, *knobs: str,
                       stager: bool = False) -> tuple[Path, HarvesterStandIn, int]:
    """Lay out the access point as ``feed_jobs`` does (l.378-433: the job file, the catalogue, the input links,
    ``worker_pandaids.json`` last), run ``grid-pilot --mode harvester`` with the stand-in answering its requests for
    ranges; return the access point, the stand-in and the exit status."""
    prestaged = make_inputs(tmp_path / "prestaged")
    access_point = tmp_path / "access_point"
    access_point.mkdir()
    with open(access_point / "HPCJobs.json", "w") as handle:
        json.dump({panda_id: _es_job(panda_id, *knobs)}, handle)
    (access_point / "PoolFileCatalog_H.xml").write_text("<POOLFILECATALOG/>")
    for lfn in ("in.dat", "payload.sh"):
        os.symlink(prestaged / lfn, access_point / lfn)
    (access_point / "worker_pandaids.json").write_text(json.dumps([panda_id]))
    with HarvesterStandIn(access_point, panda_id, count, stager=stager) as harvester:
        status = main(["--mode", "harvester", "--harvester-workdir", str(access_point), "-q", "Q",
                       "-a", str(tmp_path / "work"), "--harvester-stageout", "harvester", "--max-jobs", "1"])
    return access_point, harvester, status


def _stage_out_view(access_point: Path, panda_id: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The dump read as ``get_files_to_stage_out`` (l.228-352) reads it: renamed to ``.read`` (l.240-251), a dict of
    lists (l.259-281); a file entry by the base name of its ``path`` (l.289-293) with ``fsize`` (l.294-299),
    ``type`` (l.300), ``guid`` (l.309-313), ``chksum`` (l.315-320), and ``eventRangeID`` for ``es_output`` (l.326-329);
    every event entry's ``eventRangeID`` and ``eventStatus`` (l.330-332). Returns (files by name, event entries)."""
    dump = access_point / "event_status.dump.json"
    read = Path(str(dump) + ".read")
    os.rename(dump, read)
    document = json.loads(read.read_text())
    assert isinstance(document, dict) and list(document) == [str(panda_id)]
    entries = document[str(panda_id)]
    assert isinstance(entries, list)
    files: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for entry in entries:
        if "path" in entry:
            assert os.path.basename(entry["path"]) not in files, entry
            files[os.path.basename(entry["path"])] = entry
            if entry["type"] not in ("es_output", "zip_output"):
                continue
        events.append({"eventRangeID": entry.get("eventRangeID"), "eventStatus": entry["eventStatus"]})
    return files, events


def test_harvester_feeds_100_ranges_and_stages_out_each_output(tmp_path: Path) -> None:
    """``--mode harvester``: the pilot asks Harvester for ranges through ``worker_requestevents.json`` in batches
    (``{PandaID: {pandaID, taskID, jobsetID, nRanges}}``, as ``events_requested`` l.435-454 returns it), takes
    the answers from ``JobsEventRanges.json`` (written non-atomically), stops at the empty list; the dump holds
    exactly 100 ``es_output`` entries, all finished, each range once, each with a ``path`` to an existing file in the
    job's access-point directory, ``fsize`` and ``chksum`` (adler32) of that file, and a ``guid``; the only other
    file is the log; ``worker_attributes.json`` says finished."""
    access_point, harvester, status = _run_harvester_job(tmp_path, 9801, 100)
    assert status == 0
    assert len(harvester.requests) >= 2 and not harvester.ranges
    for asked in harvester.requests:
        body = asked["9801"]
        assert set(body) == {"pandaID", "taskID", "jobsetID", "nRanges"} and body["pandaID"] == 9801
        assert str(body["taskID"]) == "1" and str(body["jobsetID"]) == "77" and int(body["nRanges"]) >= 1
    files, events = _stage_out_view(access_point, 9801)
    outputs = {name: entry for name, entry in files.items() if entry["type"] == "es_output"}
    assert set(files) - set(outputs) == {"log.tgz"} and files["log.tgz"]["type"] == "log"
    assert len(outputs) == 100 and len(events) == 100
    assert {e["eventStatus"] for e in events} == {"finished"}
    assert sorted(e["eventRangeID"] for e in events) == sorted(f"1-9801-1-{n}-1" for n in range(1, 101))
    for entry in outputs.values():
        path = Path(entry["path"])
        assert path.is_file() and path.parent == access_point
        data = path.read_bytes()
        assert entry["fsize"] == len(data) and entry["chksum"] == f"{zlib.adler32(data):08x}"
        assert entry["guid"] and data.startswith(f"range {entry['eventRangeID']}\n".encode())
    attributes = json.loads((access_point / "worker_attributes.json").read_text())
    assert attributes["jobStatus"] == "finished"
    assert not (access_point / "worker_requestevents.json").exists()


def test_harvester_a_failing_range_is_failed_in_the_dump(tmp_path: Path) -> None:
    """``--fail <id>``: that range is in the dump as ``{eventRangeID, eventStatus: failed}`` without a file (which
    ``get_files_to_stage_out`` passes on as an event, l.330-332), the other nine finished with their files; the job
    is finished."""
    failing = "1-9802-1-4-1"
    access_point, _, status = _run_harvester_job(tmp_path, 9802, 10, "--fail", failing)
    assert status == 0
    files, events = _stage_out_view(access_point, 9802)
    statuses = {e["eventRangeID"]: e["eventStatus"] for e in events}
    assert len(events) == len(statuses) == 10
    assert statuses.pop(failing) == "failed" and set(statuses.values()) == {"finished"}
    assert sorted(e["eventRangeID"] for e in files.values() if e["type"] == "es_output") == sorted(statuses)
    assert json.loads((access_point / "worker_attributes.json").read_text())["jobStatus"] == "finished"


def test_harvester_taking_the_dump_while_the_job_runs_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Harvester's stager takes ``event_status.dump.json`` again and again while the payload runs (rename to
    ``.read``, stage out, acknowledge): over all it took and what is left, each of the 100 ranges is there exactly
    once, finished, with its file."""
    access_point, harvester, status = _run_harvester_job(tmp_path, 9803, 100, "--sleep", "0.02", stager=True)
    assert status == 0
    dump = access_point / "event_status.dump.json"
    left = json.loads(dump.read_text())["9803"] if dump.exists() else []
    outputs = [e for e in [*harvester.taken, *left] if e.get("type") == "es_output"]
    assert len([e for e in harvester.taken if e.get("type") == "es_output"]) > 0
    assert sorted(e["eventRangeID"] for e in outputs) == sorted(f"1-9803-1-{n}-1" for n in range(1, 101))
    assert {e["eventStatus"] for e in outputs} == {"finished"}
    assert all(Path(e["path"]).is_file() for e in outputs)


# --------------------------------------------------------------------------------------------------- server mode
def _server_argv(server: DevServer, tmp_path: Path) -> list[str]:
    make_inputs(tmp_path / "in")
    server.add_queue("ES_QUEUE", {"nickname": "ES_QUEUE", "state": "ACTIVE", "status": "online", "zip_time_gap": 1})
    return ["-q", "ES_QUEUE", "--url", server.url, "--api", "v1", "-a", str(tmp_path / "work"),
            "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
            "--heartbeat", "0.2", "--log-level", "INFO"]


def _stored_outputs(tmp_path: Path) -> list[str]:
    """The member names of every stored ``EventService_premerge_*.tar``."""
    names: list[str] = []
    for tar_path in (tmp_path / "storage").rglob("EventService_premerge_*.tar"):
        with tarfile.open(tar_path) as tar:
            names += tar.getnames()
    return names


def _final_reports(server: DevServer, panda_id: int) -> Counter[str]:
    """How many times each range was reported in a final status."""
    return Counter(str(u["eventRangeID"]) for u in server.event_range_updates(panda_id)
                   if u.get("eventStatus") in ("finished", "failed", "fatal", "cancelled"))


def _sigterm_pilot(server: DevServer, tmp_path: Path, panda_id: int, ready: Callable[[], bool],
                   wait: float) -> tuple[int, str]:
    """Run the grid pilot as a process; once the payload runs, SIGTERM it when ``ready()`` or after ``wait`` s;
    return its exit status and what it logged."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *_server_argv(server, tmp_path)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "running" not in [u["state"] for u in server.updates(panda_id)]:
            assert time.monotonic() < deadline and proc.poll() is None, "payload never reported running"
            time.sleep(0.05)
        soon = time.monotonic() + wait
        while not ready() and time.monotonic() < soon:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out.decode()


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM of an event-service job between ranges")
def test_sigterm_halfway_settles_what_was_done(panda_server: DevServer, tmp_path: Path) -> None:
    """SIGTERM to a pilot process whose payload is on 100 ranges (0.05 s each): the payload gets no more, the
    ranges done are tarred, stored and reported finished, the final update is sent; each range is reported with
    one outcome (and one tar): a report the stop cut off after the server applied it is sent again, never its tar
    stored again (panda-server ignores a repeated final status: ``task_event_module.py:343-345`` at 9cc36033);
    each finished range's output is in a stored tar and there are as many outputs stored as ranges finished; the
    ranges not done are not finished, at most the one the payload held is failed; the job fails with SIGTERM
    (1201) and the pilot exits 143 (pilot3 ``esprocess.py`` ``stop`` l.109-120 sends ``No more events``)."""
    panda_server.add_job(_es_job(9811, "--sleep", "0.05"))
    panda_server.add_event_ranges(9811, _ranges(100))
    returncode, logged = _sigterm_pilot(panda_server, tmp_path, 9811,
                                        lambda: len(_final_reports(panda_server, 9811)) >= 30, wait=2.0)
    assert returncode == 143, logged[-2000:]
    final = final_update(panda_server.updates(9811))
    assert final["state"] == "failed" and int(final["pilotErrorCode"]) == ErrorCode.SIGTERM
    assert panda_server.final_state(9811) == "failed"
    assert "event ranges: no more for the payload" in logged
    outcomes: dict[str, set[tuple[str, str]]] = {}
    for update in panda_server.event_range_updates(9811):
        zip_file = update.get("zipFile") or {}
        outcomes.setdefault(str(update["eventRangeID"]), set()).add((str(update["eventStatus"]),
                                                                     str(zip_file.get("lfn"))))
    assert outcomes and {len(seen) for seen in outcomes.values()} == {1}  # one outcome, one tar per range
    statuses = panda_server.event_range_statuses(9811)
    finished = sorted(r for r, s in statuses.items() if s == "finished")
    assert 0 < len(finished) < 100
    stored = _stored_outputs(tmp_path)
    assert len(stored) == len(finished) == len(set(stored))
    assert sorted(stored) == sorted(f"out_{r}.txt" for r in finished)
    assert sum(int(z["numEvents"]) for z in panda_server.zip_files(9811).values()) == len(finished)
    assert all(statuses[r] in ("ready", "sent", "failed") for r in statuses if r not in finished)
    assert list(statuses.values()).count("failed") <= 1  # the one the payload held when the pilot stopped it


@pytest.mark.reliability("faults", "pilot killed", "SIGTERM during an event range report: no tar stored twice")
def test_sigterm_during_a_report_stores_no_tar_twice(panda_server: DevServer, tmp_path: Path) -> None:
    """The server applies the first ``updateEventRanges`` and holds its answer; SIGTERM cuts the call off, so the
    pilot cannot know it was applied: at the final flush it sends that report again (same ranges, same tar, which
    panda-server takes as a no-op, ``task_event_module.py:343-345``), and never packs or stores that tar again."""
    panda_server.add_job(_es_job(9812, "--sleep", "0.05"))
    panda_server.add_event_ranges(9812, _ranges(100))
    panda_server.inject_fault("updateEventRanges", "apply_delay", times=1, seconds=60)
    returncode, logged = _sigterm_pilot(panda_server, tmp_path, 9812,
                                        lambda: "finished" in panda_server.event_range_statuses(9812).values(),
                                        wait=20.0)
    assert returncode == 143, logged[-2000:]
    stores = [line.split("file=")[1].split()[0] for line in logged.splitlines()
              if "event-service outputs stored file=" in line]
    assert stores and len(stores) == len(set(stores)), stores
    first = stores[0]
    reports = [u for u in panda_server.event_range_updates(9812) if (u.get("zipFile") or {}).get("lfn") == first]
    counts = Counter(str(u["eventRangeID"]) for u in reports)
    assert set(counts.values()) == {2} and {u["eventStatus"] for u in reports} == {"finished"}
    statuses = panda_server.event_range_statuses(9812)
    assert all(statuses[r] == "finished" for r in counts)
    assert sorted(_stored_outputs(tmp_path)) == sorted(f"out_{r}" + ".txt" for r, s in statuses.items()
                                                       if s == "finished")


def test_the_shell_payload_runs_10_ranges(panda_server: DevServer, tmp_path: Path) -> None:
    """``examples/es_payload.sh`` through ``/bin/sh`` (socat to the channel): all 10 ranges finished, each once,
    their outputs stored; the job finished."""
    job = job_definition(9821)
    job.update({"eventService": "True", "jobsetID": "77", "taskID": "1", "transformation": "/bin/sh",
                "jobPars": str(REPO / "examples" / "es_payload.sh")})
    panda_server.add_job(job)
    panda_server.add_event_ranges(9821, _ranges(10))
    assert main(_server_argv(panda_server, tmp_path)) == 0
    final = final_update(panda_server.updates(9821))
    assert final["state"] == "finished", final.get("pilotErrorDiag")
    statuses = panda_server.event_range_statuses(9821)
    assert len(statuses) == 10 and set(statuses.values()) == {"finished"}
    assert set(_final_reports(panda_server, 9821).values()) == {1}
    assert sorted(_stored_outputs(tmp_path)) == sorted(f"out_{r}.txt" for r in statuses)


def test_a_range_never_given_is_messagehandlingfailure(panda_server: DevServer, tmp_path: Path) -> None:
    """``--unknown-range``: the payload's first word reports a range the pilot never gave; the job fails with
    MESSAGEHANDLINGFAILURE (1240) and no range is finished."""
    panda_server.add_job(_es_job(9831, "--unknown-range"))
    panda_server.add_event_ranges(9831, _ranges(5))
    main(_server_argv(panda_server, tmp_path))
    final = final_update(panda_server.updates(9831))
    assert final["state"] == "failed", final
    assert int(final["pilotErrorCode"]) == ErrorCode.MESSAGEHANDLINGFAILURE, final.get("pilotErrorDiag")
    assert "finished" not in panda_server.event_range_statuses(9831).values()


def test_softkill_ends_the_payload_after_the_ranges_done(panda_server: DevServer, tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """The server answers a heartbeat with ``softkill`` (pilot3 ``pilot/control/job.py`` l.672-675, for the event
    service): the payload is answered ``No more events``, ends by itself (exit 0), and the job finishes with the
    ranges done so far finished, none failed, the rest never reported."""
    panda_server.add_job(_es_job(9841, "--sleep", "0.05"))
    panda_server.add_event_ranges(9841, _ranges(100))
    argv = _server_argv(panda_server, tmp_path)

    def softkill_after_10() -> None:
        deadline = time.monotonic() + 60
        while len(_final_reports(panda_server, 9841)) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        panda_server.set_command(9841, "softkill")

    killer = threading.Thread(target=softkill_after_10, daemon=True)
    killer.start()
    assert main(argv) == 0
    killer.join(5)
    final = final_update(panda_server.updates(9841))
    assert final["state"] == "finished", final.get("pilotErrorDiag")
    assert int(final["transExitCode"]) == 0
    statuses = panda_server.event_range_statuses(9841)
    finished = [r for r, s in statuses.items() if s == "finished"]
    assert 10 <= len(finished) < 100
    logged = capfd.readouterr()
    assert "server sent softkill" in logged.out + logged.err
    assert "event ranges: no more for the payload" in logged.out + logged.err
    assert "failed" not in statuses.values()
    assert set(_final_reports(panda_server, 9841).values()) == {1}
    assert sorted(_stored_outputs(tmp_path)) == sorted(f"out_{r}.txt" for r in finished)
