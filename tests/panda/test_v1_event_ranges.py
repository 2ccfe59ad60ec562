"""The v1 dialect's ``event/acquire_event_ranges`` request, checked before it is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pilotlib.errors import ErrorCode, MissingFieldError
from pilotlib.job import parse_job
from pilotlib.panda._v1 import V1Dialect


class _Recorder:
    """A transport that records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Mapping[str, Any] | None]] = []

    def send(self, call: str, path: str, *, method: str = "POST", json_body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             compress: bool = False, max_attempts: int | None = None, check: object = None) -> str:
        self.sent.append((path, json_body))
        return '{"success": true, "message": "", "data": []}'


def test_job_without_jobset_fails_locally_with_a_clear_error() -> None:
    """panda-server 1.0.4 declares ``acquire_event_ranges(req, job_id: int, jobset_id: int, ...)``
    (``pandaserver/api/v1/event_api.py`` lines 109-113) and its ``request_validation`` answers a type error for
    ``jobset_id=None``; a job without ``jobsetID`` fails before anything is sent, naming the field and the job."""
    recorder = _Recorder()
    job = parse_job({"PandaID": "4001", "taskID": "4242", "jobsetID": "NULL"})
    with pytest.raises(MissingFieldError) as raised:
        V1Dialect().get_event_ranges(recorder, job, 4)  # type: ignore[arg-type]
    assert raised.value.field == "jobsetID" and raised.value.code is ErrorCode.NOTDEFINED
    assert "jobset_id" in str(raised.value) and "4001" in str(raised.value)
    assert recorder.sent == []


def test_job_with_jobset_sends_it_as_an_integer() -> None:
    """With a ``jobsetID`` the request carries ``jobset_id`` as an int, as the handler declares it."""
    recorder = _Recorder()
    V1Dialect().get_event_ranges(recorder, parse_job({"PandaID": "4001", "jobsetID": "77"}), 4)  # type: ignore[arg-type]
    assert recorder.sent == [("api/v1/event/acquire_event_ranges",
                              {"job_id": 4001, "jobset_id": 77, "task_id": None, "n_ranges": 4})]
