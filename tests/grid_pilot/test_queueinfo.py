"""The grid pilot's use of the information service: sources from the settings, copytools per activity, per-job
overrides, limits and monitors from the queue, replicas and storages from the storage descriptions.

Descriptions come from real files (``--queuedata-file``/``--storagedata-file``); the HTTP path is covered end to end
in ``tests/e2e/test_xrootd_info.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from apps.grid_pilot.cli import parse_settings
from apps.grid_pilot.compose import build_kit
from apps.grid_pilot.settings import Mode, Settings
from pilotlib.errors import ErrorCode, PilotError
from pilotlib.info import Activity, InfoService
from pilotlib.job import Job
from pilotlib.jobsetup import JobSetup, SetupResolver
from pilotlib.payload import MemoryMonitor, WalltimeMonitor, WorkdirSizeMonitor
from pilotlib.stop import Stop
from pilotlib.transfer.paths import StorageProtocol, deterministic_path
from pilotlib.workflow import RunnerExecutor, check_queue, pilot_limits
from pilotlib.workflow.transfers import StorageReplicas, storage_protocols
from tests.pipeline.fakes import make_job

QUEUE = {"nickname": "Q1", "state": "ACTIVE", "status": "online", "maxrss": 8000, "maxwdir": 1000, "corecount": 8,
         "maxtime": 7200, "timefloor": 30, "params": {"pilot_maxwdir_grace": 50},
         "acopytools": {"pr": ["xrdcp", "gfal"], "pw": ["gfal"], "pl": ["xrdcp"]},
         "astorages": {"pr": ["DISK"], "pw": ["DISK"]}}
STORAGES = {"DISK": {"name": "DISK", "state": "ACTIVE", "is_deterministic": True, "arprotocols": {
    "read_lan": [{"endpoint": "root://se.example:1094", "path": "/atlas/rucio/"}],
    "write_lan": [{"endpoint": "davs://se.example:443", "path": "/atlas/rucio/"}]}}}


def _settings(tmp_path: Path, queue: dict[str, object] = QUEUE, *args: str) -> Settings:
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    (tmp_path / "ddm.json").write_text(json.dumps(STORAGES))
    return parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path), "-q", "Q1", "-a", str(tmp_path / "w"),
                           "--queuedata-file", str(tmp_path / "queue.json"),
                           "--storagedata-file", str(tmp_path / "ddm.json"), *args])


def _info(settings: Settings) -> InfoService:
    info = build_kit(settings, Stop()).info
    assert info is not None
    return info


def _setup(settings: Settings, job: Job) -> JobSetup:
    """The job's set-up as the grid pilot of ``settings`` resolves it when it takes the job."""
    kit = build_kit(settings, Stop())
    return SetupResolver(kit.info, kit.copytools).resolve(job)


def _job(job_pars: str = "", **changes: object) -> Job:
    return attrs.evolve(make_job(), job_pars=job_pars, **changes)


def test_server_mode_defaults_to_the_servers_cache_urls() -> None:
    """In server mode the queue and storage descriptions come from <url>/cache/... as pilot3's default.cfg says."""
    s = parse_settings(["-q", "Q1", "--url", "https://panda.example:25443/"])
    assert s.queuedata_source == "https://panda.example:25443/cache/schedconfig/{pandaqueue}.all.json"
    assert s.storagedata_source == "https://panda.example:25443/cache/ddmendpoints.json"
    assert parse_settings(["-q", "Q1", "--url", "http://x", "--queuedata-url", "none"]).queuedata_source == ""


def test_launch_dir_modes_have_no_info_service_unless_given_a_source(tmp_path: Path) -> None:
    """An ARC pilot given no description file or URL builds no information service and uses mv."""
    s = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path)])
    assert s.mode is Mode.ARC and build_kit(s, Stop()).info is None
    setup = _setup(s, _job())
    assert (setup.tools_in, setup.tools_out, setup.tools_log) == (("mv",), ("mv",), ("mv",))
    assert check_queue(None) is None


def test_copytools_per_activity_come_from_the_queue_and_the_command_line_overrides(tmp_path: Path) -> None:
    """pr -> stage-in, pw -> outputs, pl -> log; --copytool replaces all of them."""
    s = _settings(tmp_path)
    setup = _setup(s, _job())
    assert (setup.tools_in, setup.tools_out, setup.tools_log) == (("xrdcp", "gfal"), ("gfal",), ("xrdcp",))
    s2 = _settings(tmp_path, QUEUE, "--copytool", "cp")
    setup2 = _setup(s2, _job())
    assert (setup2.tools_in, setup2.tools_out, setup2.tools_log) == (("cp",), ("cp",), ("cp",))


