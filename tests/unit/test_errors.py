"""The error catalogue, the PilotError tree, signal errors and the pilot's process exit codes."""

from __future__ import annotations

import inspect
import re
import signal
from pathlib import Path

import pytest

from pilotlib import errors
from pilotlib.errors import (
    Direction,
    ErrorCode,
    KilledBySignalError,
    PilotError,
    TransferError,
    error_code_for_exit_code,
    error_for_signal,
    process_exit_code,
    render_error_table,
    truncate_diag,
)

REPO = Path(__file__).resolve().parents[2]

# The wire contract: numbers and names as pilot3 pilot/common/errorcodes.py has them (a sample spanning the table).
CONTRACT = {
    "GENERALERROR": 1008, "NOLOCALSPACE": 1098, "STAGEINFAILED": 1099, "REPLICANOTFOUND": 1100, "NOSUCHFILE": 1103,
    "USERDIRTOOLARGE": 1104, "STDOUTTOOBIG": 1106, "SETUPFAILURE": 1110, "QUEUEDATA": 1116, "QUEUEDATANOTOK": 1117,
    "OUTPUTFILETOOLARGE": 1124, "NOSTORAGE": 1133, "STAGEOUTFAILED": 1137, "PUTMD5MISMATCH": 1141, "PANDAKILL": 1144,
    "GETMD5MISMATCH": 1145, "LOOPINGJOB": 1150, "STAGEINTIMEOUT": 1151, "STAGEOUTTIMEOUT": 1152, "NOPROXY": 1163,
    "MISSINGOUTPUTFILE": 1165, "SIZETOOLARGE": 1168, "GETADMISMATCH": 1171, "PUTADMISMATCH": 1172,
    "NOPAYLOADMETADATA": 1187, "LFNTOOLONG": 1190, "ZEROFILESIZE": 1191, "MKDIR": 1199, "KILLSIGNAL": 1200,
    "SIGTERM": 1201, "SIGQUIT": 1202, "SIGSEGV": 1203, "SIGXCPU": 1204, "USERKILL": 1205, "SIGBUS": 1206,
    "SIGUSR1": 1207, "SIGINT": 1208, "PAYLOADOUTOFMEMORY": 1212, "REACHEDMAXTIME": 1213,
    "UNKNOWNPAYLOADFAILURE": 1220, "FILEEXISTS": 1221, "ESRECOVERABLE": 1224, "ESFATAL": 1228,
    "PAYLOADEXCEEDMAXMEM": 1235, "ESNOEVENTS": 1238, "CONVERSIONFAILURE": 1302, "PAYLOADEXECUTIONFAILURE": 1305,
    "SINGULARITYGENERALFAILURE": 1306, "NOTDEFINED": 1311, "NOTSAMELENGTH": 1312, "RUCIOSERVICEUNAVAILABLE": 1316,
    "EXCEEDEDMAXWAITTIME": 1317, "RUCIOLOCATIONFAILED": 1321, "RUCIOLISTREPLICASFAILED": 1322,
    "UNKNOWNCOPYTOOL": 1323, "NOREPLICAS": 1326, "PAYLOADSIGSEGV": 1328, "MISSINGINPUTFILE": 1331,
    "STAGEINAUTHENTICATIONFAILURE": 1338, "COREDUMP": 1355, "XRDCPERROR": 1362, "CHECKSUMCALCFAILURE": 1366,
    "BADOUTPUTFILENAME": 1371, "LOGCREATIONTIMEOUT": 1376, "STAGEOUTAUTHENTICATIONFAILURE": 1383,
    "PANDAQUEUENOTONLINE": 1386,
}  # fmt: skip


def test_catalogue_has_every_pilot3_code_once() -> None:
    """147 codes, none aliased: no number and no name appears twice."""
    names = list(ErrorCode.__members__)
    numbers = [int(code) for code in ErrorCode]
    assert len(numbers) == 147
    assert len(names) == len(set(names)) == len(numbers) == len(set(numbers))


@pytest.mark.parametrize(("name", "number"), sorted(CONTRACT.items()))
def test_contract_numbers(name: str, number: int) -> None:
    """The numbers the server reads are pilot3's numbers under pilot3's names."""
    assert ErrorCode[name] == number
    assert ErrorCode(number).name == name


def test_only_stage_out_failures_are_recoverable() -> None:
    """pilot3 marks exactly the stage-out codes that exist in the catalogue (1137, 1141, 1152, 1181) recoverable."""
    assert {int(code) for code in ErrorCode if code.recoverable} == {1137, 1141, 1152, 1181}


def test_every_code_has_a_one_line_message() -> None:
    """Each message is a short single line, without a trailing full stop, and unique."""
    messages = [code.message for code in ErrorCode]
    assert len(set(messages)) == len(messages)
    for message in messages:
        assert message and "\n" not in message and len(message) <= 100 and not message.endswith(".")


