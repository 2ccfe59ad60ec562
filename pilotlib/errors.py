"""PanDA pilot error codes, the :class:`PilotError` tree and the pilot's process exit codes.

The numbers are PanDA's wire contract (the server and the monitoring read them): :class:`ErrorCode` keeps the numbers,
the names and the recoverable flags of PanDAWMS/pilot3 ``pilot/common/errorcodes.py`` (``ErrorCodes`` constants and
``recoverable_error_codes``); the messages are ours. There is one catalogue, one row per code.

Every :class:`PilotError` carries exactly one code, fixed by its type; transfer errors pick the stage-in or the
stage-out code by their direction. :func:`process_exit_code` gives the exit status a wrapper sees (pilot3
``pilot/util/auxiliary.py``, ``get_error_code_translation_dictionary``/``shell_exit_code``).
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from typing import ClassVar

from pilotlib._redact import redact_text

__all__ = [
    "BadFileNameError",
    "CaPathError",
    "CommandTimedOutError",
    "CommunicationError",
    "CoreDumpError",
    "Direction",
    "ErrorCode",
    "FileHandlingError",
    "InternalPilotError",
    "JobDefinitionError",
    "KilledBySignalError",
    "LfnTooLongError",
    "ListLengthMismatchError",
    "LoopingJobError",
    "MemoryLimitExceededError",
    "MissingFieldError",
    "MkdirError",
    "NoLocalSpaceError",
    "NoPayloadMetadataError",
    "NoProxyError",
    "PandaKillError",
    "PayloadError",
    "PayloadExecutionError",
    "PayloadOutOfMemoryError",
    "PilotError",
    "PilotLostError",
    "ReachedMaxTimeError",
    "SetupFailureError",
    "SigBusError",
    "SigIntError",
    "SigQuitError",
    "SigSegvError",
    "SigTermError",
    "SigUsr1Error",
    "SigXcpuError",
    "StdoutTooBigError",
    "TransferError",
    "UnknownPayloadFailureError",
    "UserDirTooLargeError",
    "error_code_for_exit_code",
    "error_for_signal",
    "process_exit_code",
    "render_error_table",
    "truncate_diag",
]

#: The PanDA server keeps this many characters of ``pilotErrorDiag`` and ``exeErrorDiag``.
SERVER_DIAG_LIMIT = 500


@enum.unique
class ErrorCode(enum.IntEnum):
    """The catalogue: ``ErrorCode.STAGEINFAILED == 1099``, with ``.message`` and ``.recoverable``.

    ``recoverable`` marks the codes after which the job may still succeed on a later attempt (pilot3's
    ``recoverable_error_codes``: the stage-out failures).
    """

    message: str
    recoverable: bool

    def __new__(cls, number: int, message: str, recoverable: bool = False) -> ErrorCode:
        obj = int.__new__(cls, number)
        obj._value_ = number
        obj.message = message
        obj.recoverable = recoverable
        return obj

    GENERALERROR = 1008, "Generic pilot failure; see the batch system log"
    NOLOCALSPACE = 1098, "Too little free space on the local disk"
    STAGEINFAILED = 1099, "Stage-in of an input file failed"
    REPLICANOTFOUND = 1100, "No replica of the file could be found"
    NOSUCHFILE = 1103, "A file or directory does not exist"
    USERDIRTOOLARGE = 1104, "The job's work directory grew too large"
    STDOUTTOOBIG = 1106, "The payload's stdout or log file grew too large"
    SETUPFAILURE = 1110, "The payload set-up failed"
    NFSSQLITE = 1115, "SQLite file locking failed on NFS"
    QUEUEDATA = 1116, "The queue description (queuedata) could not be downloaded"
    QUEUEDATANOTOK = 1117, "The queue description (queuedata) is not valid"
    OUTPUTFILETOOLARGE = 1124, "An output file is too large"
    NOSTORAGE = 1133, "No storage is defined for the activity, so there is no default storage"
    STAGEOUTFAILED = 1137, "Stage-out of an output file failed", True
    PUTMD5MISMATCH = 1141, "The md5 checksum of an output file does not match", True
    CHMODTRF = 1143, "The transform could not be made executable"
    PANDAKILL = 1144, "The PanDA server killed this job"
    GETMD5MISMATCH = 1145, "The md5 checksum of an input file does not match"
    TRFDOWNLOADFAILURE = 1149, "The transform could not be downloaded"
    LOOPINGJOB = 1150, "The pilot killed a looping job"
    STAGEINTIMEOUT = 1151, "A stage-in transfer timed out"
    STAGEOUTTIMEOUT = 1152, "A stage-out transfer timed out", True
    NOPROXY = 1163, "No valid grid proxy"
    MISSINGOUTPUTFILE = 1165, "An output file is missing in the work directory"
    SIZETOOLARGE = 1168, "The total size of the files is too large"
    GETADMISMATCH = 1171, "The adler32 checksum of an input file does not match"
    PUTADMISMATCH = 1172, "The adler32 checksum of an output file does not match"
    NOVOMSPROXY = 1177, "No valid VOMS proxy"
    GETGLOBUSSYSERR = 1180, "Globus system error while staging in"
    PUTGLOBUSSYSERR = 1181, "Globus system error while staging out", True
    NOSOFTWAREDIR = 1186, "The software directory is missing"
    NOPAYLOADMETADATA = 1187, "The payload left no metadata (job report)"
    LFNTOOLONG = 1190, "A file name (LFN) is longer than 255 characters"
    ZEROFILESIZE = 1191, "A file has size zero"
    MKDIR = 1199, "A directory could not be created"
    KILLSIGNAL = 1200, "The job was ended by an unrecognised kill signal"
    SIGTERM = 1201, "The job was ended by SIGTERM"
    SIGQUIT = 1202, "The job was ended by SIGQUIT"
    SIGSEGV = 1203, "The job was ended by SIGSEGV"
    SIGXCPU = 1204, "The job was ended by SIGXCPU"
    USERKILL = 1205, "The user killed the job"
    SIGBUS = 1206, "The job was ended by SIGBUS"
    SIGUSR1 = 1207, "The job was ended by SIGUSR1"
    SIGINT = 1208, "The job was ended by SIGINT"
    MISSINGINSTALLATION = 1211, "The software installation is missing"
    PAYLOADOUTOFMEMORY = 1212, "The payload ran out of memory"
    REACHEDMAXTIME = 1213, "The time limit (batch system or pilot lifetime) was reached"
    UNKNOWNPAYLOADFAILURE = 1220, "The payload failed for an unidentified reason; see the log"
    FILEEXISTS = 1221, "The file exists already"
    BADALLOC = 1223, "The transform failed with std::bad_alloc"
    ESRECOVERABLE = 1224, "Event service: recoverable failure"
    ESFATAL = 1228, "Event service: fatal failure"
    EXECUTEDCLONEJOB = 1234, "A clone of this job has run already"
    PAYLOADEXCEEDMAXMEM = 1235, "The payload used more memory than allowed"
    FAILEDBYSERVER = 1236, "The server failed the job"
    ESNOEVENTS = 1238, "Event service: no events to process"
    MESSAGEHANDLINGFAILURE = 1240, "A message from the payload could not be handled"
    CHKSUMNOTSUP = 1242, "Checksum queries are not supported"
    NORELEASEFOUND = 1244, "No candidate software release was found"
    NOUSERTARBALL = 1246, "The user tarball could not be fetched from the PanDA server"
    BADXML = 1247, "Malformed XML"
    NOTIMPLEMENTED = 1300, "Not implemented"
    UNKNOWNEXCEPTION = 1301, "The pilot caught an unexpected exception"
    CONVERSIONFAILURE = 1302, "Data could not be converted"
    FILEHANDLINGFAILURE = 1303, "A file operation failed"
    PAYLOADEXECUTIONFAILURE = 1305, "The payload execution failed"
    SINGULARITYGENERALFAILURE = 1306, "Apptainer/Singularity: general failure"
    SINGULARITYNOLOOPDEVICES = 1307, "Apptainer/Singularity: no loop device left"
    SINGULARITYBINDPOINTFAILURE = 1308, "Apptainer/Singularity: a requested bind point was not mounted"
    SINGULARITYIMAGEMOUNTFAILURE = 1309, "Apptainer/Singularity: the image could not be mounted"
    PAYLOADEXECUTIONEXCEPTION = 1310, "An exception was raised while running the payload"
    NOTDEFINED = 1311, "A required value is not defined"
    NOTSAMELENGTH = 1312, "Lists that must be equally long are not"
    NOSTORAGEPROTOCOL = 1313, "The storage endpoint has no protocol defined"
    UNKNOWNCHECKSUMTYPE = 1314, "The checksum type is not recognised"
    UNKNOWNTRFFAILURE = 1315, "The transform failed for an unidentified reason"
    RUCIOSERVICEUNAVAILABLE = 1316, "The Rucio service is not available"
    EXCEEDEDMAXWAITTIME = 1317, "Waited longer than the maximum allowed time"
    COMMUNICATIONFAILURE = 1318, "Communication with the server failed"
    INTERNALPILOTPROBLEM = 1319, "Internal pilot problem; see the pilot log"
    LOGFILECREATIONFAILURE = 1320, "The log file could not be created"
    RUCIOLOCATIONFAILED = 1321, "The client location for Rucio could not be determined"
    RUCIOLISTREPLICASFAILED = 1322, "Listing the replicas in Rucio failed"
    UNKNOWNCOPYTOOL = 1323, "The copy tool is not recognised"
    SERVICENOTAVAILABLE = 1324, "A service is temporarily not available"
    SINGULARITYNOTINSTALLED = 1325, "Singularity is not installed"
    NOREPLICAS = 1326, "Rucio listed no usable replica"
    UNREACHABLENETWORK = 1327, "Stage-in is impossible: the network is unreachable"
    PAYLOADSIGSEGV = 1328, "The payload crashed: invalid memory reference (segmentation fault)"
    NONDETERMINISTICDDM = 1329, "No SURL can be built for a non-deterministic storage (fix its CRIC entry)"
    JSONRETRIEVALTIMEOUT = 1330, "Fetching a JSON document timed out"
    MISSINGINPUTFILE = 1331, "An input file is missing on the storage element"
    BLACKHOLE = 1332, "A black hole was detected in the file system; see the pilot log"
    NOREMOTESPACE = 1333, "The storage device has no space left"
    SETUPFATAL = 1334, "The set-up failed with a fatal exception; see the payload log"
    MISSINGUSERCODE = 1335, "The user code is not on the PanDA server (resubmit the task with --useNewCode)"
    JOBALREADYRUNNING = 1336, "The job is running elsewhere already"
    BADMEMORYMONITORJSON = 1337, "The memory monitor wrote malformed output"
    STAGEINAUTHENTICATIONFAILURE = 1338, "Authentication failed during stage-in"
    DBRELEASEFAILURE = 1339, "Handling the local DBRelease failed; see the pilot log"
    SINGULARITYNEWUSERNAMESPACE = 1340, "Apptainer/Singularity: the NEWUSER namespace runtime could not start"
    BADQUEUECONFIGURATION = 1341, "The queue is badly configured"
    MIDDLEWAREIMPORTFAILURE = 1342, "The middleware could not be imported; see the pilot log"
    NOOUTPUTINJOBREPORT = 1343, "The job report lists no output"
    RESOURCEUNAVAILABLE = 1344, "A resource is temporarily unavailable"
    SINGULARITYFAILEDUSERNAMESPACE = 1345, "Apptainer/Singularity: a user namespace could not be created"
    TRANSFORMNOTFOUND = 1346, "The transform does not exist"
    UNSUPPORTEDSL5OS = 1347, "The SL5 operating system is not supported"
    SINGULARITYRESOURCEUNAVAILABLE = 1348, "Apptainer/Singularity: a resource is temporarily unavailable"
    UNRECOGNIZEDTRFARGUMENTS = 1349, "The transform did not recognise its arguments"
    EMPTYOUTPUTFILE = 1350, "An output file is empty"
    UNRECOGNIZEDTRFSTDERR = 1351, "An unrecognised fatal error appeared in the transform's stderr"
    STATFILEPROBLEM = 1352, "CPU time accounting: a proc stat file could not be read"
    NOSUCHPROCESS = 1353, "CPU time accounting: the process does not exist"
    GENERALCPUCALCPROBLEM = 1354, "CPU time accounting failed; see the pilot log"
    COREDUMP = 1355, "A core dump was found"
    PREPROCESSFAILURE = 1356, "The pre-process command failed"
    POSTPROCESSFAILURE = 1357, "The post-process command failed"
    MISSINGRELEASEUNPACKED = 1358, "The unpacked container lacks the release set-up"
    PANDAQUEUENOTACTIVE = 1359, "The PanDA queue is not active"
    IMAGENOTFOUND = 1360, "The container image does not exist"
    REMOTEFILECOULDNOTBEOPENED = 1361, "A remote file could not be opened"
    XRDCPERROR = 1362, "xrdcp could not open the file"
    KILLPAYLOAD = 1363, "Raythena asked for the payload to be killed"
    MISSINGCREDENTIALS = 1364, "No credentials were found for the S3 transfer"
    NOCTYPES = 1365, "The Python ctypes module is missing on the worker node"
    CHECKSUMCALCFAILURE = 1366, "The checksum calculation failed"
    COMMANDTIMEDOUT = 1367, "A command timed out"
    REMOTEFILEOPENTIMEDOUT = 1368, "Opening a remote file timed out"
    FRONTIER = 1369, "Frontier (conditions data access) error"
    VOMSPROXYABOUTTOEXPIRE = 1370, "The VOMS proxy expires soon"
    BADOUTPUTFILENAME = 1371, "A file name contains characters that are not allowed"
    APPTAINERNOTINSTALLED = 1372, "Apptainer is not installed"
    CERTIFICATEHASEXPIRED = 1373, "The certificate has expired"
    REMOTEFILEDICTDOESNOTEXIST = 1374, "The remote file open dictionary is missing"
    LEASETIME = 1375, "The lease time has run out"
    LOGCREATIONTIMEOUT = 1376, "Creating the log file timed out"
    CVMFSISNOTALIVE = 1377, "CVMFS does not respond"
    LSETUPTIMEDOUT = 1378, "lsetup timed out while opening a remote file"
    PREEMPTION = 1379, "The job was pre-empted"
    ARCPROXYFAILURE = 1380, "arcproxy failed"
    ARCPROXYLIBFAILURE = 1381, "arcproxy could not load its shared libraries"
    PROXYTOOSHORT = 1382, "The proxy's remaining lifetime is too short"
    STAGEOUTAUTHENTICATIONFAILURE = 1383, "Authentication failed during stage-out"
    QUEUENOTSETUPFORCONTAINERS = 1384, "The queue is not configured for containers"
    NOJOBSINPANDA = 1385, "PanDA has no job for this queue"
    PANDAQUEUENOTONLINE = 1386, "The PanDA queue is not online"


def render_error_table() -> str:
    """The catalogue as a reStructuredText ``list-table`` (name, number, message, recoverable), for the docs."""
    lines = [
        ".. list-table:: PanDA pilot error codes",
        "   :header-rows: 1",
        "   :widths: 30 8 55 7",
        "",
        "   * - Name",
        "     - Code",
        "     - Meaning",
        "     - Recoverable",
    ]
    for code in ErrorCode:
        lines += [
            f"   * - ``{code.name}``",
            f"     - {int(code)}",
            f"     - {code.message}",
            f"     - {'yes' if code.recoverable else 'no'}",
        ]
    return "\n".join(lines) + "\n"


def truncate_diag(text: str, limit: int = SERVER_DIAG_LIMIT) -> str:
    """Truncate a diagnostic as the PanDA server does: it keeps the first 500 characters.

    Fact: PanDAWMS/panda-server ``pandaserver/api/v1/pilot_api.py`` stores ``str(x)[:500]`` for ``pilotErrorDiag``
    and ``exeErrorDiag`` (``pandaserver/taskbuffer/JobSpec.py`` limits both columns to 500).
    """
    return text[:limit]


class Direction(enum.Enum):
    """Which way a transfer goes; transfer errors pick their code by it."""

    STAGE_IN = "stage-in"
    STAGE_OUT = "stage-out"


class PilotError(Exception):
    """Base of every error the pilot raises; carries exactly one :class:`ErrorCode`.

    Subclasses fix the code with the class attribute ``code`` (a transfer error sets it from its direction).
    ``str(err)`` is the message with the facts; without a message it is the catalogue's message. The message is
    redacted (:func:`~pilotlib._redact.redact_text`): a tokenised URL or a tool's output quoted in it never carries
    its secret into a log, a report or ``pilotErrorDiag``.
    """

    code: ErrorCode = ErrorCode.GENERALERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(redact_text(message) or self.code.message)

    @property
    def message(self) -> str:
        """The message given when raised (or the catalogue's message)."""
        return str(self.args[0])

    @property
    def diagnostics(self) -> str:
        """What the server gets as ``pilotErrorDiag``: the message, truncated as the server truncates it."""
        return truncate_diag(self.message)


# ------------------------------------------------------------------------------------------------- job definitions
class JobDefinitionError(PilotError):
    """A job definition is malformed; names the field and the value."""

    code = ErrorCode.CONVERSIONFAILURE

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"bad job definition field {field}={shown}: {reason}")


