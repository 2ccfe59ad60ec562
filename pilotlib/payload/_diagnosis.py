"""Payload diagnosis: from how the payload ended to the error fields of the final ``updateJob``.

:func:`diagnose` is a pure function: it takes a :class:`PayloadOutcome` (the exit status or the signal, the texts of
``jobReport.json`` and of the transform's error report, the tails of stderr and stdout, the core files found) and
returns a :class:`Diagnosis` with ``pilotErrorCode``, ``pilotErrorDiag``, ``transExitCode``, ``exeErrorCode`` and
``exeErrorDiag``. It never raises on bad input: a malformed job report is a finding, not an exception.
:meth:`PayloadOutcome.from_workdir` collects an outcome from a work directory.

Facts relied on (PanDAWMS/pilot3, read for behaviour, not copied):

- ``pilot/control/payload.py`` ``perform_initial_payload_error_analysis``: the transform's error report
  ``payload_error_report.json`` (``error_code``, ``error_diag``) sets ``exeErrorCode``/``exeErrorDiag`` and
  PAYLOADEXECUTIONFAILURE; container runtime messages in stderr override even exit status 0; a non-zero exit gives
  PAYLOADEXECUTIONFAILURE with the first ``ERROR:``/``Error:``/``error:`` line of stderr (or a ``CRITICAL`` stdout
  line) as diagnostics; a core file ``core.<payload pid>`` gives COREDUMP;
- ``pilot/common/errorcodes.py`` ``resolve_transform_error``: the container runtime messages and their codes, exit
  status 251 is UNKNOWNTRFFAILURE;
- ``pilot/user/atlas/diagnose.py``: ``exitCode``/``exitMsg`` of ``jobReport.json`` (``exitMsg`` other than ``OK``
  becomes ``exeErrorDiag``), ``got a SIGSEGV signal`` is PAYLOADSIGSEGV, ``bad_alloc`` in the report's executor
  errors is BADALLOC, out-of-memory messages are PAYLOADOUTOFMEMORY, ``No space left on device`` is NOLOCALSPACE,
  a non-zero job report exit code with exit status 0 is UNKNOWNPAYLOADFAILURE; out-of-space is diagnosed with
  ``priority=True`` (it wins over the codes found before) and the local space is checked again
  (``get_local_disk_space``): here a failed payload whose work directory's file system is full (``statvfs`` after
  the payload ended, :func:`pilotlib.space.disk_is_full`) is NOLOCALSPACE even when it could write no stderr;
- ``pilot/util/default.cfg``: the file names ``jobReport.json``, ``payload_error_report.json``, ``payload.stdout``,
  ``payload.stderr``;
- PanDAWMS/panda-server ``pandaserver/api/v1/pilot_api.py``: diagnostics are stored cut to 500 characters.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import attrs

from pilotlib.errors import ErrorCode, error_for_signal, truncate_diag
from pilotlib.space import disk_is_full, free_bytes

__all__ = [
    "ERROR_REPORT_NAME",
    "JOB_REPORT_NAME",
    "STDERR_NAME",
    "STDOUT_NAME",
    "Diagnosis",
    "PayloadOutcome",
    "diagnose",
]

JOB_REPORT_NAME = "jobReport.json"
ERROR_REPORT_NAME = "payload_error_report.json"
STDOUT_NAME = "payload.stdout"
STDERR_NAME = "payload.stderr"
_TAIL_BYTES = 64 * 1024
_REPORT_MAX_BYTES = 64 * 1024 * 1024


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class PayloadOutcome:
    """How the payload ended, as the runner saw it.

    Attributes:
        returncode: as :mod:`subprocess` gives it: the exit status, or ``-N`` when signal N killed the payload.
        job_report: the text of ``jobReport.json``; ``None`` when the payload wrote none.
        error_report: the text of the transform's ``payload_error_report.json``; ``None`` when absent.
        stderr_tail: the end of the payload's stderr.
        stdout_tail: the end of the payload's stdout.
        core_files: names of the core files in the work directory (``core``, ``core.<pid>``).
        payload_pid: the payload's process id; when given, only ``core`` and ``core.<pid>`` count as its core dump.
        job_report_required: whether a missing job report is an error (production transforms write one).
        free_bytes: bytes free in the work directory's file system once the payload ended (None: not known).
    """

    returncode: int
    job_report: str | None = None
    error_report: str | None = None
    stderr_tail: str = ""
    stdout_tail: str = ""
    core_files: tuple[str, ...] = attrs.field(default=(), converter=_names)
    payload_pid: int | None = None
    job_report_required: bool = True
    free_bytes: int | None = None

    @property
    def signal(self) -> int | None:
        """The number of the signal that killed the payload, or ``None`` when it exited."""
        return -self.returncode if self.returncode < 0 else None

    @classmethod
    def from_workdir(
        cls,
        workdir: Path,
        returncode: int,
        *,
        payload_pid: int | None = None,
        job_report_required: bool = True,
        stdout_name: str = STDOUT_NAME,
        stderr_name: str = STDERR_NAME,
    ) -> PayloadOutcome:
        """Collect the outcome from the payload's work directory (files that cannot be read count as absent) and
        the free space of its file system."""
        cores = tuple(sorted(p.name for p in workdir.glob("core*") if re.fullmatch(r"core(\.\d+)?", p.name)))
        return cls(
            returncode=returncode,
            job_report=_read_text(workdir / JOB_REPORT_NAME, _REPORT_MAX_BYTES),
            error_report=_read_text(workdir / ERROR_REPORT_NAME, _REPORT_MAX_BYTES),
            stderr_tail=_read_tail(workdir / stderr_name),
            stdout_tail=_read_tail(workdir / stdout_name),
            core_files=cores,
            payload_pid=payload_pid,
            job_report_required=job_report_required,
            free_bytes=_free_bytes(workdir),
        )


def _free_bytes(workdir: Path) -> int | None:
    try:
        return free_bytes(workdir)
    except OSError:
        return None


def _read_text(path: Path, limit: int) -> str | None:
    try:
        with path.open("rb") as stream:
            return stream.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return None


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - _TAIL_BYTES))
            return stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


@attrs.frozen
class Diagnosis:
    """The payload's outcome as the server expects it in the final update.

    Attributes:
        pilot_error_code: the pilot's error code, ``None`` when the payload succeeded.
        trans_exit_code: ``transExitCode``: the job report's ``exitCode``, else the payload's exit status.
        exe_error_code: ``exeErrorCode``: the transform's own error code (0 when none).
        exe_error_diag: ``exeErrorDiag``, cut to 500 characters.
        pilot_error_diag: ``pilotErrorDiag``, cut to 500 characters.
    """

    pilot_error_code: ErrorCode | None
    trans_exit_code: int = 0
    exe_error_code: int = 0
    exe_error_diag: str = ""
    pilot_error_diag: str = ""

    @property
    def failed(self) -> bool:
        """True when the job must be reported failed."""
        return self.pilot_error_code is not None or self.trans_exit_code != 0

    def update_fields(self) -> dict[str, int | str]:
        """The fields for ``updateJob`` (legacy camelCase names), ``pilotErrorCode`` 0 on success."""
        return {
            "pilotErrorCode": int(self.pilot_error_code or 0),
            "pilotErrorDiag": self.pilot_error_diag,
            "transExitCode": self.trans_exit_code,
            "exeErrorCode": self.exe_error_code,
            "exeErrorDiag": self.exe_error_diag,
        }


# ------------------------------------------------------------------------------------------------------ the reports
@attrs.frozen
class _JobReport:
    present: bool
    problem: str = ""
    exit_code: int | None = None
    exit_msg: str = ""
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.present and not self.problem


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
        return int(value)
    return None


def _load_object(text: str) -> tuple[dict[str, object] | None, str]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(document, dict):
        return None, f"not a JSON object but {type(document).__name__}"
    return document, ""


def _executor_errors(document: Mapping[str, object]) -> tuple[str, ...]:
    """The ERROR messages of the first executor's log file report (``executor[0].logfileReport.details.ERROR``)."""
    node: object = document.get("executor")
    for key in (0, "logfileReport", "details", "ERROR"):
        if isinstance(key, int):
            node = node[0] if isinstance(node, list) and node else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, list):
        return ()
    return tuple(str(item.get("message", "")) for item in node if isinstance(item, dict))