def _pilot_error_classes() -> list[type[PilotError]]:
    return [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, PilotError)]


def test_every_error_class_is_exported_and_has_one_catalogue_code() -> None:
    """Every PilotError class in errors.py is public and its ``code`` is a member of the catalogue."""
    classes = _pilot_error_classes()
    assert len(classes) >= 30
    for cls in classes:
        assert cls.__name__ in errors.__all__
        assert isinstance(cls.code, ErrorCode)


GROUND_FLOOR_CODES = {
    "SetupFailureError": 1110, "NoLocalSpaceError": 1098, "UserDirTooLargeError": 1104, "StdoutTooBigError": 1106,
    "MemoryLimitExceededError": 1235, "ReachedMaxTimeError": 1213, "LoopingJobError": 1150, "PandaKillError": 1144,
    "MkdirError": 1199, "FileHandlingError": 1303, "NoProxyError": 1163, "CommandTimedOutError": 1367,
    "CommunicationError": 1318, "InternalPilotError": 1319, "PayloadExecutionError": 1305,
    "UnknownPayloadFailureError": 1220, "PayloadOutOfMemoryError": 1212, "NoPayloadMetadataError": 1187,
    "CoreDumpError": 1355, "MissingFieldError": 1311, "ListLengthMismatchError": 1312, "BadFileNameError": 1371,
    "LfnTooLongError": 1190, "JobDefinitionError": 1302, "KilledBySignalError": 1200,
}  # fmt: skip


@pytest.mark.parametrize(("name", "number"), sorted(GROUND_FLOOR_CODES.items()))
def test_error_class_codes(name: str, number: int) -> None:
    """Each ground-floor error carries its exact PanDA code, fixed by its type, whatever the message."""
    cls = getattr(errors, name)
    err = cls("x", "y", "z") if issubclass(cls, errors.JobDefinitionError) else cls("some facts")
    assert err.code == number
    assert isinstance(err, PilotError)


def test_message_defaults_to_the_catalogue_message() -> None:
    """An error raised without facts says what its code means."""
    err = errors.NoLocalSpaceError()
    assert str(err) == ErrorCode.NOLOCALSPACE.message == err.message


def test_job_definition_error_names_field_and_value() -> None:
    """A definition error names the field and shows the value, shortened when long."""
    err = errors.ListLengthMismatchError("fsize", "1,2", "has 2 entries but inFiles has 3")
    assert str(err) == "bad job definition field fsize='1,2': has 2 entries but inFiles has 3"
    assert (err.field, err.value) == ("fsize", "1,2")
    long_err = errors.JobDefinitionError("jobPars", "x" * 1000, "bad")
    assert len(str(long_err)) < 200 and "..." in str(long_err)


@pytest.mark.parametrize(
    ("direction", "expected"),
    [(Direction.STAGE_IN, ErrorCode.STAGEINFAILED), (Direction.STAGE_OUT, ErrorCode.STAGEOUTFAILED)],
)
def test_transfer_error_code_by_direction(direction: Direction, expected: ErrorCode) -> None:
    """A transfer error takes the stage-in or the stage-out code from its direction."""
    err = TransferError("copy failed", direction)
    assert err.code is expected and err.direction is direction


def test_transfer_subclass_codes_by_direction() -> None:
    """A subclass with its own ``codes`` pair picks from that pair."""

    class ChecksumMismatch(TransferError):
        codes = (ErrorCode.GETADMISMATCH, ErrorCode.PUTADMISMATCH)

    assert ChecksumMismatch("x", Direction.STAGE_IN).code == 1171
    assert ChecksumMismatch("x", Direction.STAGE_OUT).code == 1172


SIGNALS = [
    (signal.SIGTERM, errors.SigTermError, 1201, 143),
    (signal.SIGQUIT, errors.SigQuitError, 1202, 131),
    (signal.SIGSEGV, errors.SigSegvError, 1203, 139),
    (signal.SIGXCPU, errors.SigXcpuError, 1204, 152),
    (signal.SIGBUS, errors.SigBusError, 1206, 135),
    (signal.SIGUSR1, errors.SigUsr1Error, 1207, 138),
    (signal.SIGINT, errors.SigIntError, 1208, 130),
    (signal.SIGHUP, KilledBySignalError, 1200, 137),
    (signal.SIGKILL, KilledBySignalError, 1200, 137),
    (signal.SIGUSR2, KilledBySignalError, 1200, 137),
]


@pytest.mark.parametrize(("signum", "cls", "code", "exit_code"), SIGNALS)
def test_error_for_signal(signum: int, cls: type[KilledBySignalError], code: int, exit_code: int) -> None:
    """Each signal gets its class and code (1200 for the others) and the wrapper sees 128+N (137 for the others)."""
    err = error_for_signal(signum)
    assert type(err) is cls
    assert err.code == code and err.signum == signum
    assert str(err) == f"received {signal.Signals(signum).name} ({signum})"
    assert process_exit_code(err) == exit_code