class MissingFieldError(JobDefinitionError):
    """A required job definition field (``PandaID``) is absent or empty."""

    code = ErrorCode.NOTDEFINED


class ListLengthMismatchError(JobDefinitionError):
    """Per-file parallel lists (``inFiles``, ``GUID``, ``fsize``, ...) differ in length."""

    code = ErrorCode.NOTSAMELENGTH


class BadFileNameError(JobDefinitionError):
    """A file name (LFN) is unsafe: a path separator, ``..``, a NUL or control character, or empty."""

    code = ErrorCode.BADOUTPUTFILENAME


class LfnTooLongError(JobDefinitionError):
    """A file name is longer than 255 characters."""

    code = ErrorCode.LFNTOOLONG


# ------------------------------------------------------------------------------------------------------ transfers
class TransferError(PilotError):
    """A file transfer failed; the code is the stage-in or the stage-out one, by direction.

    Subclasses set ``codes = (stage-in code, stage-out code)``.
    """

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (ErrorCode.STAGEINFAILED, ErrorCode.STAGEOUTFAILED)

    def __init__(self, message: str, direction: Direction) -> None:
        self.direction = direction
        self.code = self.codes[0] if direction is Direction.STAGE_IN else self.codes[1]
        super().__init__(message)


# ------------------------------------------------------------------------------------------- set-up and resources
class SetupFailureError(PilotError):
    """The payload's set-up (environment, release, container preparation) failed."""

    code = ErrorCode.SETUPFAILURE


