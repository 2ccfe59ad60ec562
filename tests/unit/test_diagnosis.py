"""Payload diagnosis: exit status, signals, job report, error report, core dumps and stderr patterns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotlib.errors import ErrorCode
from pilotlib.payload import Diagnosis, PayloadOutcome, diagnose

OK_REPORT = json.dumps({"exitCode": 0, "exitMsg": "OK", "reportVersion": "2.0.0"})


def _report(code: int, msg: str, errors: list[str] | None = None) -> str:
    document: dict[str, object] = {"exitCode": code, "exitMsg": msg}
    if errors is not None:
        details = {"ERROR": [{"message": m, "count": 1, "firstLine": 1} for m in errors]}
        document["executor"] = [{"name": "EVNTtoHITS", "logfileReport": {"details": details}}]
    return json.dumps(document)


def test_success_is_no_error() -> None:
    """Exit status 0 with an OK job report: no pilot error, all fields zero or empty."""
    result = diagnose(PayloadOutcome(returncode=0, job_report=OK_REPORT))
    assert result == Diagnosis(pilot_error_code=None)
    assert not result.failed
    assert result.update_fields() == {
        "pilotErrorCode": 0, "pilotErrorDiag": "", "transExitCode": 0, "exeErrorCode": 0, "exeErrorDiag": "",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("signum", "code"),
    [
        (signal.SIGTERM, ErrorCode.SIGTERM),
        (signal.SIGINT, ErrorCode.SIGINT),
        (signal.SIGQUIT, ErrorCode.SIGQUIT),
        (signal.SIGXCPU, ErrorCode.SIGXCPU),
        (signal.SIGBUS, ErrorCode.SIGBUS),
        (signal.SIGUSR1, ErrorCode.SIGUSR1),
        (signal.SIGKILL, ErrorCode.KILLSIGNAL),
        (signal.SIGHUP, ErrorCode.KILLSIGNAL),
        (signal.SIGSEGV, ErrorCode.PAYLOADSIGSEGV),
    ],
)
def test_death_by_signal(signum: int, code: ErrorCode) -> None:
    """A payload killed by a signal gets that signal's code (SIGSEGV: the payload crashed, 1328)."""
    result = diagnose(PayloadOutcome(returncode=-signum))
    assert result.pilot_error_code is code
    assert result.pilot_error_diag == f"{code.message}: payload killed by {signal.Signals(signum).name} ({signum})"
    assert result.trans_exit_code == 0


def test_sigkill_with_oom_killer_message_is_out_of_memory() -> None:
    """SIGKILL plus the kernel's OOM message in stderr means the payload ran out of memory (1212)."""
    stderr = "step 1\nMemory cgroup out of memory: Killed process 4242 (athena.py)\n"
    result = diagnose(PayloadOutcome(returncode=-9, stderr_tail=stderr))
    assert result.pilot_error_code is ErrorCode.PAYLOADOUTOFMEMORY
    assert result.pilot_error_diag.endswith("(9): Memory cgroup out of memory: Killed process 4242 (athena.py)")


def test_exit_137_with_oom_message_is_out_of_memory() -> None:
    """A shell's 137 (128+SIGKILL) with an out-of-memory message is 1212; transExitCode keeps 137."""
    result = diagnose(PayloadOutcome(returncode=137, stderr_tail="Killed\nOut of memory: Killed process 17\n"))
    assert result.pilot_error_code is ErrorCode.PAYLOADOUTOFMEMORY
    assert result.trans_exit_code == 137


def test_exit_137_without_evidence_is_an_execution_failure() -> None:
    """137 alone is not proof of memory trouble: a plain payload execution failure."""
    result = diagnose(PayloadOutcome(returncode=137, job_report_required=False))
    assert result.pilot_error_code is ErrorCode.PAYLOADEXECUTIONFAILURE
    assert result.pilot_error_diag == f"{ErrorCode.PAYLOADEXECUTIONFAILURE.message}: exit status 137"


def test_bad_alloc_in_stdout_with_failure_is_out_of_memory() -> None:
    """std::bad_alloc in the stdout of a failed payload is 1212."""
    result = diagnose(PayloadOutcome(returncode=65, stdout_tail="terminate called: std::bad_alloc\n"))
    assert result.pilot_error_code is ErrorCode.PAYLOADOUTOFMEMORY


