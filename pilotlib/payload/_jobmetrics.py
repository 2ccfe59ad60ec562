"""The ``jobMetrics`` string sent with job updates (private: import from :mod:`pilotlib.payload`).

Facts: the pilot sends ``name=value`` entries separated by spaces, leaving out empty values
(pilot3 ``pilot/util/jobmetrics.py`` ``get_job_metrics_entry``; names such as ``coreCount``, ``actualCoreCount``,
``nEvents``, ``nEventsW``, ``dbTime``, ``dbData``, ``workDirSize`` in ``pilot/user/atlas/jobmetrics.py``); the server
keeps 500 characters (panda-server ``pandaserver/api/v1/pilot_api.py``) and splits the string on whitespace into
``name=value`` items (``pandaserver/taskbuffer/JobSpec.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["JOB_METRICS_LIMIT", "build_job_metrics"]

JOB_METRICS_LIMIT = 500


def _is_token(text: str) -> bool:
    return bool(text) and not any(c.isspace() for c in text)


def build_job_metrics(entries: Mapping[str, object], limit: int = JOB_METRICS_LIMIT) -> str:
    """Format ``jobMetrics``: ``name=value`` entries joined by single spaces, in the mapping's order.

    Entries whose value is ``None`` or an empty string are left out; booleans are written ``True``/``False``;
    floats with up to 2 decimals. Entries that would push the string beyond ``limit`` characters are dropped
    whole (never cut in the middle).

    Args:
        entries: metric name to value, e.g. ``{"coreCount": 8, "nEvents": 100, "workDirSize": 12345}``.
        limit: maximum length (the server keeps 500 characters).

    Returns:
        The string, e.g. ``"coreCount=8 nEvents=100 workDirSize=12345"``.

    Raises:
        ValueError: a name is empty or contains ``=`` or whitespace, or a value contains whitespace.
    """
    parts: list[str] = []
    length = -1
    for name, value in entries.items():
        if value is None or value == "":
            continue
        if not _is_token(name) or "=" in name:
            raise ValueError(f"bad jobMetrics name {name!r}")
        text = f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        if not _is_token(text):
            raise ValueError(f"bad jobMetrics value for {name}: {text!r}")
        entry = f"{name}={text}"
        if length + 1 + len(entry) > limit:
            continue
        parts.append(entry)
        length += 1 + len(entry)
    return " ".join(parts)