class NoLocalSpaceError(PilotError):
    """Too little free space in the work directory's file system: ``NoLocalSpaceError(f"need {n} B, have {m} B")``."""

    code = ErrorCode.NOLOCALSPACE


class UserDirTooLargeError(PilotError):
    """The job's work directory grew beyond the queue's ``maxwdir``."""

    code = ErrorCode.USERDIRTOOLARGE


class StdoutTooBigError(PilotError):
    """The payload's stdout (or another log file) grew beyond its limit."""

    code = ErrorCode.STDOUTTOOBIG


class MemoryLimitExceededError(PilotError):
    """The payload's memory use (PSS) went above the allowed maximum; the memory monitor killed it."""

    code = ErrorCode.PAYLOADEXCEEDMAXMEM


class ReachedMaxTimeError(PilotError):
    """The pilot's lifetime or the queue's time limit was reached."""

    code = ErrorCode.REACHEDMAXTIME


class LoopingJobError(PilotError):
    """No file in the work directory changed for too long: the job is looping."""

    code = ErrorCode.LOOPINGJOB


class PandaKillError(PilotError):
    """The server told the pilot to kill the job (``tobekilled``)."""

    code = ErrorCode.PANDAKILL


class MkdirError(PilotError):
    """A directory could not be created."""

    code = ErrorCode.MKDIR


