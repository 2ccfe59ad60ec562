"""The time form of the PanDA server (private).

panda-server parses ``startTime`` and ``endTime`` with ``time.strptime(value, "%Y-%m-%d %H:%M:%S")`` (legacy
``updateJob`` and v1 ``pilot/update_job``); Harvester forwards the values of ``worker_attributes.json`` unchanged.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["SERVER_TIME_FORMAT", "TIME_FIELDS", "server_time", "update_field"]

SERVER_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The update fields that carry a time.
TIME_FIELDS = ("startTime", "endTime")


def server_time(epoch: float) -> str:
    """``epoch`` (seconds) as the UTC text the PanDA server parses."""
    return time.strftime(SERVER_TIME_FORMAT, time.gmtime(epoch))


def update_field(key: str, value: Any) -> Any:
    """An update field's value as the server takes it: an epoch in a time field becomes :func:`server_time`."""
    epoch = key in TIME_FIELDS and isinstance(value, int | float) and not isinstance(value, bool)
    return server_time(value) if epoch else value