def test_job_overrides_change_the_queue_for_that_job_and_leave_the_payloads_parameters(tmp_path: Path) -> None:
    """--overwriteQueueData in jobPars sets the queue's fields for that job only and is taken out of jobPars."""
    s = _settings(tmp_path)
    job = _job('--overwriteQueueData=\'{"acopytools": {"pr": ["cp"]}}\' --events 10', panda_id=7)
    setup = _setup(s, job)
    assert setup.tools_in == ("cp",) and setup.job_pars == "--events 10"
    assert _setup(s, _job("--events 10")).tools_in == ("xrdcp", "gfal")


def test_bad_job_overrides_are_queuedatanotok(tmp_path: Path) -> None:
    """An override that is not an object fails the job with QUEUEDATANOTOK (1117), not a bare ValueError."""
    s = _settings(tmp_path)
    with pytest.raises(PilotError) as caught:
        _setup(s, _job("--overwriteQueueData=[1,2]"))
    assert caught.value.code == ErrorCode.QUEUEDATANOTOK


def test_queue_not_active_is_refused_with_its_code(tmp_path: Path) -> None:
    """check_queue raises PANDAQUEUENOTACTIVE (1359) for a queue whose state is not ACTIVE."""
    s = _settings(tmp_path, {**QUEUE, "state": "DISABLED"})
    with pytest.raises(PilotError) as caught:
        check_queue(_info(s))
    assert caught.value.code == ErrorCode.PANDAQUEUENOTACTIVE


def test_limits_from_the_queue(tmp_path: Path) -> None:
    """maxtime shortens the lifetime, timefloor (minutes) applies unless --timefloor is given."""
    s = _settings(tmp_path)
    queue = check_queue(_info(s))
    limits = pilot_limits(s.lifetime, s.timefloor, queue, started_epoch=1000.0)
    assert (limits.lifetime, limits.timefloor, limits.deadline) == (7200.0, 1800.0, 8200.0)
    floor = _settings(tmp_path, QUEUE, "--timefloor", "1").timefloor
    given = pilot_limits(s.lifetime, floor, queue, started_epoch=0.0)
    assert given.timefloor == 60.0


def test_monitors_from_the_queue(tmp_path: Path) -> None:
    """maxwdir (MB, per queue core for a single-core job, with the queue's grace) -> work-dir monitor; resource type
    -> memory limit (2000 MB per SCORE core, grace 2); --memory-limit wins; the pilot's deadline -> wall-time."""
    s = _settings(tmp_path)
    executor = RunnerExecutor()
    job = _job(resource_type="SCORE", core_count=1)
    setup = attrs.evolve(_setup(s, job), deadline=5000.0)
    monitors = executor.monitors(job, setup)
    (wdir,) = [m for m in monitors if isinstance(m, WorkdirSizeMonitor)]
    assert wdir.limit_bytes == int(1000 * 1024 * 1024 // 8 * 1.5)
    (memory,) = [m for m in monitors if isinstance(m, MemoryMonitor)]
    assert memory.limit_kb == 2000 * 2 * 1024
    (walltime,) = [m for m in monitors if isinstance(m, WalltimeMonitor)]
    assert walltime.deadline == 5000.0
    given = attrs.evolve(executor, memory_limit_kb=1234).monitors(_job(), setup)
    assert [m.limit_kb for m in given if isinstance(m, MemoryMonitor)] == [1234]


def test_inputs_are_read_on_their_storage_else_from_the_place(tmp_path: Path) -> None:
    """An input on a described storage gets the deterministic URL of its read protocol; one on an undescribed
    storage is read from --input-dir."""
    s = _settings(tmp_path)
    described = attrs.evolve(make_job().inputs[0], ddmendpoint="DISK")
    unknown = attrs.evolve(described, lfn="other.dat", ddmendpoint="ELSEWHERE")
    found = StorageReplicas(_info(s), str(tmp_path / "in")).list_replicas([described, unknown])
    (on_disk,) = found[described.did]
    assert on_disk.ddmendpoint == "DISK"
    assert on_disk.url == f"root://se.example:1094//atlas/rucio/{deterministic_path('test', 'in.dat')}"
    (placed,) = found[unknown.did]
    assert placed.url == f"file://{tmp_path / 'in'}/other.dat"


def test_outputs_use_the_storages_write_protocols(tmp_path: Path) -> None:
    """A described storage gives its write protocols; an undescribed one gives none (the place is used)."""
    s = _settings(tmp_path)
    info = _info(s)
    assert storage_protocols(info, "DISK", Activity.WRITE) == (StorageProtocol("davs://se.example:443",
                                                                               "/atlas/rucio/"),)
    assert storage_protocols(info, "ELSEWHERE", Activity.WRITE) == ()
    assert storage_protocols(None, "DISK", Activity.WRITE) == ()