class FileHandlingError(PilotError):
    """A local file operation (copy, move, read, write, tar) failed."""

    code = ErrorCode.FILEHANDLINGFAILURE


class NoProxyError(PilotError):
    """No valid X509 proxy (absent, unreadable or expired)."""

    code = ErrorCode.NOPROXY


class CaPathError(PilotError):
    """The CA directory or bundle TLS is to be verified against is not there (an empty or mistyped path)."""

    code = ErrorCode.NOSUCHFILE


class CommandTimedOutError(PilotError):
    """An external command did not finish within its timeout."""

    code = ErrorCode.COMMANDTIMEDOUT


class CommunicationError(PilotError):
    """A call to the PanDA server (or Harvester) failed."""

    code = ErrorCode.COMMUNICATIONFAILURE


class InternalPilotError(PilotError):
    """A bug or an unexpected state inside the pilot itself."""

    code = ErrorCode.INTERNALPILOTPROBLEM


# ---------------------------------------------------------------------------------------------------------- payload
class PayloadError(PilotError):
    """Base of the payload's failures; see :func:`pilotlib.payload.diagnose` for how an outcome is classified."""

    code = ErrorCode.PAYLOADEXECUTIONFAILURE


class PayloadExecutionError(PayloadError):
    """The payload could not be started or exited with a non-zero status."""

    code = ErrorCode.PAYLOADEXECUTIONFAILURE


