"""Smoke test of the job model (the full suite lives in test_job.py)."""

import json
from pathlib import Path

from pilotlib.job import job_to_wire, load_job_definitions


def test_example_production_job_round_trips(examples_dir: Path) -> None:
    """The shipped production job parses and serialises back to the same dictionary."""
    raw = (examples_dir / "jobs" / "production.json").read_text()
    (job,) = load_job_definitions(raw)
    assert job.panda_id == 6100000001
    assert [f.lfn for f in job.inputs] == ["EVNT.36000001._000001.pool.root.1"]
    assert job.log is not None and job.log.lfn == "log.31000001._000001.job.log.tgz.1"
    assert job_to_wire(job) == json.loads(raw)