def test_error_for_unknown_signal_number() -> None:
    """A number that is no signal still gives KILLSIGNAL and a readable message."""
    err = error_for_signal(77)
    assert type(err) is KilledBySignalError and err.code == 1200 and str(err) == "received signal 77 (77)"


EXIT_CODES = [
    (None, 0), (0, 0), (-1, 64), (ErrorCode.CVMFSISNOTALIVE, 64), (ErrorCode.GENERALERROR, 65), (ErrorCode.MKDIR, 66),
    (ErrorCode.NOSUCHFILE, 67), (ErrorCode.NOVOMSPROXY, 68), (ErrorCode.NOPROXY, 68),
    (ErrorCode.CERTIFICATEHASEXPIRED, 68), (ErrorCode.NOLOCALSPACE, 69), (ErrorCode.UNKNOWNEXCEPTION, 70),
    (ErrorCode.QUEUEDATA, 71), (ErrorCode.QUEUEDATANOTOK, 72), (ErrorCode.NOSOFTWAREDIR, 73),
    (ErrorCode.JSONRETRIEVALTIMEOUT, 74), (ErrorCode.BLACKHOLE, 75), (ErrorCode.MIDDLEWAREIMPORTFAILURE, 76),
    (ErrorCode.MISSINGINPUTFILE, 77), (ErrorCode.PANDAQUEUENOTACTIVE, 78), (ErrorCode.COMMUNICATIONFAILURE, 79),
    (ErrorCode.PROXYTOOSHORT, 80), (ErrorCode.REACHEDMAXTIME, 81), (ErrorCode.NOJOBSINPANDA, 82),
    (ErrorCode.PANDAQUEUENOTONLINE, 83), (ErrorCode.KILLSIGNAL, 137), (ErrorCode.SIGTERM, 143),
    (ErrorCode.SIGQUIT, 131), (ErrorCode.SIGSEGV, 139), (ErrorCode.SIGXCPU, 152), (ErrorCode.SIGUSR1, 138),
    (ErrorCode.SIGINT, 130), (ErrorCode.SIGBUS, 135), (ErrorCode.STAGEINFAILED, 1), (ErrorCode.LOOPINGJOB, 1),
    (1201, 143), (9999, 1),
]  # fmt: skip


@pytest.mark.parametrize(("error", "expected"), EXIT_CODES)
def test_process_exit_code_table(error: ErrorCode | int | None, expected: int) -> None:
    """pilot3's shell_exit_code table: 64-83 for what a wrapper acts on, 128+N for signals, 1 otherwise."""
    assert process_exit_code(error) == expected


def test_process_exit_code_of_an_error() -> None:
    """An error object gives the exit status of its code."""
    assert process_exit_code(errors.NoLocalSpaceError("need 5 GB")) == 69
    assert process_exit_code(TransferError("x", Direction.STAGE_OUT)) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [(65, ErrorCode.GENERALERROR), (68, ErrorCode.NOVOMSPROXY), (143, ErrorCode.SIGTERM), (137, ErrorCode.KILLSIGNAL),
     (83, ErrorCode.PANDAQUEUENOTONLINE), (64, None), (0, None), (1, None), (200, None)],
)  # fmt: skip
def test_error_code_for_exit_code(status: int, expected: ErrorCode | None) -> None:
    """An exit status maps back to the first code of pilot3's table with that status."""
    assert error_code_for_exit_code(status) == expected


def test_exit_codes_stay_in_their_ranges() -> None:
    """Every code maps to 0-1, 64-83 or a signal's 128+N: never into the range a shell reserves."""
    for code in ErrorCode:
        status = process_exit_code(code)
        assert status == 1 or 64 <= status <= 83 or 129 <= status <= 128 + 64


def test_truncate_diag_keeps_the_first_500_characters() -> None:
    """Diagnostics are cut as the server cuts them (``str(x)[:500]``)."""
    text = "".join(str(i % 10) for i in range(800))
    assert truncate_diag(text) == text[:500]
    assert truncate_diag("short") == "short"
    assert errors.PayloadExecutionError(text).diagnostics == text[:500]


def test_render_error_table_lists_every_code() -> None:
    """The docs table has one row per code with its number, message and recoverable flag."""
    table = render_error_table()
    rows = re.findall(r"   \* - ``(\w+)``\n     - (\d+)\n     - (.+)\n     - (yes|no)\n", table)
    assert len(rows) == 147
    assert ("STAGEOUTFAILED", "1137", ErrorCode.STAGEOUTFAILED.message, "yes") in rows


def test_docs_error_table_is_generated() -> None:
    """docs/errors.rst renders the table from the code at build time (the ``error-codes`` directive), not a copy."""
    page = (REPO / "docs" / "errors.rst").read_text()
    assert "\n.. error-codes::\n" in page
    assert "``STAGEOUTFAILED``" not in page