class UnknownPayloadFailureError(PayloadError):
    """The payload failed and nothing tells why."""

    code = ErrorCode.UNKNOWNPAYLOADFAILURE


class PayloadOutOfMemoryError(PayloadError):
    """The payload ran out of memory (killed by the kernel's OOM killer or failed to allocate)."""

    code = ErrorCode.PAYLOADOUTOFMEMORY


class NoPayloadMetadataError(PayloadError):
    """The payload left no (readable) job report although one is required."""

    code = ErrorCode.NOPAYLOADMETADATA


class CoreDumpError(PayloadError):
    """The payload left a core dump in the work directory."""

    code = ErrorCode.COREDUMP


# ---------------------------------------------------------------------------------------------------------- signals
class KilledBySignalError(PilotError):
    """The pilot (and so the job) received a terminating signal; ``signum`` is its number.

    Build one with :func:`error_for_signal`; a signal without a class of its own gets ``KILLSIGNAL`` (1200).
    """

    code = ErrorCode.KILLSIGNAL

    def __init__(self, message: str = "", signum: int | None = None) -> None:
        self.signum = signum
        super().__init__(message)


class PilotLostError(KilledBySignalError):
    """The pilot running the job was lost (killed with SIGKILL, or its node went down); a later pilot in the same
    work area found the job in the lost pilot's journal and reports it (see :mod:`pilotlib.abandoned`)."""