def _parse_job_report(text: str | None) -> _JobReport:
    if text is None:
        return _JobReport(present=False)
    document, problem = _load_object(text)
    if document is None:
        return _JobReport(present=True, problem=problem)
    exit_msg = document.get("exitMsg", "")
    return _JobReport(
        present=True,
        exit_code=_as_int(document.get("exitCode")),
        exit_msg=exit_msg if isinstance(exit_msg, str) else json.dumps(exit_msg),
        errors=_executor_errors(document),
    )


def _parse_error_report(text: str | None) -> tuple[int, str] | None:
    """``(error_code, error_diag)`` of the transform's error report when it names a non-zero code."""
    document, _ = _load_object(text) if text is not None else (None, "")
    if document is None:
        return None
    code = _as_int(document.get("error_code"))
    if not code:
        return None
    diag = document.get("error_diag")
    return code, diag if isinstance(diag, str) else ""


# ------------------------------------------------------------------------------------------------------- the rules
_Finding = tuple[ErrorCode, str] | None

_OOM = re.compile(
    r"out of memory|oom[-_ ]?kill|bad_alloc|cannot allocate memory|\bMemoryError\b", re.IGNORECASE | re.MULTILINE
)
# Container runtime messages (Apptainer/Singularity, bubblewrap, runc), specific ones first.
_CONTAINER: tuple[tuple[re.Pattern[str], ErrorCode], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE | re.MULTILINE), code)
    for pattern, code in (
        (r"not mounting requested bind point", ErrorCode.SINGULARITYBINDPOINTFAILURE),
        (
            r"no more available loop devices|failed to (find|attach) (a )?loop device",
            ErrorCode.SINGULARITYNOLOOPDEVICES,
        ),
        (r"failed to mount image|error: while mounting image", ErrorCode.SINGULARITYIMAGEMOUNTFAILURE),
        (r"failed invoking the newuser namespace runtime", ErrorCode.SINGULARITYNEWUSERNAMESPACE),
        (
            r"failed to create user namespace|bwrap: (creating new namespace failed|no permissions to creat)",
            ErrorCode.SINGULARITYFAILEDUSERNAMESPACE,
        ),
        (r"^FATAL:.*resource temporarily unavailable", ErrorCode.SINGULARITYRESOURCEUNAVAILABLE),
        (r"^FATAL:.*(could not open image|image .*(not found|does not exist))", ErrorCode.IMAGENOTFOUND),
        (r"singularity(: command not found| is not installed)", ErrorCode.SINGULARITYNOTINSTALLED),
        (r"apptainer(: command not found| is not installed)", ErrorCode.APPTAINERNOTINSTALLED),
        (
            r"^FATAL:\s+container creation failed|^bwrap: |OCI runtime (create|exec|start) failed|^runc(\[\d+\])?: ",
            ErrorCode.SINGULARITYGENERALFAILURE,
        ),
    )
)
_STDERR_ERROR = (re.compile(r"ERROR\s*:\s*(.+)"), re.compile(r"Error\s*:\s*(.+)"), re.compile(r"error\s*:\s*(.+)"))


