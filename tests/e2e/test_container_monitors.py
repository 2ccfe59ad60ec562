"""The monitors see into the container (real bubblewrap and Podman): the memory monitor reads the payload's
process tree, the container's processes included (for Podman, the container's session under ``conmon``, found
through its ``--pidfile``), its kill ends the container, and the job's memory figures are the container's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fixtures.podman import PodmanNode

from pilotlib.errors import ErrorCode

from .helpers import job_definition, run_arc_job

pytestmark = pytest.mark.integration

#: How long the container's guard may take to remove it after ``podman run`` ended (``podman rm --time 0``).
GUARD_SECONDS = 10.0


def test_a_memory_breach_inside_the_container_kills_it_with_payloadexceedmaxmem(tmp_path: Path,
                                                                               busybox_rootfs: Path) -> None:
    """``dd`` inside the container holds a 150 MiB buffer (blocked writing to a pipe nobody reads) against a
    50 MiB limit: the memory monitor, which sums the payload's process tree, finds it through bubblewrap, the job
    fails with PAYLOADEXCEEDMAXMEM (1235), and no process of the container is left."""
    script = "dd if=/dev/zero bs=150M count=1 2>/dev/null | sleep 600"
    job = job_definition(9601)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": str(busybox_rootfs)})
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": "bubblewrap:pilot",
             "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    heartbeat = run_arc_job(tmp_path, job, queue, "--memory-limit", str(50 * 1024), "--heartbeat", "0.2")
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == ErrorCode.PAYLOADEXCEEDMAXMEM
    assert "limit 51200 kB" in str(heartbeat["pilotErrorDiag"])
    assert _processes_with(b"bs=150M") == []


def test_a_memory_breach_inside_a_podman_container_kills_it_with_payloadexceedmaxmem(
        tmp_path: Path, podman_node: PodmanNode) -> None:
    """The same in a Podman container, which runs under ``conmon`` outside the payload's session: the monitor
    finds ``dd``'s 150 MiB through the container's session, the job fails with PAYLOADEXCEEDMAXMEM (1235), and
    neither the process nor the container is left."""
    script = "dd if=/dev/zero bs=150M count=1 2>/dev/null | sleep 600"
    job = job_definition(9602)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": podman_node.image})
    heartbeat = run_arc_job(tmp_path, job, _podman_queue(), "--memory-limit", str(50 * 1024), "--heartbeat", "0.2")
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == ErrorCode.PAYLOADEXCEEDMAXMEM
    deadline = time.monotonic() + GUARD_SECONDS  # the guard removes the container once podman run has ended
    while _processes_with(b"bs=150M") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(b"bs=150M") == []
    assert podman_node.podman("ps", "--all", "--quiet").stdout == ""


def test_a_podman_containers_memory_is_in_the_jobs_figures(tmp_path: Path, podman_node: PodmanNode) -> None:
    """A finished job whose payload held 100 MiB inside a Podman container for a few samples reports a
    ``maxRSS`` of at least that: the figures are the container's processes', not only ``podman run``'s."""
    script = "dd if=/dev/zero bs=100M count=1 2>/dev/null | sleep 3; echo done > out.dat"
    job = job_definition(9603)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": podman_node.image})
    heartbeat = run_arc_job(tmp_path, job, _podman_queue(), "--heartbeat", "0.2")
    assert heartbeat["state"] == "finished", heartbeat
    assert int(str(heartbeat["maxRSS"])) >= 100 * 1024


def _podman_queue() -> dict[str, object]:
    return {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": "podman:pilot",
            "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}


def _processes_with(marker: bytes) -> list[int]:
    """The host's processes whose command line holds ``marker`` (a container's processes are host processes too)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return found