class SigTermError(KilledBySignalError):
    """SIGTERM received (batch system or Harvester asked the pilot to stop)."""

    code = ErrorCode.SIGTERM


class SigQuitError(KilledBySignalError):
    """SIGQUIT received."""

    code = ErrorCode.SIGQUIT


class SigSegvError(KilledBySignalError):
    """SIGSEGV received."""

    code = ErrorCode.SIGSEGV


class SigXcpuError(KilledBySignalError):
    """SIGXCPU received (CPU time limit)."""

    code = ErrorCode.SIGXCPU


class SigBusError(KilledBySignalError):
    """SIGBUS received."""

    code = ErrorCode.SIGBUS


class SigUsr1Error(KilledBySignalError):
    """SIGUSR1 received (some batch systems send it before the hard kill)."""

    code = ErrorCode.SIGUSR1


class SigIntError(KilledBySignalError):
    """SIGINT received (Ctrl-C)."""

    code = ErrorCode.SIGINT


# pilot3 pilot/common/errorcodes.py get_kill_signal_error_code: these seven signals have codes, any other 1200.
_SIGNAL_ERRORS: Mapping[int, type[KilledBySignalError]] = {
    signal.SIGTERM: SigTermError,
    signal.SIGQUIT: SigQuitError,
    signal.SIGSEGV: SigSegvError,
    signal.SIGXCPU: SigXcpuError,
    signal.SIGBUS: SigBusError,
    signal.SIGUSR1: SigUsr1Error,
    signal.SIGINT: SigIntError,
}


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def error_for_signal(signum: int, message: str = "") -> KilledBySignalError:
    """The error for a received signal: ``error_for_signal(15).code == ErrorCode.SIGTERM``.

    Args:
        signum: the signal number.
        message: facts to report; by default ``"received SIGTERM (15)"``.
    """
    cls = _SIGNAL_ERRORS.get(signum, KilledBySignalError)
    return cls(message or f"received {_signal_name(signum)} ({signum})", signum=signum)