def _line_matching(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    if match is None:
        return ""
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start : end if end >= 0 else len(text)].strip()


def _oom_line(outcome: PayloadOutcome) -> str:
    return _line_matching(_OOM, outcome.stderr_tail) or _line_matching(_OOM, outcome.stdout_tail)


def _signal_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    signum = outcome.signal
    if signum is None:
        return None
    name = error_for_signal(signum).message.removeprefix("received ")
    if signum == signal.SIGKILL and (evidence := _oom_line(outcome)):
        return ErrorCode.PAYLOADOUTOFMEMORY, f"payload killed by {name}: {evidence}"
    if signum == signal.SIGSEGV:
        return ErrorCode.PAYLOADSIGSEGV, f"payload killed by {name}"
    return error_for_signal(signum).code, f"payload killed by {name}"


def _oom_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    evidence = _oom_line(outcome)
    if outcome.returncode == 0 or not evidence:
        return None
    return ErrorCode.PAYLOADOUTOFMEMORY, f"exit status {outcome.returncode}: {evidence}"


def _container_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    for pattern, code in _CONTAINER:
        if line := _line_matching(pattern, outcome.stderr_tail):
            return code, line
    return None


def _error_report_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    if error_report is None:
        return None
    code, diag = error_report
    return ErrorCode.PAYLOADEXECUTIONFAILURE, f"transform error {code}: {diag}" if diag else f"transform error {code}"


def _job_report_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    if "got a SIGSEGV signal" in report.exit_msg:
        return ErrorCode.PAYLOADSIGSEGV, f"{report.exit_msg} (job report)"
    if report.exit_code:
        bad_alloc = next((message for message in report.errors if "bad_alloc" in message), "")
        if bad_alloc:
            return ErrorCode.BADALLOC, bad_alloc
    return None


