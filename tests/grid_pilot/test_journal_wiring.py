"""How the grid pilot journals a job it takes (:class:`pilotlib.workflow.Retriever`): what reaches the file."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from pilotlib.job import Job, job_to_wire, parse_job
from pilotlib.journal import JOURNAL_DIR, Journal, take_abandoned
from pilotlib.panda.base import JobRequest
from pilotlib.stop import Stop
from pilotlib.workflow import Retriever
from tests.pipeline.fakes import make_job

USER_SECRET = "user-secret-value-5b1e"
PILOT_SECRET = "pilot-secret-value-9c0d"
PROXY_KEY = "proxy-key-value-77aa"
SECRET_FIELDS = ("secrets", "pilotSecrets", "pandaProxySecretKey")


def _job_with_secrets() -> Job:
    """A job carrying the credential fields panda-server puts in a definition (``pandaserver/api/v1/pilot_api.py``:
    ``secrets``, ``pilotSecrets``; ``pandaserver/jobdispatcher/Protocol.py``: ``pandaProxySecretKey``)."""
    definition = {**job_to_wire(make_job(7300)), "secrets": json.dumps({"MY_TOKEN": USER_SECRET}),
                  "pilotSecrets": json.dumps({"pilot": {"key": PILOT_SECRET}}), "pandaProxySecretKey": PROXY_KEY}
    return parse_job(definition)


class _Source:
    def __init__(self, job: Job) -> None:
        self.left = [job]

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        return [self.left.pop()] if self.left else []


def test_a_journalled_job_keeps_no_credentials_on_disk(tmp_path: Path) -> None:
    """The job's journal line holds none of its credential values (``secrets``, ``pilotSecrets``,
    ``pandaProxySecretKey``) and no field named as one; the entry a successor recovers still parses into the same job
    (PandaID, files, payload, other fields), only without those three fields."""
    job = _job_with_secrets()
    journal = Journal(tmp_path / "state", "grid-pilot-1")
    retriever = Retriever(_Source(job), JobRequest("S", "Q"), tmp_path / "work", time.monotonic(),
                          journal=journal)
    run = retriever(Stop())
    assert run is not None and run.job.extra["pilotSecrets"]  # the running job keeps them
    journal.close()  # the job is open: the journal stays, as after a lost pilot

    (path,) = (tmp_path / "state" / JOURNAL_DIR).iterdir()
    content = path.read_text()
    for value in (USER_SECRET, PILOT_SECRET, PROXY_KEY, *(f'"{field}"' for field in SECRET_FIELDS)):
        assert value not in content
    (abandoned,) = take_abandoned(tmp_path / "state")
    try:
        (entry,) = abandoned.entries
        recovered = parse_job(entry.definition)
    finally:
        abandoned.release()
    without = {key: value for key, value in job.extra.items() if key not in SECRET_FIELDS}
    assert recovered == attrs.evolve(job, extra=without)  # the same job, files and payload, less its credentials
