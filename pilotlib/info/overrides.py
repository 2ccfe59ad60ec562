"""Per-job overrides carried in a job's parameters: ``--overwriteQueueData`` and ``--overwriteStorageData``.

PanDAWMS/pilot3 (``pilot/info/jobdata.py``, ``clean__jobparams``) takes these two options out of ``jobPars``
(their values are Python/JSON literal objects), uses them as the highest-priority values of the queue and storage
descriptions (``pilot/info/jobinfo.py``), and drops the old Pilot 1 spelling ``--overwriteQueuedata={...}``.
The payload never sees them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from pilotlib.info import _values as v
from pilotlib.info.errors import BadQueuedataError

__all__ = ["JobOverrides", "extract_overrides"]

_QUEUE = "--overwriteQueueData"
_STORAGE = "--overwriteStorageData"
_OLD_QUEUE = "--overwriteQueuedata"


@attrs.frozen
class JobOverrides:
    """What a job's parameters override, and the parameters without those options.

    Attributes:
        queue: fields to set on the queue description.
        storages: fields to set per storage name.
        job_pars: the job parameters with the override options removed (unchanged when there were none).
    """

    queue: Mapping[str, v.JSON] = attrs.field(factory=lambda: MappingProxyType({}))
    storages: Mapping[str, Mapping[str, v.JSON]] = attrs.field(factory=lambda: MappingProxyType({}))
    job_pars: str = ""


def extract_overrides(job_pars: str) -> JobOverrides:
    """Take ``--overwriteQueueData`` and ``--overwriteStorageData`` out of a job's parameters.

    Both ``--option={...}`` and ``--option '{...}'`` are understood.

    Raises:
        BadQueuedataError: the parameters cannot be split, or a value is not an object (QUEUEDATANOTOK).
    """
    if _QUEUE not in job_pars and _STORAGE not in job_pars and _OLD_QUEUE not in job_pars:
        return JobOverrides(job_pars=job_pars)
    try:
        args = shlex.split(job_pars)
    except ValueError as exc:
        raise BadQueuedataError(f"job parameters with overrides cannot be split: {exc}") from exc
    found: dict[str, object] = {}
    kept: list[str] = []
    index = 0
    while index < len(args):
        name, sep, value = args[index].partition("=")
        if name in (_QUEUE, _STORAGE, _OLD_QUEUE):
            if not sep and index + 1 < len(args):
                index += 1
                value = args[index]
            found[name] = value
        else:
            kept.append(args[index])
        index += 1
    queue = v.frozen_mapping(found.get(_QUEUE), _QUEUE)
    storages: dict[str, Mapping[str, v.JSON]] = {}
    for storage, fields in v.frozen_mapping(found.get(_STORAGE), _STORAGE).items():
        if not isinstance(fields, Mapping):
            raise BadQueuedataError(f"{_STORAGE}: the value for storage {storage} must be an object")
        storages[storage] = fields
    return JobOverrides(queue=queue, storages=MappingProxyType(storages), job_pars=shlex.join(kept))
