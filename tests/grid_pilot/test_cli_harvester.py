"""Harvester's file names and layout as settings of ``grid-pilot`` (command line and config file).

Harvester reads every file name from its configuration's ``[payload_interaction]`` section (HSF/harvester
``pandaharvester/harvestermessenger/base_messenger.py`` commit d561b72fec24, ``_load_default_attrs`` l.18-44), and
``SharedFileMessenger.get_access_point`` (``shared_file_messenger.py`` l.149-155) puts a ``MT_MultiJobs`` worker's
job files in ``<access point>/<PandaID>/``; a pilot must follow whatever the instance is configured with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import harvester_files

#: option -> (the HarvesterFiles attribute it sets, Harvester's ``[payload_interaction]`` key, base_messenger line)
OPTIONS = {
    "job-file": ("job_file", "jobSpecFile", 30),
    "pandaids-file": ("panda_ids", "pandaIDsFile", 40),
    "request-file": ("job_request", "jobRequestFile", 28),
    "attributes-file": ("worker_attributes", "workerAttributesFile", 20),
    "report-file": ("job_report", "jobReportFile", 22),
    "event-status-file": ("event_status", "eventStatusDumpJsonFile", 24),
    "event-request-file": ("event_request", "eventRequestFile", 32),
    "event-ranges-file": ("event_ranges", "eventRangesFile", 34),
    "kill-file": ("kill_worker", "killWorkerFile", 42),
    "heartbeat-file": ("heartbeat", "heartbeatFile", 44),
}
BASE = ["--mode", "harvester", "-q", "Q"]


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_harvester_file_name_from_the_command_line(option: str, tmp_path: Path) -> None:
    """``--harvester-<option> NAME`` sets the file Harvester's ``[payload_interaction]`` key names."""
    attribute, _key, _line = OPTIONS[option]
    settings = parse_settings([*BASE, "--harvester-workdir", str(tmp_path), f"--harvester-{option}", "x.json"])
    assert getattr(harvester_files(settings), attribute) == "x.json"


def test_file_names_and_per_job_dirs_from_the_config_file(tmp_path: Path) -> None:
    """The config file gives the same settings by their long names; Harvester's own fallback job file name
    ``pandaJobData.out`` (base_messenger.py l.30) and ``MT_MultiJobs`` directories included."""
    config = tmp_path / "pilot.toml"
    lines = [f'harvester_{option.replace("-", "_")} = "{key}.json"' for option, (_a, key, _l) in OPTIONS.items()
             if option != "job-file"]
    config.write_text("\n".join(['harvester-job-file = "pandaJobData.out"', "harvester-per-job-dirs = true",
                                 'harvester-stageout = "harvester"', *lines]))
    settings = parse_settings([*BASE, "--harvester-workdir", str(tmp_path), "--config", str(config)])
    files = harvester_files(settings)
    assert files.job_file == "pandaJobData.out" and files.per_job_dirs is True
    assert files.job_path(7, files.worker_attributes) == tmp_path / "7" / "workerAttributesFile.json"
    for option, (attribute, key, _line) in OPTIONS.items():
        if option != "job-file":
            assert getattr(files, attribute) == f"{key}.json"
    assert settings.harvester_stageout == "harvester"


def test_unset_names_keep_harvesters_defaults(tmp_path: Path) -> None:
    """Without the options the names are the defaults of Harvester's shipped configuration (``jobSpecFile =
    HPCJobs.json``, ``templates/panda/panda_harvester.cfg.rpmnew.template`` l.697)."""
    files = harvester_files(parse_settings([*BASE, "--harvester-workdir", str(tmp_path)]))
    assert (files.job_file, files.per_job_dirs, files.event_status) == ("HPCJobs.json", False,
                                                                        "event_status.dump.json")


@pytest.mark.parametrize(("extra", "message"), [
    (["--harvester-job-file", "../x"], "harvester-job-file must be a plain file name"),
    (["--in-flight", "2"], "in-flight 2 needs --harvester-per-job-dirs"),
])
def test_bad_harvester_settings_refused(extra: list[str], message: str, tmp_path: Path) -> None:
    """A file name that is a path, or two jobs in flight sharing one access point, is a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        parse_settings([*BASE, "--harvester-workdir", str(tmp_path), *extra])


def test_harvester_stageout_choice_checked_in_the_config_file(tmp_path: Path) -> None:
    """``harvester-stageout`` is ``pilot`` or ``harvester``; anything else in the config file is a ConfigError."""
    config = tmp_path / "pilot.toml"
    config.write_text('harvester-stageout = "nobody"')
    with pytest.raises(ConfigError, match="harvester-stageout must be pilot or harvester"):
        parse_settings([*BASE, "--harvester-workdir", str(tmp_path), "--config", str(config)])