def _core_dump_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    wanted = {"core", f"core.{outcome.payload_pid}"} if outcome.payload_pid else None
    cores = [name for name in outcome.core_files if (name in wanted if wanted else name.startswith("core"))]
    return (ErrorCode.COREDUMP, f"core dump found: {', '.join(cores)}") if cores else None


def _no_space_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    line = _line_matching(re.compile("No space left on device"), outcome.stderr_tail)
    return (ErrorCode.NOLOCALSPACE, line) if outcome.returncode and line else None


def _full_disk_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    if outcome.returncode <= 0 or not disk_is_full(outcome.free_bytes):
        return None
    free = outcome.free_bytes
    return ErrorCode.NOLOCALSPACE, f"exit status {outcome.returncode}, the work directory's disk is full ({free} B)"


def _stderr_error(outcome: PayloadOutcome) -> str:
    critical = _line_matching(re.compile(r"CRITICAL"), outcome.stdout_tail)
    if critical:
        return critical
    not_found = _line_matching(re.compile(r"command not found"), outcome.stderr_tail)
    if not_found:
        return not_found
    for pattern in _STDERR_ERROR:
        if match := pattern.search(outcome.stderr_tail):
            return match.group(1).strip()
    return ""


def _exit_status_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    if outcome.returncode <= 0:
        return None
    code = ErrorCode.UNKNOWNTRFFAILURE if outcome.returncode == 251 else ErrorCode.PAYLOADEXECUTIONFAILURE
    detail = _stderr_error(outcome)
    return code, f"exit status {outcome.returncode}" + (f": {detail}" if detail else "")


def _report_says_failed_rule(
    outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None
) -> _Finding:
    if outcome.returncode != 0 or not report.exit_code:
        return None
    return ErrorCode.UNKNOWNPAYLOADFAILURE, f"job report exitCode={report.exit_code} exitMsg={report.exit_msg}"


def _metadata_rule(outcome: PayloadOutcome, report: _JobReport, error_report: tuple[int, str] | None) -> _Finding:
    if not outcome.job_report_required or report.valid:
        return None
    if not report.present:
        return ErrorCode.NOPAYLOADMETADATA, f"the payload wrote no {JOB_REPORT_NAME}"
    return ErrorCode.NOPAYLOADMETADATA, f"{JOB_REPORT_NAME} is {report.problem}"


_Rule = Callable[[PayloadOutcome, _JobReport, "tuple[int, str] | None"], _Finding]
_RULES: tuple[_Rule, ...] = (
    _signal_rule,
    _oom_rule,
    _no_space_rule,
    _full_disk_rule,
    _container_rule,
    _error_report_rule,
    _job_report_rule,
    _core_dump_rule,
    _exit_status_rule,
    _report_says_failed_rule,
    _metadata_rule,
)


# ------------------------------------------------------------------------------------------------------- diagnose
def _exe_error(report: _JobReport, error_report: tuple[int, str] | None) -> tuple[int, str]:
    if error_report is not None:
        return error_report
    if report.valid and report.exit_msg and report.exit_msg != "OK":
        return report.exit_code or 0, report.exit_msg
    return 0, ""


def _trans_exit_code(outcome: PayloadOutcome, report: _JobReport) -> int:
    if report.valid and report.exit_code is not None:
        return report.exit_code
    return max(outcome.returncode, 0)


def diagnose(outcome: PayloadOutcome, *, runtime_judged: bool = False) -> Diagnosis:
    """Classify how the payload ended; the first matching rule (see ``docs/errors.rst``) gives the pilot error.

    ``runtime_judged``: the pilot ran the payload in a container runtime, whose own ``failure()`` has already
    judged the runtime's output; the container rule (pilot3's stderr patterns of a payload that starts a
    container itself) is then left out, so a payload's own message is never taken for the runtime's failure.

    Never raises for any content of the reports or the output tails.
    """
    report = _parse_job_report(outcome.job_report)
    error_report = _parse_error_report(outcome.error_report)
    rules = tuple(rule for rule in _RULES if not (runtime_judged and rule is _container_rule))
    finding = next((found for rule in rules if (found := rule(outcome, report, error_report))), None)
    exe_code, exe_diag = _exe_error(report, error_report)
    code, detail = finding if finding else (None, "")
    return Diagnosis(
        pilot_error_code=code,
        trans_exit_code=_trans_exit_code(outcome, report),
        exe_error_code=exe_code,
        exe_error_diag=truncate_diag(exe_diag),
        pilot_error_diag=truncate_diag(f"{code.message}: {detail}" if code and detail else ""),
    )
