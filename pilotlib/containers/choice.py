"""Which container a job's payload runs in, if any (resolved with the job's set-up, once, as the job is taken).

As pilot3 chooses (``pilot/user/atlas/container.py`` ``do_use_container`` and ``container_wrapper``;
``pilot/info/jobdata.py`` for the job's image):

- the job's own image: ``--containerImage`` in ``jobPars`` (taken out of the payload's parameters,
  ``pilot/info/jobdata.py:747-778``) wins over the job definition's ``container_name`` (``jobdata.py:238-244``);
  ``NULL`` is no image (``container.py:85``). It needs the queue's payload runtime (``container_type``
  ``<runtime>:pilot``, ``container.py:736``), else the job fails with QUEUENOTSETUPFORCONTAINERS (1384,
  ``pilot/control/job.py:1276-1287``);
- else, when the queue names a payload runtime and the job has a platform (``cmtConfig``, ``container.py:87-93``),
  the image for the platform's architecture and OS (``x86_64-el9`` of ``x86_64-el9-gcc13-opt``,
  ``container.py:126-144``) from the pilot's :class:`ContainerDefaults` (pilot3 looks for
  ``<arch-os>.img`` under CVMFS, ``container.py:146-172``), else the pilot's default image;
- else no container.

pilotlib also takes a ``payload`` key of ``container_type`` for the payload's runtime (pilot3 reads ``pilot`` only)
and the pilot's own runtime when the queue names none (:attr:`ContainerDefaults.runtime`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from pilotlib.containers.errors import QueueNotSetUpForContainersError
from pilotlib.info import QueueDescription
from pilotlib.job import Job

__all__ = ["ContainerChoice", "ContainerDefaults", "choose_container", "split_container_image"]

#: The ``container_type`` keys that name the payload's runtime (``apptainer:pilot``, or ``...:payload``).
PAYLOAD_KEYS = ("pilot", "payload")
_OPTION = "--containerImage"
_QUOTES = "'\""
_PLATFORM_OS = re.compile(r"^([^-]+-[^-]+)")


@attrs.frozen
class ContainerChoice:
    """The payload's runtime (a ``pilotlib.containers`` entry-point name) and image; ``options`` the queue's."""

    runtime: str
    image: str
    options: str = ""


def _frozen(images: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(images))


@attrs.frozen
class ContainerDefaults:
    """The pilot's own container configuration, below the job's image.

    Attributes:
        runtime: the payload runtime when the queue names none (""; a queue's ``container_type`` wins).
        image: the image for a job that has none of its own (""; none).
        images: images by platform architecture and OS (``{"x86_64-el9": "/cvmfs/.../el9"}``).
        middleware_image: the image stage-in and stage-out run in when the copytool is not usable on the node and
            the queue allows a middleware container (pilot3's ``middleware_container``; "": none,
            :func:`pilotlib.containers.middleware.choose_middleware`).
    """

    runtime: str = ""
    image: str = ""
    images: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    middleware_image: str = ""


def split_container_image(job_pars: str) -> tuple[str, str]:
    """``jobPars`` without ``--containerImage`` (``=IMAGE`` or `` IMAGE``), and the image ("" when absent).

    As pilot3 takes it out of ``jobPars`` (``pilot/info/jobdata.py:747-778``, ``extract_container_image``): the
    first ``--containerImage`` word and its value, quotes around them dropped. A quote that is not the option's own
    (it closes or opens a quoted argument the option sits at the edge of, ``-p 'run --containerImage=IMG'``) is
    kept where it was, so the rest still splits as it did (pilot3 removes it with the option, and keeps it in the
    image's name).
    """
    words = job_pars.split(" ")
    for i, word in enumerate(words):
        bare = word.strip(_QUOTES)
        if bare == _OPTION and i + 1 < len(words):
            end, image = i + 2, words[i + 1].strip(_QUOTES)
        elif bare.startswith(_OPTION + "="):
            end, image = i + 1, bare[len(_OPTION) + 1:]
        else:
            continue
        opening, closing = _unpaired_quotes(" ".join(words[i:end]))
        before, after = words[:i], words[end:]
        if closing:
            before = [*before[:-1], before[-1] + closing] if before else [closing]
        if opening:
            after = [opening + after[0], *after[1:]] if after else [opening]
        return " ".join(before + after).strip(), image
    return job_pars, ""


def _unpaired_quotes(text: str) -> tuple[str, str]:
    """The quotes of ``text`` (an option and its value: quotes only at its words' edges) that pair with none in it:
    those at its start (they open an argument that goes on after it) and those at its end (they close one)."""
    stack: list[tuple[int, str]] = []
    for index, char in enumerate(text):
        if char in _QUOTES:
            if stack and stack[-1][1] == char:
                stack.pop()
            else:
                stack.append((index, char))
    lead = len(text) - len(text.lstrip(_QUOTES))
    opening = "".join(char for index, char in stack if index < lead)
    closing = "".join(char for index, char in stack if index >= lead)
    return opening, closing


def _payload_runtime(queue: QueueDescription | None, defaults: ContainerDefaults) -> str:
    types = queue.container_type if queue is not None else {}
    return next((types[key] for key in PAYLOAD_KEYS if types.get(key)), "") or defaults.runtime


def choose_container(job: Job, job_image: str, queue: QueueDescription | None,
                     defaults: ContainerDefaults = ContainerDefaults()) -> ContainerChoice | None:
    """The job's container (``job_image``: its ``--containerImage``, already taken out of its parameters), or None.

    Raises:
        QueueNotSetUpForContainersError: the job has an image of its own and there is no payload runtime (1384).
    """
    image = job_image or (job.container_name if job.container_name not in ("", "NULL") else "")
    runtime = _payload_runtime(queue, defaults)
    options = queue.container_options if queue is not None else ""
    if image:
        if not runtime:
            raise QueueNotSetUpForContainersError(
                f"the job asks for container image {image} but the queue names no container runtime for the payload")
        return ContainerChoice(runtime, image, options)
    if not runtime or not job.cmtconfig:
        return None
    found = _PLATFORM_OS.match(job.cmtconfig)
    image = defaults.images.get(found.group(1) if found else job.cmtconfig, "") or defaults.image
    return ContainerChoice(runtime, image, options) if image else None
