"""A containerised payload is stopped with its pilot, for real, with bubblewrap and with Podman: SIGTERM to a grid
pilot (ARC mode, a subprocess in its own session) while the payload sleeps in its container ends the pilot within
the stop budget, the job failed with SIGTERM's code; SIGKILL of the pilot has the lifeline end the payload's session.
Either way no process of the container is left: bubblewrap's are in the payload's session (``--die-with-parent``),
Podman's are not (children of ``conmon``) and go with the guard's ``podman rm``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.podman import PodmanNode
from fixtures.processes import naming

from pilotlib.errors import ErrorCode
from pilotlib.stages import STOP_BUDGET

from .helpers import job_definition, make_inputs, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


class ContainerPilot:
    """A grid pilot in ARC mode whose job's payload sleeps in a container; ``markers`` find its processes."""

    def __init__(self, tmp_path: Path, runtime: str, image: str, panda_id: int) -> None:
        self.tmp, self.runtime, self.image, self.panda_id = tmp_path, runtime, image, panda_id
        self.launch = tmp_path / "launch"
        self.stderr = tmp_path / "pilot.stderr"
        self.sleep = f"3{panda_id}"
        self.markers = (f"sleep {self.sleep}", f"pilotlib-{panda_id}-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        job = job_definition(self.panda_id)
        job.update({"transformation": "/bin/sh", "jobPars": f"-c 'echo up > started; sleep {self.sleep}'",
                    "container_name": self.image})
        self.launch.mkdir()
        (self.launch / "pandaJobData.out").write_text(json.dumps(job))
        make_inputs(self.tmp / "in")
        queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": f"{self.runtime}:pilot",
                 "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
        (self.tmp / "queue.json").write_text(json.dumps(queue))
        (self.tmp / "pilot.toml").write_text("payload_grace = 3\n")
        argv = ["--mode", "arc", "--launch-dir", str(self.launch), "-q", "Q", "--queuedata-file",
                str(self.tmp / "queue.json"), "-a", str(self.tmp / "work"), "--input-dir", str(self.tmp / "in"),
                "--output-dir", str(self.tmp / "storage"), "--config", str(self.tmp / "pilot.toml")]
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "apps.grid_pilot", *argv], cwd=REPO,
                                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        started = self.tmp / "work" / str(self.panda_id) / "started"
        assert wait_for(lambda: started.exists() or self.proc is None or self.proc.poll() is not None, 60)
        assert self.proc.poll() is None, self.stderr.read_text()[-3000:]
        assert naming(f"sleep {self.sleep}"), "the payload does not sleep"
        return self.proc

    def heartbeat(self) -> dict[str, object]:
        body: dict[str, object] = json.loads((self.launch / "heartbeat.json").read_text())
        return body


@pytest.fixture(params=["bubblewrap", "podman"])
def container_pilot(request: pytest.FixtureRequest, tmp_path: Path, busybox_rootfs: Path) -> Iterator[ContainerPilot]:
    """The pilot of either runtime; anything of it left at the end is killed."""
    if request.param == "podman":
        node: PodmanNode = request.getfixturevalue("podman_node")
        made = ContainerPilot(tmp_path, "podman", node.image, 9431)
    else:
        made = ContainerPilot(tmp_path, "bubblewrap", str(busybox_rootfs), 9421)
    try:
        yield made
    finally:
        if made.proc is not None and made.proc.poll() is None:
            made.proc.kill()
        if made.proc is not None:
            made.proc.wait()
        for pid in naming(*made.markers):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_ends_the_pilot_and_its_container_within_the_budget(container_pilot: ContainerPilot) -> None:
    """SIGTERM while the payload sleeps in its container: the pilot exits 143 within the stop budget, the job is
    failed with SIGTERM's code (1201), and no process of the container is left."""
    proc = container_pilot.start()
    proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    assert proc.wait(STOP_BUDGET) == 128 + signal.SIGTERM, container_pilot.stderr.read_text()[-3000:]
    elapsed = time.monotonic() - began
    assert elapsed < STOP_BUDGET
    heartbeat = container_pilot.heartbeat()
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == ErrorCode.SIGTERM == 1201
    assert wait_for(lambda: not naming(*container_pilot.markers), 10), naming(*container_pilot.markers)
    print(f"{container_pilot.runtime}: pilot ended {elapsed:.2f} s after SIGTERM")


def test_sigkill_of_the_pilot_leaves_no_container_process(container_pilot: ContainerPilot) -> None:
    """SIGKILL of the pilot while the payload sleeps in its container: the lifeline ends the payload's session and
    within seconds no process of the container (the payload, bwrap; podman, conmon, the init) is left."""
    proc = container_pilot.start()
    proc.kill()
    proc.wait()
    assert wait_for(lambda: not naming(*container_pilot.markers), 15), naming(*container_pilot.markers)
