"""The output file info of the final job update (the ``xml`` field), built from stage-out results.

PanDAWMS/pilot3 ``pilot/control/data.py`` (``generate_fileinfo``) sends, for every transferred output and log file,
``{lfn: {"guid", "fsize", "adler32" (or "md5sum"), "surl", "endpoint"}}`` (the endpoint always, ATLASPANDA-604), as
JSON (``pilot/control/job.py``: ``xml=dumps(job.fileinfo)``). Failed transfers are left out. The ``surl`` is
redacted (:func:`~pilotlib._redact.redact_url`): a token or a signature in a storage URL never reaches the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pilotlib._redact import redact_url
from pilotlib.errors import Direction
from pilotlib.transfer.base import TransferResult

__all__ = ["output_file_info", "output_file_info_json"]

FileInfo = dict[str, dict[str, str | int | None]]


def output_file_info(results: Iterable[TransferResult], checksum_type: str = "adler32") -> FileInfo:
    """The file info of the successful stage-out results, keyed by LFN.

    Args:
        results: stage-out results (outputs and the log); stage-in and failed results are ignored.
        checksum_type: ``adler32`` (key ``adler32``) or ``md5`` (key ``md5sum``, as pilot3 names it).
    """
    key = "adler32" if checksum_type == "adler32" else "md5sum"
    info: FileInfo = {}
    for result in results:
        if not result.ok or result.direction is not Direction.STAGE_OUT:
            continue
        value = result.checksum[1] if result.checksum and result.checksum[0] == checksum_type else None
        info[result.lfn] = {
            "guid": result.guid,
            "fsize": result.size,
            key: value,
            "surl": redact_url(result.url),
            "endpoint": result.ddmendpoint,
        }
    return info


def output_file_info_json(results: Iterable[TransferResult], checksum_type: str = "adler32") -> str:
    """:func:`output_file_info` as the JSON text the ``xml`` field carries."""
    return json.dumps(output_file_info(results, checksum_type), sort_keys=True)
