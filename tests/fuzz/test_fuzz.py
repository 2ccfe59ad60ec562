"""Coverage-guided fuzzing (atheris, libFuzzer) of every parser of what another program wrote, for a bounded time.

Each target (``tests/fuzz/targets.py``) runs in its own process for ``$PILOTLIB_FUZZ_SECONDS`` (default 20: two
minutes in all) from the repository's examples, with a memory limit (``-rss_limit_mb``) and a per-input time limit
(``-timeout``): an input that makes a parser raise anything but its typed error, take more than 5 s or more than 1 GiB
is a crash, written to the test's directory and shown in the failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from .targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("PILOTLIB_FUZZ_SECONDS", "20"))
AREAS = {
    "job_definition": "job definition",
    "harvester_job_file": "harvester files",
    "harvester_event_ranges": "harvester files",
    "dispatcher_answers": "dispatcher answers",
    "queue_and_storage": "queue and storage descriptions",
    "channel_messages": "event-service channel",
}


@pytest.mark.timeout(SECONDS + 120)
@pytest.mark.parametrize("target", [
    pytest.param(name, marks=pytest.mark.reliability("bad input", AREAS[name], f"fuzzed by atheris: {name}"))
    for name in TARGETS
])
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path, ledger: Ledger) -> None:
    """libFuzzer runs the target for the time given and ends with no crash, timeout or memory excess."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [sys.executable, str(REPO / "tests/fuzz/targets.py"), target, f"-max_total_time={SECONDS}",
         "-rss_limit_mb=1024", "-timeout=5", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 90, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    done = re.search(r"^Done (\d+) runs", run.stderr, re.M)
    ledger.add(fuzz_executions=int(done.group(1)) if done else 0)
    crashes = sorted(path.name for path in tmp_path.iterdir() if path.name != "corpus")
    assert run.returncode == 0 and not crashes and done, f"{crashes}\n{run.stderr[-3000:]}"
    assert int(done.group(1)) > 100
