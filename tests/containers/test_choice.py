"""Which container a job's payload runs in (:mod:`pilotlib.containers.choice`), rule by rule as pilot3 decides:
``pilot/info/jobdata.py:238-244`` (the job's ``--containerImage`` over ``container_name``), ``pilot/user/atlas/
container.py:71-98`` (``do_use_container``: an image not ``NULL``; else a platform and the queue's ``pilot``
runtime), ``container.py:126-144`` and ``146-172`` (the platform's image), ``pilot/control/job.py:1276-1287``
(1384), ``pilot/info/jobdata.py:747-778`` (``--containerImage`` taken out of ``jobPars``)."""

from __future__ import annotations

import pytest

from pilotlib.containers import (
    ContainerChoice,
    ContainerDefaults,
    QueueNotSetUpForContainersError,
    choose_container,
    split_container_image,
)
from pilotlib.info.queue import parse_queue
from pilotlib.job import Job

EL9 = "/cvmfs/unpacked.cern.ch/registry.hub.docker.com/atlas/el9:latest"
DEFAULTS = ContainerDefaults(image="/images/default.sif", images={"x86_64-el9": EL9})


def _queue(container_type: str = "apptainer:pilot", options: str = ""):  # type: ignore[no-untyped-def]
    return parse_queue({"nickname": "Q", "container_type": container_type, "container_options": options})


def test_the_jobs_image_wins_over_container_name() -> None:
    """``--containerImage`` over ``container_name`` and over the platform's image; the queue's options kept."""
    job = Job(panda_id=1, container_name="docker://from/definition", cmtconfig="x86_64-el9-gcc13-opt")
    choice = choose_container(job, "docker://from/jobpars", _queue(options="-B /scratch"), DEFAULTS)
    assert choice == ContainerChoice("apptainer", "docker://from/jobpars", "-B /scratch")


def test_container_name_is_the_image_without_containerimage() -> None:
    """Without ``--containerImage`` the job definition's ``container_name`` is the image."""
    job = Job(panda_id=1, container_name="/cvmfs/images/x.sif")
    assert choose_container(job, "", _queue(), DEFAULTS) == ContainerChoice("apptainer", "/cvmfs/images/x.sif")


def test_a_null_container_name_is_no_image() -> None:
    """``NULL`` is no image: a job without a platform then runs on the node, one with a platform gets its image."""
    assert choose_container(Job(panda_id=1, container_name="NULL"), "", _queue(), DEFAULTS) is None
    job = Job(panda_id=1, container_name="NULL", cmtconfig="x86_64-el9-gcc13-opt")
    assert choose_container(job, "", _queue(), DEFAULTS) == ContainerChoice("apptainer", EL9)


@pytest.mark.parametrize("container_type", ["singularity:pilot", "singularity:payload",
                                            "singularity:pilot;container:middleware"])
def test_the_queues_payload_runtime_is_its_pilot_or_payload_key(container_type: str) -> None:
    """The runtime is ``container_type``'s ``pilot`` (pilot3's) or ``payload`` key; other keys are not the payload's."""
    job = Job(panda_id=1, container_name="/images/x.sif")
    choice = choose_container(job, "", _queue(container_type), DEFAULTS)
    assert choice == ContainerChoice("singularity", "/images/x.sif")


@pytest.mark.parametrize(("cmtconfig", "image"), [
    ("x86_64-el9-gcc13-opt", EL9),
    ("x86_64-el9", EL9),
    ("x86_64-centos7-gcc8-opt", "/images/default.sif"),  # no image for the platform: the pilot's default
])
def test_a_platform_gets_the_image_of_its_architecture_and_os(cmtconfig: str, image: str) -> None:
    """No image of the job's own: the image of ``cmtConfig``'s architecture and OS, else the pilot's default."""
    choice = choose_container(Job(panda_id=1, cmtconfig=cmtconfig), "", _queue(), DEFAULTS)
    assert choice == ContainerChoice("apptainer", image)


def test_no_container_without_a_runtime_or_a_platform_or_an_image() -> None:
    """No payload runtime, no queue description, no platform, or no image for it: the payload runs on the node."""
    job = Job(panda_id=1, cmtconfig="x86_64-el9-gcc13-opt")
    assert choose_container(job, "", _queue(""), DEFAULTS) is None            # no payload runtime
    assert choose_container(job, "", _queue("container:middleware"), DEFAULTS) is None
    assert choose_container(job, "", None, DEFAULTS) is None                  # no queue description
    assert choose_container(Job(panda_id=1), "", _queue(), DEFAULTS) is None  # no platform
    assert choose_container(job, "", _queue(), ContainerDefaults()) is None   # no image for it


def test_the_pilots_runtime_serves_when_the_queue_names_none() -> None:
    """``ContainerDefaults.runtime`` serves a queue that names none; a queue's runtime wins over it."""
    job = Job(panda_id=1, cmtconfig="x86_64-el9-gcc13-opt")
    defaults = ContainerDefaults(runtime="apptainer", images={"x86_64-el9": EL9})
    assert choose_container(job, "", _queue(""), defaults) == ContainerChoice("apptainer", EL9)
    assert choose_container(job, "", _queue("singularity:pilot"), defaults) == ContainerChoice("singularity", EL9)


@pytest.mark.parametrize(("job_image", "container_name"), [("docker://x", ""), ("", "docker://y")])
def test_a_job_image_without_a_runtime_is_queuenotsetupforcontainers(job_image: str, container_name: str) -> None:
    """A job's own image on a queue without a payload runtime: QUEUENOTSETUPFORCONTAINERS 1384."""
    with pytest.raises(QueueNotSetUpForContainersError) as caught:
        choose_container(Job(panda_id=1, container_name=container_name), job_image, _queue(""), DEFAULTS)
    assert int(caught.value.code) == 1384


@pytest.mark.parametrize(("job_pars", "expected"), [
    ("-a 1 --containerImage docker://atlas/el9 -b", ("-a 1 -b", "docker://atlas/el9")),
    ("-a 1 --containerImage=docker://atlas/el9", ("-a 1", "docker://atlas/el9")),
    ("'--containerImage=/images/x.sif' -a", ("-a", "/images/x.sif")),
    ("--containerImage '/images/x.sif' -a", ("-a", "/images/x.sif")),
    ("-a 1", ("-a 1", "")),
    ("-a --containerImage", ("-a --containerImage", "")),  # no value: left alone, as pilot3's pattern needs one
    # the option at the edge of a quoted argument: the argument's quotes stay (they were lost before)
    ("-p 'run.py --containerImage=docker://x' -o out", ("-p 'run.py' -o out", "docker://x")),
    ('-c "a --containerImage docker://x"', ('-c "a"', "docker://x")),
    ("'--containerImage=docker://x run.py' -o out", ("'run.py' -o out", "docker://x")),
])
def test_split_container_image(job_pars: str, expected: tuple[str, str]) -> None:
    """``--containerImage`` and its value leave ``jobPars`` (``=`` or a space, quotes dropped); others' quotes stay."""
    assert split_container_image(job_pars) == expected
