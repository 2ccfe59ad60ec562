"""The pilot's log files always tell the whole story; --log-level only sets what reaches the console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.grid_pilot.compose import pilot_state
from apps.grid_pilot.settings import Settings
from pilotlib.logcontext import PerJobFileHandler, job_context
from pilotlib.workflow import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (the app reconfigures it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _configure_logging(settings: Settings) -> PerJobFileHandler:
    """The grid pilot's logging of ``settings``, as its ``main`` sets it up."""
    return configure_logging(pilot_state(settings), settings.log_level)


def test_files_get_info_records_when_the_console_is_at_warning(tmp_path: Path, restore_logging: None) -> None:
    """With --log-level WARNING, INFO records still reach pilotlog.txt and the job's own log (both in the state
    directory, ``<workdir>/pilot-state`` by default), not the console."""
    per_job = _configure_logging(Settings(workdir=tmp_path, log_level="WARNING"))
    console = logging.getLogger().handlers[0]
    assert console.level == logging.WARNING
    with job_context(77):
        logging.getLogger("pilotlib.test").info("stage-in start lfn=x")
    per_job.close_job(77)
    state = tmp_path / "pilot-state"
    assert "job=77 pilotlib.test: stage-in start lfn=x" in (state / "pilotlog.txt").read_text()
    assert "stage-in start lfn=x" in (state / "pilotlog-77.txt").read_text()


def test_a_library_logging_a_tokenised_url_is_redacted_in_every_file(tmp_path: Path, restore_logging: None) -> None:
    """A backend's own logger (rucio-clients logs the xrdcp command with its PFN: rucio 41.5.1
    ``rse/protocols/xrootd.py:246``) writing ``?authz=<token>`` reaches pilotlog.txt and the job's log as
    ``authz=***``: grid-pilot's handlers carry pilotlib's SecretFilter."""
    per_job = _configure_logging(Settings(workdir=tmp_path, log_level="WARNING"))
    with job_context(78):
        logging.getLogger("rucio").warning("xrootd.get: cmd: xrdcp -f %s /w/f", "root://h//f?authz=tokXYZ123")
    per_job.close_job(78)
    for name in ("pilotlog.txt", "pilotlog-78.txt"):
        text = (tmp_path / "pilot-state" / name).read_text()
        assert "xrdcp -f root://h//f?authz=*** /w/f" in text and "tokXYZ123" not in text
