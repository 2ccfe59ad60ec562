"""The tutorial pilot ``examples/my_pilot.py`` shows that pilotlib is a kit (issue "Show that it is a kit").

Shown: a pilot for a new experiment, composed from pilotlib alone in under 80 lines (its own JSON job source, the
library's dispatcher client as reporter, the ``cp`` copytool, its own payload set-up with ``MYEXP_RELEASE``, the
library's logging, signals, lifeline, run, exit status and summary), runs a job end to end as a real process
against the local PanDA server over HTTP: inputs staged in, the payload run in the experiment's set-up, the output
and the log staged out, starting/running/finished reported.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from panda_devserver import DevServer
from pilotlib.panda.base import JobRequest
from pilotlib.transfer.paths import deterministic_path

from .helpers import adler32, final_update, job_definition

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "examples" / "my_pilot.py"

#: The job's payload: fails (exit 7) unless the pilot set MYEXP_RELEASE up; writes the input and the release it saw.
PAYLOAD = 'test "$MYEXP_RELEASE" = 1.0 || exit 7; { cat in.dat; echo "release=$MYEXP_RELEASE"; } > out.dat'


def _definition(panda_id: int, data: bytes) -> dict[str, str]:
    """The e2e job (input ``in.dat``, output ``out.dat``, a log) with ``PAYLOAD`` as its command (``/bin/sh -c``)."""
    definition = job_definition(panda_id, data=data)
    definition.update({"transformation": "/bin/sh", "jobPars": f"-c '{PAYLOAD}'", "inFiles": "in.dat",
                       "scopeIn": "e2e", "GUID": "g1", "fsize": str(len(data)), "checksum": f"ad:{adler32(data)}",
                       "ddmEndPointIn": "LOCAL"})
    return definition


def _tutorial() -> ModuleType:
    spec = importlib.util.spec_from_file_location("my_pilot", TUTORIAL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_the_tutorial_pilot_runs_a_job_end_to_end(panda_server: DevServer, tmp_path: Path) -> None:
    """``python examples/my_pilot.py`` (a real process, not the repository as working directory) takes the job from
    its JSON file, stages ``in.dat`` in with ``cp``, runs the payload with ``MYEXP_RELEASE=1.0`` (not in the test's
    environment: the pilot's set-up gives it), stages ``out.dat`` out to the deterministic path under the output
    directory and reports starting, running and finished to the server; it exits 0.

    The server must know the job: the devserver (like panda-server) refuses updates of an unknown PandaID
    (``StatusCode`` 30), so the job is added to it as well, though the pilot never asks it for work."""
    data = b"myexp input\n"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "in.dat").write_bytes(data)
    (tmp_path / "job.json").write_text(json.dumps(_definition(8801, data)))
    panda_server.add_job(_definition(8801, data))
    env = {key: value for key, value in os.environ.items() if key != "MYEXP_RELEASE"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(TUTORIAL), "--job", str(tmp_path / "job.json"), "--url", panda_server.url,
         "--workdir", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"),
         "--output-dir", str(tmp_path / "storage")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    states = [u["state"] for u in panda_server.updates(8801)]
    assert states[0] == "starting" and "running" in states and states[-1] == "finished"
    assert panda_server.final_state(8801) == "finished"
    final = final_update(panda_server.updates(8801))
    assert int(final["pilotErrorCode"]) == 0 and int(final["transExitCode"]) == 0
    stored = tmp_path / "storage" / deterministic_path("e2e", "out.dat")
    assert stored.read_bytes() == data + b"release=1.0\n"
    assert json.loads(str(final["xml"]))["out.dat"]["surl"] == "file://" + str(stored)
    assert (tmp_path / "storage" / deterministic_path("e2e", "log.tgz")).is_file()
    assert "job 8801: finished pilotErrorCode=0 final update acknowledged" in done.stdout
    assert (tmp_path / "work" / "pilot-state" / "pilotlog.txt").is_file()


def test_the_json_source_hands_out_each_job_once(tmp_path: Path) -> None:
    """The tutorial's job source reads the file at the first ask, gives at most ``n_jobs`` jobs per ask, each job
    once, and nothing once the file is used up."""
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([_definition(panda_id, b"x") for panda_id in (1, 2, 3)]))
    source = _tutorial().JsonJobSource(path)
    path.unlink()  # read at the first ask, not before: this makes the first ask fail
    with pytest.raises(FileNotFoundError):
        source.get_jobs(JobRequest("MYEXP", "MYEXP_QUEUE"))
    path.write_text(json.dumps([_definition(panda_id, b"x") for panda_id in (1, 2, 3)]))
    asks = [source.get_jobs(JobRequest("MYEXP", "MYEXP_QUEUE", n_jobs=n)) for n in (2, 2, 1)]
    assert [[job.panda_id for job in jobs] for jobs in asks] == [[1, 2], [3], []]


def test_the_tutorial_is_short_and_uses_pilotlib_only() -> None:
    """The tutorial stays under 80 lines (docstring and comments counted) and imports pilotlib and the standard
    library only: nothing of ``apps`` (nor the dev server), a pilot made of the library alone."""
    source = TUTORIAL.read_text(encoding="utf-8")
    assert len(source.splitlines()) < 80
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    packages = {name.partition(".")[0] for name in imported}
    assert "pilotlib" in packages
    assert packages - {"pilotlib"} <= sys.stdlib_module_names, packages
