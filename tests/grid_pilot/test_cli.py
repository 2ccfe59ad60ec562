"""The grid pilot's command line, config file, retrieval policy, signals and exit status."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import build_kit
from apps.grid_pilot.settings import Mode, Settings
from pilotlib.errors import CommunicationError, ErrorCode, SigTermError
from pilotlib.job import Job
from pilotlib.panda.base import JobRequest
from pilotlib.pipeline import JobRun
from pilotlib.stop import Stop
from pilotlib.workflow import Outcome, Retriever, exit_code, handle_signals, pilot_limits
from tests.pipeline.fakes import make_job


def test_pilot3_style_options_make_the_settings(tmp_path: Path) -> None:
    """-q, -s, -j, -a, -l, --url, --timefloor (minutes) and --copytool map onto the settings."""
    s = parse_settings(["-q", "Q1", "-s", "SITE", "-j", "ptest", "-a", str(tmp_path), "-l", "3600",
                        "--url", "https://panda.example:25443", "--timefloor", "2", "--copytool", "xrdcp,gfal"])
    assert (s.mode, s.queue, s.site_name, s.job_label) == (Mode.SERVER, "Q1", "SITE", "ptest")
    assert s.workdir == tmp_path and s.lifetime == 3600.0 and s.timefloor == 120.0
    assert s.copytool_in == ("xrdcp", "gfal") and s.copytool_out == ("xrdcp", "gfal")


def test_platform_images_from_the_command_line_and_the_config_file(tmp_path: Path) -> None:
    """``--platform-image P=IMAGE`` (repeatable) and a TOML table ``platform-image`` give the kit's
    ``ContainerDefaults.images``; an entry without ``=`` is a ConfigError naming the option."""
    s = parse_settings(["-q", "Q", "--url", "https://panda.example", "-a", str(tmp_path),
                        "--platform-image", "x86_64-el9=/cvmfs/el9", "--platform-image", "aarch64-el9=/img/arm"])
    assert dict(s.platform_images) == {"x86_64-el9": "/cvmfs/el9", "aarch64-el9": "/img/arm"}
    assert dict(build_kit(s, Stop()).containers.images) == dict(s.platform_images)
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('[grid-pilot]\nplatform-image = {"x86_64-el8" = "/cvmfs/el8"}\n')
    s = parse_settings(["--config", str(cfg), "-q", "Q", "--url", "https://panda.example"])
    assert dict(s.platform_images) == {"x86_64-el8": "/cvmfs/el8"}
    with pytest.raises(ConfigError, match="platform-image must be PLATFORM=IMAGE, got x86_64-el9="):
        parse_settings(["-q", "Q", "--url", "https://panda.example", "--platform-image", "x86_64-el9"])


def test_config_file_is_read_and_command_line_wins(tmp_path: Path) -> None:
    """Settings come from the TOML config file; an option on the command line overrides the file."""
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('[grid-pilot]\nmode = "arc"\nlaunch-dir = "/tmp/x"\nheartbeat = 60\nqueue = "FROMFILE"\n')
    s = parse_settings(["--config", str(cfg), "-q", "CLI"])
    assert s.mode is Mode.ARC and s.launch_dir == Path("/tmp/x") and s.heartbeat == 60.0 and s.queue == "CLI"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-q", "Q"], "server mode needs --url"),
        (["--mode", "harvester"], "harvester mode needs --harvester-workdir"),
        (["--mode", "arc", "--launch-dir", "/x", "-l", "soon"], "lifetime must be a number"),
        (["-q", "Q", "--url", "ftp://x"], "--url must be an http"),
        (["--mode", "arc", "--launch-dir", "/x", "--heartbeat", "0"], "heartbeat must be a positive"),
    ],
)
def test_bad_settings_are_named(argv: list[str], message: str) -> None:
    """A missing or invalid setting is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=message):
        parse_settings(argv)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('mode = "pull"', "mode must be one of server, harvester, arc"),
        ('api = "v2"', "api must be legacy or v1"),
        ('log-level = "LOUD"', "log-level must be"),
    ],
)
def test_bad_config_file_values_are_named(tmp_path: Path, line: str, message: str) -> None:
    """A bad value in the config file (not checked by argparse) is a ConfigError naming it, not a traceback."""
    cfg = tmp_path / "pilot.toml"
    cfg.write_text(f'mode = "arc"\nlaunch_dir = "/x"\n{line}\n' if not line.startswith("mode") else f"{line}\n")
    with pytest.raises(ConfigError, match=message):
        parse_settings(["--config", str(cfg), "-q", "Q", "--url", "http://x"])


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    """A misspelt key in the config file is refused, not ignored."""
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('mode = "arc"\nlaunch_dir = "/x"\nlifetyme = 5\n')
    with pytest.raises(ConfigError, match="lifetyme"):
        parse_settings(["--config", str(cfg)])


class _Source:
    def __init__(self, n: int) -> None:
        self.left = [make_job(7000 + i) for i in range(n)]
        self.calls = 0

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        self.calls += 1
        return [self.left.pop(0)] if self.left else []


