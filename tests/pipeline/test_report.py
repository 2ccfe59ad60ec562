"""Update fields: starting, heartbeat and final updates, pilotTiming, output file info."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from pilotlib.errors import Direction, ErrorCode, TransferError
from pilotlib.pipeline import JobRun, PayloadSummary
from pilotlib.report import PilotIdentity, final_update, heartbeat_update, pilot_timing, starting_update
from pilotlib.transfer.base import TransferResult

from .fakes import make_job

IDENTITY = PilotIdentity(site_name="SITE", node="wn1", pilot_id="pid-1", batch_id="batch-9")


def _run(tmp_path: Path) -> JobRun:
    return JobRun(make_job(6001), tmp_path, started=1700000000.0)


def test_pilot_timing_has_six_whole_second_fields_in_order() -> None:
    """pilotTiming is getjob|stagein|payload|stageout|initial_setup|setup, rounded, missing ones 0."""
    assert pilot_timing({"getjob": 0.4, "stagein": 1.6, "payload": 2.0, "setup": 0.2}) == "0|2|2|0|0|0"


def test_starting_and_heartbeat_carry_identity_and_usage(tmp_path: Path) -> None:
    """starting/running updates carry jobId, siteName, node, ids, startTime; the heartbeat adds the usage."""
    start = starting_update(_run(tmp_path), IDENTITY)
    assert start.state == "starting" and not start.final
    assert start.fields["jobId"] == 6001 and start.fields["siteName"] == "SITE" and start.fields["node"] == "wn1"
    assert start.fields["pilotID"] == "pid-1" and start.fields["batchID"] == "batch-9"
    assert "schedulerID" not in start.fields
    assert start.fields["startTime"] == 1700000000.0
    beat = heartbeat_update(_run(tmp_path), IDENTITY, {"cpuConsumptionTime": 12, "maxPSS": 99})
    assert beat.state == "running" and beat.fields["cpuConsumptionTime"] == 12 and beat.fields["maxPSS"] == 99


def test_final_update_of_a_good_job(tmp_path: Path) -> None:
    """The final update of a good job: finished, code 0, metaData, xml with the outputs and the log."""
    out = TransferResult("out.dat", Direction.STAGE_OUT, "mv", "root://h//d/out.dat", "out.dat", 3,
                         ("adler32", "024d0127"), ddmendpoint="LOCAL", guid="g1")
    logr = attrs.evolve(out, lfn="log.tgz", url="root://h//d/log.tgz", guid="g2", size=10)
    payload = PayloadSummary(0, 1.0, 3.0, {"cpuConsumptionTime": 2}, {"exitCode": 0}, exe_error_code=0)
    run = attrs.evolve(_run(tmp_path), payload=payload, stage_out=(out,), log_result=logr, timings={"payload": 2.0})
    update = final_update(run, IDENTITY)
    assert update.final and update.state == "finished"
    f = update.fields
    assert f["pilotErrorCode"] == 0 and f["transExitCode"] == 0 and f["cpuConsumptionTime"] == 2
    assert json.loads(f["metaData"]) == {"exitCode": 0}
    assert json.loads(f["xml"]) == {
        "out.dat": {"guid": "g1", "fsize": 3, "surl": "root://h//d/out.dat", "adler32": "024d0127",
                    "endpoint": "LOCAL"},
        "log.tgz": {"guid": "g2", "fsize": 10, "surl": "root://h//d/log.tgz", "adler32": "024d0127",
                    "endpoint": "LOCAL"},
    }
    assert f["pilotTiming"] == "0|0|2|0|0|0" and "pilotErrorDiag" not in f


def test_final_update_of_a_failed_job_has_code_diag_and_log_extract(tmp_path: Path) -> None:
    """A failed job's final update: failed, pilotErrorCode and pilotErrorDiag (500 chars), pilotLog (1024)."""
    run = _run(tmp_path).failed(TransferError("x" * 800, Direction.STAGE_OUT))
    update = final_update(run, IDENTITY, pilot_log="L" * 3000)
    assert update.state == "failed"
    assert update.fields["pilotErrorCode"] == ErrorCode.STAGEOUTFAILED
    assert len(update.fields["pilotErrorDiag"]) == 500
    assert update.fields["pilotLog"] == "L" * 1024
    assert json.loads(update.fields["xml"]) == {}
