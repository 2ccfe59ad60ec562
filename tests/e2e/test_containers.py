"""The payload in a container, for real: the grid pilot (ARC mode) runs a job whose payload the queue puts in a
container (``container_type`` ``bubblewrap:pilot`` or ``podman:pilot``), the image a busybox root file system
built from Debian's ``busybox-static`` (no registry): a directory for bubblewrap, imported into a Podman storage of
the tests' own for Podman (``fixtures/podman.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.podman import PodmanNode

from apps.grid_pilot.__main__ import main
from pilotlib.errors import ErrorCode
from pilotlib.transfer.paths import deterministic_path

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration


def _queue(tmp_path: Path, runtime: str = "bubblewrap") -> Path:
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": f"{runtime}:pilot",
             "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    path = tmp_path / "queue.json"
    path.write_text(json.dumps(queue))
    return path


def _run(tmp_path: Path, job: dict[str, str], *extra: str,
         runtime: str = "bubblewrap") -> tuple[int, dict[str, object]]:
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    status = main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q",
                   "--queuedata-file", str(_queue(tmp_path, runtime)),
                   "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"), "--output-dir",
                   str(tmp_path / "storage"), *extra])
    return status, json.loads((launch / "heartbeat.json").read_text())


def _container_job(panda_id: int, image: Path | str, script: str) -> dict[str, str]:
    job = job_definition(panda_id)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": str(image)})
    return job


def test_the_payload_runs_in_the_image_and_sees_its_work_directory(tmp_path: Path, busybox_rootfs: Path) -> None:
    """The job's ``container_name`` image on a queue with a payload runtime: ``/bin/sh`` is the image's (the host
    has no ``/etc/os-release`` of that name), the work directory is the working directory with the staged-in input,
    the output written there is staged out, the payload's exit code comes back and the job is finished."""
    script = "cat /etc/os-release in.dat > out.dat; test -d /home/nonexistent || true"
    status, heartbeat = _run(tmp_path, _container_job(9401, busybox_rootfs, script))
    assert heartbeat["state"] == "finished" and heartbeat["pilotErrorCode"] == 0, heartbeat
    out = (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text()
    assert out == "ID=pilotlib-busybox\nNAME=pilotlib test image\ninput data\n"
    assert status == 0


def test_a_payload_failure_inside_is_the_payloads_exit_code(tmp_path: Path, busybox_rootfs: Path) -> None:
    """A payload that exits 3 inside the container is reported with ``transExitCode`` 3 and a payload failure,
    not a runtime failure."""
    _status, heartbeat = _run(tmp_path, _container_job(9402, busybox_rootfs, "exit 3"))
    assert heartbeat["state"] == "failed" and heartbeat["transExitCode"] == 3
    assert heartbeat["pilotErrorCode"] == ErrorCode.PAYLOADEXECUTIONFAILURE


def test_a_payload_printing_a_runtime_message_is_not_taken_for_the_runtime(tmp_path: Path,
                                                                          busybox_rootfs: Path) -> None:
    """When the pilot ran the container, the runtime's own ``failure()`` judges the runtime; the payload's stderr is
    not searched for pilot3's container patterns (``pilot/common/errorcodes.py`` ~465, meant for payloads that start
    a container themselves). A payload inside that prints ``failed to mount image`` and exits 3 is a payload
    failure with ``transExitCode`` 3, not SINGULARITYIMAGEMOUNTFAILURE."""
    job = _container_job(9409, busybox_rootfs, "echo FATAL: failed to mount image >&2; exit 3")
    _status, heartbeat = _run(tmp_path, job)
    assert heartbeat["state"] == "failed" and heartbeat["transExitCode"] == 3
    assert heartbeat["pilotErrorCode"] == ErrorCode.PAYLOADEXECUTIONFAILURE, heartbeat["pilotErrorDiag"]


def test_a_missing_image_is_imagenotfound(tmp_path: Path) -> None:
    """An image directory that does not exist fails the job with IMAGENOTFOUND (1360) before anything runs."""
    _status, heartbeat = _run(tmp_path, _container_job(9403, tmp_path / "no-such-image", "true"))
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1360


def test_a_transformation_missing_from_the_image_is_transformnotfound(tmp_path: Path, busybox_rootfs: Path) -> None:
    """A transformation that exists on the host (``/usr/bin/python3``) but not in the image is looked up where it
    runs: bubblewrap cannot execute it, and the job fails with TRANSFORMNOTFOUND (1346), not as the payload's."""
    job = _container_job(9404, busybox_rootfs, "")
    job.update({"transformation": "/usr/bin/python3", "jobPars": "-c pass"})
    _status, heartbeat = _run(tmp_path, job)
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1346


def test_a_job_image_on_a_queue_without_containers_is_queuenotsetupforcontainers(tmp_path: Path,
                                                                                 busybox_rootfs: Path) -> None:
    """A job naming an image on a queue whose ``container_type`` names no payload runtime fails with
    QUEUENOTSETUPFORCONTAINERS (1384); its payload does not run on the node instead."""
    job = _container_job(9405, busybox_rootfs, "echo ran > out.dat")
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    plain = {"nickname": "Q", "state": "ACTIVE", "status": "online", "acopytools": {"pr": ["cp"], "pw": ["cp"]}}
    (tmp_path / "queue.json").write_text(json.dumps(plain))
    main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file", str(tmp_path / "queue.json"),
          "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage")])
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1384
    assert not (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).exists()


