"""Apptainer and Singularity through the grid pilot (ARC mode), with a stand-in: neither can be installed here, so
a small program named ``apptainer`` (``singularity``) on the pilot's ``PATH`` records the command line pilotlib
gave it and runs the command with bubblewrap in the busybox image (``tests/fixtures/apptainer_standin.py``).

The runtimes come from the installed ``pilotlib.containers`` entry points (``pyproject.toml``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fixtures.apptainer_standin import make_standin, recorded

from apps.grid_pilot.__main__ import main
from pilotlib.transfer.paths import deterministic_path

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration

def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str, job: dict[str, str],
         failure: str = "") -> tuple[int, dict[str, object]]:
    """Run the job on a queue with ``container_type`` ``<runtime>:pilot`` and ``container_options`` ``--contain``,
    the stand-in on the ``PATH`` of the environment the pilot reads (its only one)."""
    make_standin(tmp_path / "bin", runtime, tmp_path / "argv.jsonl", failure)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": f"{runtime}:pilot",
             "container_options": "--contain", "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "pandaJobData.out").write_text(json.dumps(job))
    (tmp_path / "proxy").write_text("not a real proxy\n")
    make_inputs(tmp_path / "in")
    status = main(["--mode", "arc", "--launch-dir", str(tmp_path / "launch"), "-q", "Q", "--queuedata-file",
                   str(tmp_path / "queue.json"), "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"),
                   "--output-dir", str(tmp_path / "storage"), "--proxy", str(tmp_path / "proxy")])
    return status, json.loads((tmp_path / "launch" / "heartbeat.json").read_text())


def _job(panda_id: int, image: Path, script: str) -> dict[str, str]:
    job = job_definition(panda_id)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": str(image)})
    return job


SCRIPT = 'pwd > out.dat; cat /etc/os-release in.dat "$X509_USER_PROXY" >> out.dat'


@pytest.mark.parametrize("runtime", ["apptainer", "singularity"])
def test_the_payload_runs_inside_with_the_golden_command_line(tmp_path: Path, busybox_rootfs: Path, runtime: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in is found on the pilot's ``PATH`` and given ``exec -B WORKDIR,PROXY:PROXY:ro <queue options>
    --pwd WORKDIR IMAGE /bin/sh -c SCRIPT`` (no ``/cvmfs`` on this host); inside the image the payload runs in its
    work directory with the staged-in input and reads the proxy at the path its environment names; its output is
    staged out and the job is finished."""
    status, heartbeat = _run(tmp_path, monkeypatch, runtime, _job(9501, busybox_rootfs, SCRIPT))
    assert heartbeat["state"] == "finished" and heartbeat["pilotErrorCode"] == 0, heartbeat
    out = (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text()
    workdir, rest = out.split("\n", 1)
    assert rest == "ID=pilotlib-busybox\nNAME=pilotlib test image\ninput data\nnot a real proxy\n"
    assert Path(workdir).is_relative_to(tmp_path / "work")
    proxy = tmp_path / "proxy"
    assert recorded(tmp_path / "argv.jsonl") == [
        ["exec", "-B", f"{workdir},{proxy}:{proxy}:ro", "--contain", "--pwd", workdir, str(busybox_rootfs),
         "/bin/sh", "-c", SCRIPT]]
    assert status == 0


@pytest.mark.parametrize(("message", "code"), [
    ("FATAL:   container creation failed: mount /cvmfs->/cvmfs error: while mounting /cvmfs: mount source /cvmfs "
     "doesn't exist", 1309),
    ("FATAL:   could not open image /images/el9.sif: failed to retrieve path for /images/el9.sif: no such file", 1360),
    ("ERROR  : Failed to create user namespace: user namespace disabled", 1345),
])
def test_an_apptainer_failure_fails_the_job_with_its_code(tmp_path: Path, busybox_rootfs: Path, message: str,
                                                          code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime that prints an Apptainer failure and exits 255 fails the job with that failure's code, not as a
    payload failure; the payload did not run (no output)."""
    _status, heartbeat = _run(tmp_path, monkeypatch, "apptainer", _job(9502, busybox_rootfs, SCRIPT), failure=message)
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == code, heartbeat
    assert len(recorded(tmp_path / "argv.jsonl")) == 1
    assert not (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).exists()
