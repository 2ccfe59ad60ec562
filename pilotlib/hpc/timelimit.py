"""When the allocation ends, from the batch system.

- Slurm: ``SLURM_JOB_END_TIME`` (epoch seconds, set in the job's environment by recent Slurm releases), else the
  job's ``EndTime`` as ``squeue -h -j $SLURM_JOB_ID -o %e`` prints it (local time, ``YYYY-MM-DDTHH:MM:SS``);
  ``UNLIMITED``/``N/A`` mean no limit;
- Cobalt (ALCF): ``COBALT_ENDTIME`` (epoch seconds).

The pilot's own option (an end time or a wall time) wins over all of them; the app decides.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping

__all__ = ["SQUEUE_TIMEOUT", "allocation_end", "parse_slurm_time"]

log = logging.getLogger(__name__)

#: Seconds ``squeue`` may take to answer.
SQUEUE_TIMEOUT = 10.0


def parse_slurm_time(text: str) -> float | None:
    """Epoch seconds of a Slurm time (``2026-12-02T15:04:05``, local time); None for ``UNLIMITED``, ``N/A``,
    ``Unknown`` or anything else that is not a time."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _epoch(env: Mapping[str, str], name: str) -> float | None:
    text = env.get(name, "").strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def _squeue_end(env: Mapping[str, str], job_id: str) -> float | None:
    try:
        done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True,
                              env=dict(env), timeout=SQUEUE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("squeue did not answer job=%s error=%s", job_id, exc)
        return None
    if done.returncode != 0:
        log.warning("squeue failed job=%s status=%d stderr=%s", job_id, done.returncode, done.stderr.strip()[:200])
        return None
    return parse_slurm_time(done.stdout)


def allocation_end(env: Mapping[str, str]) -> float | None:
    """The allocation's end in epoch seconds, from the batch system's environment ``env`` (see the module); None
    when there is no batch system or no limit."""
    for name in ("SLURM_JOB_END_TIME", "COBALT_ENDTIME"):
        end = _epoch(env, name)
        if end is not None:
            return end
    job_id = env.get("SLURM_JOB_ID", "").strip()
    if job_id.isdigit():
        return _squeue_end(env, job_id)
    return None