# ------------------------------------------------------------------------------------------------------ exit codes
# pilot3 pilot/util/auxiliary.py get_error_code_translation_dictionary: pilot errors to 64-83, signals to 128+N
# (KILLSIGNAL as 128+9). -1 ("site offline") is not an ErrorCode but part of the same table.
_EXIT_CODES: Mapping[int, int] = {
    -1: 64,
    ErrorCode.CVMFSISNOTALIVE: 64,
    ErrorCode.GENERALERROR: 65,
    ErrorCode.MKDIR: 66,
    ErrorCode.NOSUCHFILE: 67,
    ErrorCode.NOVOMSPROXY: 68,
    ErrorCode.NOPROXY: 68,
    ErrorCode.CERTIFICATEHASEXPIRED: 68,
    ErrorCode.NOLOCALSPACE: 69,
    ErrorCode.UNKNOWNEXCEPTION: 70,
    ErrorCode.QUEUEDATA: 71,
    ErrorCode.QUEUEDATANOTOK: 72,
    ErrorCode.NOSOFTWAREDIR: 73,
    ErrorCode.JSONRETRIEVALTIMEOUT: 74,
    ErrorCode.BLACKHOLE: 75,
    ErrorCode.MIDDLEWAREIMPORTFAILURE: 76,
    ErrorCode.MISSINGINPUTFILE: 77,
    ErrorCode.PANDAQUEUENOTACTIVE: 78,
    ErrorCode.COMMUNICATIONFAILURE: 79,
    ErrorCode.PROXYTOOSHORT: 80,
    ErrorCode.REACHEDMAXTIME: 81,
    ErrorCode.NOJOBSINPANDA: 82,
    ErrorCode.PANDAQUEUENOTONLINE: 83,
    ErrorCode.KILLSIGNAL: 128 + signal.SIGKILL,
    ErrorCode.SIGTERM: 128 + signal.SIGTERM,
    ErrorCode.SIGQUIT: 128 + signal.SIGQUIT,
    ErrorCode.SIGSEGV: 128 + signal.SIGSEGV,
    ErrorCode.SIGXCPU: 128 + signal.SIGXCPU,
    ErrorCode.SIGUSR1: 128 + signal.SIGUSR1,
    ErrorCode.SIGINT: 128 + signal.SIGINT,
    ErrorCode.SIGBUS: 128 + signal.SIGBUS,
}
EXIT_SUCCESS = 0
EXIT_FAILURE = 1


def process_exit_code(error: PilotError | ErrorCode | int | None) -> int:
    """The exit status the pilot process should end with, for the wrapper (the app calls ``sys.exit`` with it).

    ``None`` or 0 (no error) gives 0; the pilot errors a wrapper acts on give 64-83; the signal codes give 128+N
    (SIGTERM 143, SIGINT 130, ..., an unknown kill signal 137); any other error gives 1, as pilot3's
    ``shell_exit_code`` does.
    """
    number = error.code if isinstance(error, PilotError) else error
    if number is None or number == 0:
        return EXIT_SUCCESS
    return _EXIT_CODES.get(int(number), EXIT_FAILURE)


def error_code_for_exit_code(status: int) -> ErrorCode | None:
    """Map a pilot's exit status back to its error code (what Harvester does with a finished pilot's status).

    Where several codes share a status the first one in pilot3's table wins (68 is ``NOVOMSPROXY``; 64 is "site
    offline", which has no code); 0, 1 and any status outside the table give ``None``.
    """
    first = next((number for number, exit_status in _EXIT_CODES.items() if exit_status == status), None)
    if first is None or first <= 0:
        return None
    return _CODES_BY_NUMBER[first]


_CODES_BY_NUMBER: Mapping[int, ErrorCode] = {int(code): code for code in ErrorCode}