def test_podman_runs_the_payload_in_the_image_with_only_its_binds(tmp_path: Path, podman_node: PodmanNode) -> None:
    """Podman (``podman:pilot``), the job's image the busybox one imported into the node's storage: ``/bin/sh`` and
    ``/etc/os-release`` are the image's, the work directory is the working directory with the staged-in input, the
    host's input directory is not seen, the pilot's environment reaches the payload by name (``PANDAID``), the
    output is staged out and the job is finished; no container is left in the storage."""
    script = (f"cat /etc/os-release in.dat > out.dat; echo $PANDAID >> out.dat; "
              f"test -e {tmp_path / 'in'} && echo host seen >> out.dat; exit 0")
    status, heartbeat = _run(tmp_path, _container_job(9411, podman_node.image, script), runtime="podman")
    assert heartbeat["state"] == "finished" and heartbeat["pilotErrorCode"] == 0, heartbeat
    out = (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text()
    assert out == "ID=pilotlib-busybox\nNAME=pilotlib test image\ninput data\n9411\n"
    assert status == 0
    assert podman_node.podman("ps", "--all", "--quiet").stdout == ""


def test_podman_payload_failure_keeps_its_exit_code(tmp_path: Path, podman_node: PodmanNode) -> None:
    """A payload exiting 125 inside (Podman's own status for its failures) is the payload's: ``transExitCode``
    125, no runtime code (Podman printed no ``Error:`` line)."""
    _status, heartbeat = _run(tmp_path, _container_job(9412, podman_node.image, "exit 125"), runtime="podman")
    assert heartbeat["state"] == "failed" and heartbeat["transExitCode"] == 125
    assert heartbeat["pilotErrorCode"] == ErrorCode.PAYLOADEXECUTIONFAILURE


def test_podman_missing_image_is_imagenotfound(tmp_path: Path, podman_node: PodmanNode) -> None:
    """An image not in the storage (``localhost/...``: never pulled) fails the job with IMAGENOTFOUND (1360), from
    Podman's "image not known"."""
    _status, heartbeat = _run(tmp_path, _container_job(9413, "localhost/no-such-image:1", "true"), runtime="podman")
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1360
    assert "image not known" in str(heartbeat["pilotErrorDiag"])


def test_podman_transformation_missing_from_the_image_is_transformnotfound(tmp_path: Path,
                                                                            podman_node: PodmanNode) -> None:
    """A transformation the image lacks (``/usr/bin/python3``): Podman exits 127 with its runtime's "command that
    was not found" and the job fails with TRANSFORMNOTFOUND (1346), not as the payload's."""
    job = _container_job(9414, podman_node.image, "")
    job.update({"transformation": "/usr/bin/python3", "jobPars": "-c pass"})
    _status, heartbeat = _run(tmp_path, job, runtime="podman")
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1346


def test_podman_failing_runtime_is_its_code(tmp_path: Path, podman_node: PodmanNode) -> None:
    """Podman itself failing (the queue's ``container_options`` pass it a flag it does not know: exit 125 and its
    ``Error:`` line) fails the job with SETUPFAILURE (1110), the runtime's code, not the payload's."""
    queue = json.loads(_queue(tmp_path, "podman").read_text())
    queue["container_options"] = "--no-such-podman-flag"
    (tmp_path / "queue-bad.json").write_text(json.dumps(queue))
    job = _container_job(9415, podman_node.image, "true")
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file",
          str(tmp_path / "queue-bad.json"), "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"),
          "--output-dir", str(tmp_path / "storage")])
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["state"] == "failed" and heartbeat["pilotErrorCode"] == 1110
    assert "unknown flag: --no-such-podman-flag" in str(heartbeat["pilotErrorDiag"])


def test_the_platforms_image_from_the_pilot_options_runs_a_job_that_names_none(tmp_path: Path,
                                                                               busybox_rootfs: Path) -> None:
    """A job with no image and the platform ``x86_64-el9-gcc13-opt`` (``cmtConfig``) on a queue with a payload
    runtime runs in the image ``--platform-image x86_64-el9=...`` gives (pilot3 ``pilot/user/atlas/container.py``
    takes the image of the platform's architecture and OS), not in ``--container-image``'s."""
    job = _container_job(9406, busybox_rootfs, "cat /etc/os-release > out.dat")
    del job["container_name"]
    job["cmtConfig"] = "x86_64-el9-gcc13-opt"
    status, heartbeat = _run(tmp_path, job, "--platform-image", f"x86_64-el9={busybox_rootfs}",
                             "--platform-image", f"x86_64-el8={tmp_path / 'el8'}",
                             "--container-image", str(tmp_path / "no-such-default"))
    assert heartbeat["state"] == "finished" and status == 0, heartbeat
    out = (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text()
    assert out.startswith("ID=pilotlib-busybox")