def _retriever(source: _Source, settings: Settings, started: float) -> Retriever:
    """The retriever of a grid pilot of ``settings`` without a queue description (its limits from the settings)."""
    return Retriever(source, JobRequest("S", "Q"), settings.workdir, started, max_jobs=settings.max_jobs,
                     limits=pilot_limits(settings.lifetime, settings.timefloor, None))


def _drain(retriever: Retriever) -> list[JobRun]:
    runs = []
    while (run := retriever(Stop())) is not None:
        runs.append(run)
    return runs


def test_single_job_pilot_takes_one_job(tmp_path: Path) -> None:
    """With timefloor 0 and no job limit the pilot takes one job only."""
    source = _Source(3)
    runs = _drain(_retriever(source, Settings(workdir=tmp_path), time.monotonic()))
    assert [r.job.panda_id for r in runs] == [7000] and source.calls == 1
    assert runs[0].workdir == tmp_path / "7000" and "getjob" in runs[0].timings


def test_multi_job_pilot_keeps_fetching_within_timefloor(tmp_path: Path) -> None:
    """Within the timefloor the pilot keeps asking until the source has no more work."""
    source = _Source(3)
    settings = Settings(workdir=tmp_path, timefloor=3600.0)
    assert len(_drain(_retriever(source, settings, time.monotonic()))) == 3
    assert source.calls == 4


def test_max_jobs_limits_a_multi_job_pilot(tmp_path: Path) -> None:
    """--max-jobs stops fetching after that many jobs."""
    source = _Source(5)
    settings = Settings(workdir=tmp_path, max_jobs=2)
    assert len(_drain(_retriever(source, settings, time.monotonic()))) == 2


def test_no_job_when_lifetime_is_nearly_over(tmp_path: Path) -> None:
    """No job is fetched when less than the reserve of the lifetime remains."""
    source = _Source(1)
    settings = Settings(workdir=tmp_path, lifetime=1000.0)
    assert _drain(_retriever(source, settings, time.monotonic() - 990.0)) == []
    assert source.calls == 0


def test_signal_sets_the_stop_once_with_the_signal_error() -> None:
    """SIGTERM sets the stop with SigTermError (1201); a second signal is recorded and changes nothing."""
    stop = Stop()
    with handle_signals(stop) as record:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while len(record.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # handlers run between bytecodes of the main thread
    assert record.received == [signal.SIGTERM, signal.SIGUSR1]
    assert isinstance(stop.reason, SigTermError) and stop.reason.code == ErrorCode.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize(("signum", "code", "status"), [
    (signal.SIGTERM, ErrorCode.SIGTERM, 143), (signal.SIGINT, ErrorCode.SIGINT, 130),
    (signal.SIGUSR1, ErrorCode.SIGUSR1, 138), (signal.SIGQUIT, ErrorCode.SIGQUIT, 131),
    (signal.SIGXCPU, ErrorCode.SIGXCPU, 152),
])
def test_each_handled_signal_stops_with_its_code_and_exit_status(signum: int, code: ErrorCode, status: int) -> None:
    """Each signal the pilot handles sets the stop with that signal's PanDA code; the exit status is 128+N."""
    stop = Stop()
    with handle_signals(stop) as record:
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 10
        while not record.received and time.monotonic() < deadline:
            time.sleep(0.01)  # handlers run between bytecodes of the main thread
    assert stop.reason is not None and stop.reason.code == code
    run = JobRun(make_job(1), Path("/x"), final_sent=True)
    assert exit_code(Outcome((run,), None), stop) == status


def test_exit_status_for_a_wrapper() -> None:
    """Exit status: 0 when all finals were acknowledged, 143 after SIGTERM, 79 when the server was unreachable."""
    run = JobRun(make_job(1), Path("/x"), final_sent=True)
    assert exit_code(Outcome((run,), None), Stop()) == 0
    stopped = Stop()
    stopped.set(SigTermError())
    assert exit_code(Outcome((run,), None), stopped) == 143
    assert exit_code(Outcome((), CommunicationError("down")), Stop()) == 79
    unsent = JobRun(make_job(2), Path("/x"), final_sent=False)
    assert exit_code(Outcome((unsent,), None), Stop()) == 1


def test_default_dialect_is_v1_and_legacy_stays_on_request() -> None:
    """grid-pilot speaks v1 unless told otherwise: panda-server 1.0 deleted the legacy dispatcher
    (``pandaserver/jobdispatcher/JobDispatcher.py`` is absent at tag 1.0.0 of PanDAWMS/panda-server, present at
    0.7.2) and answers ``/server/panda/getJob`` with 403; ``--api legacy`` keeps the old dialect for older servers."""
    default = parse_settings(["-q", "Q1", "--url", "https://panda.example:25443"])
    legacy = parse_settings(["-q", "Q1", "--url", "https://panda.example:25443", "--api", "legacy"])
    assert (default.api, legacy.api) == ("v1", "legacy")
    assert build_kit(default, Stop()).mode.source.dialect.name == "v1"  # type: ignore[attr-defined]
    assert build_kit(legacy, Stop()).mode.source.dialect.name == "legacy"  # type: ignore[attr-defined]
