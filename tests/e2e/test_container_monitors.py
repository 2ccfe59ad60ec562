"""The monitors see into the container (real bubblewrap): the memory monitor reads the payload's process tree,
the container's processes included, and its kill ends the container."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotlib.errors import ErrorCode

from .helpers import job_definition, run_arc_job

pytestmark = pytest.mark.integration


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