CONTAINER_CASES = [
    ("FATAL:   container creation failed: mount /cvmfs->/cvmfs error: Not mounting requested bind point",
     ErrorCode.SINGULARITYBINDPOINTFAILURE),
    ("FATAL:   container creation failed: failed to find loop device: no more available loop devices",
     ErrorCode.SINGULARITYNOLOOPDEVICES),
    ("FATAL:   container creation failed: failed to mount image: squashfuse failed",
     ErrorCode.SINGULARITYIMAGEMOUNTFAILURE),
    ("FATAL:   Failed invoking the NEWUSER namespace runtime: Could not write info to setgroups",
     ErrorCode.SINGULARITYNEWUSERNAMESPACE),
    ("bwrap: Creating new namespace failed: Operation not permitted", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("bwrap: No permissions to creating new namespace, likely because the kernel does not allow",
     ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("ERROR  : Failed to create user namespace: user namespace disabled", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("FATAL:   while creating cgroup: resource temporarily unavailable", ErrorCode.SINGULARITYRESOURCEUNAVAILABLE),
    ("FATAL:   could not open image /cvmfs/unpacked.cern.ch/x.sif: failed to retrieve path", ErrorCode.IMAGENOTFOUND),
    ("/bin/sh: singularity: command not found", ErrorCode.SINGULARITYNOTINSTALLED),
    ("bash: apptainer: command not found", ErrorCode.APPTAINERNOTINSTALLED),
    ("docker: Error response from daemon: OCI runtime create failed: unable to start container",
     ErrorCode.SINGULARITYGENERALFAILURE),
    ("runc[1234]: container_linux.go:380: starting container process caused: exec format error",
     ErrorCode.SINGULARITYGENERALFAILURE),
    ("bwrap: execvp /bin/bash: No such file or directory", ErrorCode.SINGULARITYGENERALFAILURE),
]  # fmt: skip


@pytest.mark.parametrize(("line", "code"), CONTAINER_CASES)
@pytest.mark.parametrize("returncode", [0, 255])
def test_container_runtime_errors(line: str, code: ErrorCode, returncode: int) -> None:
    """Container runtime messages in stderr give the container codes, also when the exit status is 0."""
    result = diagnose(PayloadOutcome(returncode=returncode, job_report=OK_REPORT, stderr_tail=f"INFO x\n{line}\n"))
    assert result.pilot_error_code is code
    assert result.pilot_error_diag == f"{code.message}: {line}"


def test_payload_fatal_lines_are_not_container_errors() -> None:
    """An Athena ``FATAL`` message (no colon and spaces as Apptainer writes them) is no container failure."""
    stderr = "AthenaEventLoopMgr   FATAL  Cannot open file\n"
    result = diagnose(PayloadOutcome(returncode=0, job_report=OK_REPORT, stderr_tail=stderr))
    assert result.pilot_error_code is None


def test_error_report_sets_exe_fields() -> None:
    """The transform's payload_error_report.json gives 1305 and the transform's own code and message."""
    error_report = json.dumps({"error_code": 85, "error_diag": "Not enough events in input file"})
    result = diagnose(PayloadOutcome(returncode=85, job_report=_report(85, "bad input"), error_report=error_report))
    assert result.pilot_error_code is ErrorCode.PAYLOADEXECUTIONFAILURE
    assert (result.exe_error_code, result.exe_error_diag) == (85, "Not enough events in input file")
    assert result.trans_exit_code == 85
    assert result.pilot_error_diag.endswith("transform error 85: Not enough events in input file")


def test_error_report_with_zero_code_is_ignored() -> None:
    """An error report whose error_code is 0 changes nothing."""
    error_report = json.dumps({"error_code": 0, "error_diag": ""})
    assert diagnose(PayloadOutcome(0, job_report=OK_REPORT, error_report=error_report)).pilot_error_code is None


def test_job_report_exit_code_and_message() -> None:
    """exitCode becomes transExitCode; an exitMsg other than OK becomes exeErrorCode/exeErrorDiag."""
    stderr = "INFO starting\nERROR: Athena crashed in event 17\n"
    result = diagnose(PayloadOutcome(65, job_report=_report(65, "Non-zero return code from EVNTtoHITS (8)"),
                                     stderr_tail=stderr))  # fmt: skip
    assert result.trans_exit_code == 65
    assert (result.exe_error_code, result.exe_error_diag) == (65, "Non-zero return code from EVNTtoHITS (8)")
    assert result.pilot_error_code is ErrorCode.PAYLOADEXECUTIONFAILURE
    assert (
        result.pilot_error_diag
        == f"{ErrorCode.PAYLOADEXECUTIONFAILURE.message}: exit status 65: Athena crashed in event 17"
    )


def test_job_report_sigsegv_message() -> None:
    """``got a SIGSEGV signal`` in exitMsg is a payload segmentation fault (1328)."""
    msg = "Transform received got a SIGSEGV signal in EVNTtoHITS"
    result = diagnose(PayloadOutcome(68, job_report=_report(68, msg)))
    assert result.pilot_error_code is ErrorCode.PAYLOADSIGSEGV
    assert result.pilot_error_diag.endswith(f"{msg} (job report)")


def test_job_report_bad_alloc() -> None:
    """A bad_alloc among the executor's ERROR messages of a failed job is 1223."""
    report = _report(65, "failed", ["G4 exception", "std::bad_alloc thrown in Geant4"])
    result = diagnose(PayloadOutcome(65, job_report=report))
    assert result.pilot_error_code is ErrorCode.BADALLOC
    assert result.pilot_error_diag == f"{ErrorCode.BADALLOC.message}: std::bad_alloc thrown in Geant4"


@pytest.mark.parametrize(
    ("pid", "cores", "found"),
    [(None, ["core"], True), (None, ["core.777"], True), (42, ["core.42"], True), (42, ["core"], True),
     (42, ["core.777"], False), (None, [], False)],
)  # fmt: skip
def test_core_dump(pid: int | None, cores: list[str], found: bool) -> None:
    """A core file of the payload is 1355; another process's core file is not the payload's."""
    result = diagnose(PayloadOutcome(0, job_report=OK_REPORT, core_files=tuple(cores), payload_pid=pid))
    assert result.pilot_error_code is (ErrorCode.COREDUMP if found else None)
    if found:
        assert result.pilot_error_diag == f"{ErrorCode.COREDUMP.message}: core dump found: {cores[0]}"


def test_no_space_left() -> None:
    """``No space left on device`` in the stderr of a failed payload is 1098."""
    result = diagnose(
        PayloadOutcome(1, stderr_tail="write error: No space left on device\n", job_report_required=False)
    )
    assert result.pilot_error_code is ErrorCode.NOLOCALSPACE


def test_exit_251_is_unknown_transform_failure() -> None:
    """Exit status 251 is the transform's unknown failure (1315)."""
    assert diagnose(PayloadOutcome(251)).pilot_error_code is ErrorCode.UNKNOWNTRFFAILURE


def test_non_zero_exit_diagnostics_prefer_critical_and_command_not_found() -> None:
    """A CRITICAL stdout line, then ``command not found``, then the first ERROR line of stderr explain the exit."""
    crit = diagnose(PayloadOutcome(2, stdout_tail="x\nCRITICAL no input\n", stderr_tail="ERROR: other"))
    assert crit.pilot_error_diag.endswith("exit status 2: CRITICAL no input")
    missing = diagnose(PayloadOutcome(127, stderr_tail="sh: runGen.py: command not found\n"))
    assert missing.pilot_error_diag.endswith("exit status 127: sh: runGen.py: command not found")


def test_exit_zero_but_report_says_failure() -> None:
    """Exit status 0 while the job report's exitCode is not 0: an unidentified payload failure (1220)."""
    result = diagnose(PayloadOutcome(0, job_report=_report(3, "partial")))
    assert result.pilot_error_code is ErrorCode.UNKNOWNPAYLOADFAILURE
    assert result.trans_exit_code == 3 and result.failed


def test_missing_job_report_when_required() -> None:
    """No jobReport.json after a clean exit is 1187; not required, it is fine."""
    result = diagnose(PayloadOutcome(0))
    assert result.pilot_error_code is ErrorCode.NOPAYLOADMETADATA
    assert result.pilot_error_diag == f"{ErrorCode.NOPAYLOADMETADATA.message}: the payload wrote no jobReport.json"
    assert diagnose(PayloadOutcome(0, job_report_required=False)).pilot_error_code is None


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"text"', "", "{" * 100000])
def test_malformed_job_report_is_a_diagnosis(text: str) -> None:
    """A malformed job report never raises: after a clean exit it is 1187 naming the problem."""
    result = diagnose(PayloadOutcome(0, job_report=text))
    assert result.pilot_error_code is ErrorCode.NOPAYLOADMETADATA
    assert "jobReport.json is not" in result.pilot_error_diag


def test_non_numeric_exit_code_in_report_falls_back_to_exit_status() -> None:
    """A job report exitCode that is not a number is ignored: transExitCode is the process status."""
    result = diagnose(PayloadOutcome(0, job_report=json.dumps({"exitCode": "bad", "exitMsg": "OK"})))
    assert result.pilot_error_code is None and result.trans_exit_code == 0


def test_diagnostics_are_cut_to_500_characters() -> None:
    """pilotErrorDiag and exeErrorDiag are cut to 500 characters as the server stores them."""
    long = "x" * 2000
    result = diagnose(PayloadOutcome(70, job_report=_report(70, long), stderr_tail=f"ERROR: {long}"))
    assert len(result.pilot_error_diag) == 500 and len(result.exe_error_diag) == 500
    assert result.exe_error_diag == long[:500]


@settings(max_examples=200, deadline=None)
@given(
    returncode=st.integers(-64, 255),
    job_report=st.none() | st.text() | st.builds(json.dumps, st.dictionaries(st.text(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10))),
    error_report=st.none() | st.text() | st.builds(json.dumps, st.fixed_dictionaries(
        {"error_code": st.integers() | st.text() | st.none(), "error_diag": st.text() | st.integers()})),
    stderr=st.text(),
    stdout=st.text(),
    cores=st.lists(st.sampled_from(["core", "core.1", "core.99", "corefile"])),
    pid=st.none() | st.integers(1, 100),
)  # fmt: skip
def test_diagnose_never_raises(
    returncode: int, job_report: str | None, error_report: str | None, stderr: str, stdout: str,
    cores: list[str], pid: int | None,
) -> None:  # fmt: skip
    """Any outcome, however malformed, gives a consistent diagnosis and never an exception."""
    result = diagnose(PayloadOutcome(returncode, job_report, error_report, stderr, stdout, tuple(cores), pid))
    assert result.pilot_error_code is None or isinstance(result.pilot_error_code, ErrorCode)
    assert len(result.pilot_error_diag) <= 500 and len(result.exe_error_diag) <= 500
    if returncode != 0:
        assert result.failed


# ------------------------------------------------------------------------------------------ real payload processes
def _run(workdir: Path, script: str) -> subprocess.CompletedProcess[bytes]:
    with (workdir / "payload.stdout").open("wb") as out, (workdir / "payload.stderr").open("wb") as err:
        return subprocess.run(
            [sys.executable, "-c", script], check=False, cwd=workdir, stdout=out, stderr=err, timeout=60
        )


def test_real_payload_killed_by_its_own_signal(tmp_path: Path) -> None:
    """A real process that dies of SIGTERM is diagnosed from its work directory as 1201."""
    proc = _run(tmp_path, "import os, signal; print('hello'); os.kill(os.getpid(), signal.SIGTERM)")
    outcome = PayloadOutcome.from_workdir(tmp_path, proc.returncode, job_report_required=False)
    assert outcome.signal == signal.SIGTERM and outcome.stdout_tail == "hello\n"
    assert diagnose(outcome).pilot_error_code is ErrorCode.SIGTERM


def test_real_payload_failure_with_job_report(tmp_path: Path) -> None:
    """A real transform writing jobReport.json and an error to stderr, then exiting 65, is read from disk."""
    script = (
        "import json, sys\n"
        "report = {'exitCode': 65, 'exitMsg': 'Non-zero return code from EVNTtoHITS (8)'}\n"
        "json.dump(report, open('jobReport.json', 'w'))\n"
        "sys.stderr.write('ERROR: Geant4 aborted\\n')\n"
        "sys.exit(65)\n"
    )
    proc = _run(tmp_path, script)
    (tmp_path / "core.31337").write_bytes(b"\0")
    outcome = PayloadOutcome.from_workdir(tmp_path, proc.returncode, payload_pid=os.getpid())
    assert outcome.core_files == ("core.31337",)
    result = diagnose(outcome)
    assert result.pilot_error_code is ErrorCode.PAYLOADEXECUTIONFAILURE
    assert result.pilot_error_diag.endswith("exit status 65: Geant4 aborted")
    assert (result.trans_exit_code, result.exe_error_code) == (65, 65)
    assert result.exe_error_diag == "Non-zero return code from EVNTtoHITS (8)"


def test_from_workdir_reads_only_the_tail_of_a_large_stderr(tmp_path: Path) -> None:
    """A stderr of several MB is read from its end (64 KiB), so the last error line is found."""
    (tmp_path / "payload.stderr").write_text("noise line\n" * 400_000 + "ERROR: the real cause\n")
    outcome = PayloadOutcome.from_workdir(tmp_path, 1, job_report_required=False)
    assert len(outcome.stderr_tail.encode()) == 64 * 1024
    assert outcome.job_report is None and outcome.error_report is None and outcome.core_files == ()
    assert diagnose(outcome).pilot_error_diag.endswith("exit status 1: the real cause")
