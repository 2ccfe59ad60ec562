"""PanDA pilot error codes and the :class:`PilotError` tree.

The numbers are PanDA's wire contract (read by the server and the monitoring): they keep the numbers and names of
PanDAWMS/pilot3 ``pilot/common/errorcodes.py``. There is one catalogue, :class:`ErrorCode`, one row per code.

Every :class:`PilotError` carries exactly one code, fixed by its type; transfer errors pick the stage-in or the
stage-out code by their direction.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "BadFileNameError",
    "Direction",
    "ErrorCode",
    "JobDefinitionError",
    "LfnTooLongError",
    "ListLengthMismatchError",
    "MissingFieldError",
    "PilotError",
    "TransferError",
    "truncate_diag",
]


class ErrorCode(enum.IntEnum):
    """The catalogue: ``ErrorCode.STAGEINFAILED == 1099``, with ``.message`` and ``.recoverable``."""

    message: str
    recoverable: bool

    def __new__(cls, number: int, message: str, recoverable: bool = False) -> ErrorCode:
        obj = int.__new__(cls, number)
        obj._value_ = number
        obj.message = message
        obj.recoverable = recoverable
        return obj

    GENERALERROR = 1008, "General pilot error, consult batch log"
    NOLOCALSPACE = 1098, "Not enough local space"
    STAGEINFAILED = 1099, "Failed to stage-in file"
    REPLICANOTFOUND = 1100, "Replica not found"
    NOSUCHFILE = 1103, "No such file or directory"
    USERDIRTOOLARGE = 1104, "User work directory too large"
    STDOUTTOOBIG = 1106, "Payload log or stdout file too big"
    SETUPFAILURE = 1110, "Failed during payload setup"
    NFSSQLITE = 1115, "NFS SQLite locking problems"
    QUEUEDATA = 1116, "Pilot could not download queuedata"
    QUEUEDATANOTOK = 1117, "Pilot found non-valid queuedata"
    OUTPUTFILETOOLARGE = 1124, "Output file too large"
    NOSTORAGE = 1133, "Fetching default storage failed: no activity related storage defined"
    STAGEOUTFAILED = 1137, "Failed to stage-out file", True
    PUTMD5MISMATCH = 1141, "md5sum mismatch on output file", True
    CHMODTRF = 1143, "Failed to chmod transform"
    PANDAKILL = 1144, "This job was killed by panda server"
    GETMD5MISMATCH = 1145, "md5sum mismatch on input file"
    TRFDOWNLOADFAILURE = 1149, "Transform could not be downloaded"
    LOOPINGJOB = 1150, "Looping job killed by pilot"
    STAGEINTIMEOUT = 1151, "File transfer timed out during stage-in"
    STAGEOUTTIMEOUT = 1152, "File transfer timed out during stage-out", True
    NOPROXY = 1163, "Grid proxy not valid"
    MISSINGOUTPUTFILE = 1165, "Local output file is missing"
    SIZETOOLARGE = 1168, "Total file size too large"
    GETADMISMATCH = 1171, "adler32 mismatch on input file"
    PUTADMISMATCH = 1172, "adler32 mismatch on output file"
    NOVOMSPROXY = 1177, "Voms proxy not valid"
    GETGLOBUSSYSERR = 1180, "Globus system error during stage-in"
    PUTGLOBUSSYSERR = 1181, "Globus system error during stage-out", True
    NOSOFTWAREDIR = 1186, "Software directory does not exist"
    NOPAYLOADMETADATA = 1187, "Payload metadata does not exist"
    LFNTOOLONG = 1190, "LFN too long (exceeding limit of 255 characters)"
    ZEROFILESIZE = 1191, "File size cannot be zero"
    MKDIR = 1199, "Failed to create directory"
    KILLSIGNAL = 1200, "Job terminated by unknown kill signal"
    SIGTERM = 1201, "Job killed by signal: SIGTERM"
    SIGQUIT = 1202, "Job killed by signal: SIGQUIT"
    SIGSEGV = 1203, "Job killed by signal: SIGSEGV"
    SIGXCPU = 1204, "Job killed by signal: SIGXCPU"
    USERKILL = 1205, "Job killed by user"
    SIGBUS = 1206, "Job killed by signal: SIGBUS"
    SIGUSR1 = 1207, "Job killed by signal: SIGUSR1"
    SIGINT = 1208, "Job killed by signal: SIGINT"
    MISSINGINSTALLATION = 1211, "Missing installation"
    PAYLOADOUTOFMEMORY = 1212, "Payload ran out of memory"
    REACHEDMAXTIME = 1213, "Reached batch system time limit"
    UNKNOWNPAYLOADFAILURE = 1220, "Job failed due to unknown reason (consult log file)"
    FILEEXISTS = 1221, "File already exists"
    BADALLOC = 1223, "Transform failed due to bad_alloc"
    ESRECOVERABLE = 1224, "Event service: recoverable error"
    ESFATAL = 1228, "Event service: fatal error"
    EXECUTEDCLONEJOB = 1234, "Clone job is already executed"
    PAYLOADEXCEEDMAXMEM = 1235, "Payload exceeded maximum allowed memory"
    FAILEDBYSERVER = 1236, "Failed by server"
    ESNOEVENTS = 1238, "Event service: no events"
    MESSAGEHANDLINGFAILURE = 1240, "Failed to handle message from payload"
    CHKSUMNOTSUP = 1242, "Query checksum is not supported"
    NORELEASEFOUND = 1244, "No release candidates found"
    NOUSERTARBALL = 1246, "User tarball could not be downloaded from PanDA server"
    BADXML = 1247, "Badly formed XML"
    NOTIMPLEMENTED = 1300, "The class or function is not implemented"
    UNKNOWNEXCEPTION = 1301, "An unknown pilot exception has occurred"
    CONVERSIONFAILURE = 1302, "Failed to convert object data"
    FILEHANDLINGFAILURE = 1303, "Failed during file handling"
    PAYLOADEXECUTIONFAILURE = 1305, "Failed to execute payload"
    SINGULARITYGENERALFAILURE = 1306, "Singularity/Apptainer: general failure"
    SINGULARITYNOLOOPDEVICES = 1307, "Singularity/Apptainer: No more available loop devices"
    SINGULARITYBINDPOINTFAILURE = 1308, "Singularity/Apptainer: Not mounting requested bind point"
    SINGULARITYIMAGEMOUNTFAILURE = 1309, "Singularity/Apptainer: Failed to mount image"
    PAYLOADEXECUTIONEXCEPTION = 1310, "Exception caught during payload execution"
    NOTDEFINED = 1311, "Not defined"
    NOTSAMELENGTH = 1312, "Not same length"
    NOSTORAGEPROTOCOL = 1313, "No protocol defined for storage endpoint"
    UNKNOWNCHECKSUMTYPE = 1314, "Unknown checksum type"
    UNKNOWNTRFFAILURE = 1315, "Unknown transform failure"
    RUCIOSERVICEUNAVAILABLE = 1316, "Rucio: Service unavailable"
    EXCEEDEDMAXWAITTIME = 1317, "Exceeded maximum waiting time"
    COMMUNICATIONFAILURE = 1318, "Failed to communicate with server"
    INTERNALPILOTPROBLEM = 1319, "An internal Pilot problem has occurred (consult Pilot log)"
    LOGFILECREATIONFAILURE = 1320, "Failed during creation of log file"
    RUCIOLOCATIONFAILED = 1321, "Failed to get client location for Rucio"
    RUCIOLISTREPLICASFAILED = 1322, "Failed to get replicas from Rucio"
    UNKNOWNCOPYTOOL = 1323, "Unknown copy tool"
    SERVICENOTAVAILABLE = 1324, "Service not available at the moment"
    SINGULARITYNOTINSTALLED = 1325, "Singularity: not installed"
    NOREPLICAS = 1326, "No matching replicas were found in list_replicas() output"
    UNREACHABLENETWORK = 1327, "Unable to stage-in file since network is unreachable"
    PAYLOADSIGSEGV = 1328, "SIGSEGV: Invalid memory reference or a segmentation fault"
    NONDETERMINISTICDDM = 1329, "Failed to construct SURL for non-deterministic ddm (update CRIC)"
    JSONRETRIEVALTIMEOUT = 1330, "JSON retrieval timed out"
    MISSINGINPUTFILE = 1331, "Input file is missing in storage element"
    BLACKHOLE = 1332, "Black hole detected in file system (consult Pilot log)"
    NOREMOTESPACE = 1333, "No space left on device"
    SETUPFATAL = 1334, "Setup failed with a fatal exception (consult Payload log)"
    MISSINGUSERCODE = 1335, "User code not available on PanDA server (resubmit task with --useNewCode)"
    JOBALREADYRUNNING = 1336, "Job is already running elsewhere"
    BADMEMORYMONITORJSON = 1337, "Memory monitor produced bad output"
    STAGEINAUTHENTICATIONFAILURE = 1338, "Authentication failure during stage-in"
    DBRELEASEFAILURE = 1339, "Local DBRelease handling failed (consult Pilot log)"
    SINGULARITYNEWUSERNAMESPACE = 1340, "Singularity/Apptainer: Failed invoking the NEWUSER namespace runtime"
    BADQUEUECONFIGURATION = 1341, "Bad queue configuration detected"
    MIDDLEWAREIMPORTFAILURE = 1342, "Failed to import middleware (consult Pilot log)"
    NOOUTPUTINJOBREPORT = 1343, "Found no output in job report"
    RESOURCEUNAVAILABLE = 1344, "Resource temporarily unavailable"
    SINGULARITYFAILEDUSERNAMESPACE = 1345, "Singularity/Apptainer: Failed to create user namespace"
    TRANSFORMNOTFOUND = 1346, "Transform not found"
    UNSUPPORTEDSL5OS = 1347, "Unsupported SL5 OS"
    SINGULARITYRESOURCEUNAVAILABLE = 1348, "Singularity/Apptainer: Resource temporarily unavailable"
    UNRECOGNIZEDTRFARGUMENTS = 1349, "Unrecognized transform arguments"
    EMPTYOUTPUTFILE = 1350, "Empty output file detected"
    UNRECOGNIZEDTRFSTDERR = 1351, "Unrecognized fatal error in transform stderr"
    STATFILEPROBLEM = 1352, "Failed to stat proc file for CPU consumption calculation"
    NOSUCHPROCESS = 1353, "CPU consumption calculation failed: No such process"
    GENERALCPUCALCPROBLEM = 1354, "General CPU consumption calculation problem (consult Pilot log)"
    COREDUMP = 1355, "Core dump detected"
    PREPROCESSFAILURE = 1356, "Pre-process command failed"
    POSTPROCESSFAILURE = 1357, "Post-process command failed"
    MISSINGRELEASEUNPACKED = 1358, "Missing release setup in unpacked container"
    PANDAQUEUENOTACTIVE = 1359, "PanDA queue is not active"
    IMAGENOTFOUND = 1360, "Image not found"
    REMOTEFILECOULDNOTBEOPENED = 1361, "Remote file could not be opened"
    XRDCPERROR = 1362, "Xrdcp was unable to open file"
    KILLPAYLOAD = 1363, "Raythena has decided to kill payload"
    MISSINGCREDENTIALS = 1364, "Unable to locate credentials for S3 transfer"
    NOCTYPES = 1365, "Python module ctypes not available on worker node"
    CHECKSUMCALCFAILURE = 1366, "Failure during checksum calculation"
    COMMANDTIMEDOUT = 1367, "Command timed out"
    REMOTEFILEOPENTIMEDOUT = 1368, "Remote file open timed out"
    FRONTIER = 1369, "Frontier error"
    VOMSPROXYABOUTTOEXPIRE = 1370, "VOMS proxy is about to expire"
    BADOUTPUTFILENAME = 1371, "Output file name contains illegal characters"
    APPTAINERNOTINSTALLED = 1372, "Apptainer: not installed"
    CERTIFICATEHASEXPIRED = 1373, "Certificate has expired"
    REMOTEFILEDICTDOESNOTEXIST = 1374, "Remote file open dictionary does not exist"
    LEASETIME = 1375, "Lease time is up"
    LOGCREATIONTIMEOUT = 1376, "Log file creation timed out"
    CVMFSISNOTALIVE = 1377, "CVMFS is not responding"
    LSETUPTIMEDOUT = 1378, "Lsetup command timed out during remote file open"
    PREEMPTION = 1379, "Job was preempted"
    ARCPROXYFAILURE = 1380, "General arcproxy failure"
    ARCPROXYLIBFAILURE = 1381, "Arcproxy failure while loading shared libraries"
    PROXYTOOSHORT = 1382, "Proxy is too short"
    STAGEOUTAUTHENTICATIONFAILURE = 1383, "Authentication failure during stage-out"
    QUEUENOTSETUPFORCONTAINERS = 1384, "Queue is not set up for containers"
    NOJOBSINPANDA = 1385, "No jobs in PanDA"
    PANDAQUEUENOTONLINE = 1386, "PanDA queue is not online"


class Direction(enum.Enum):
    """Which way a transfer goes; transfer errors pick their code by it."""

    STAGE_IN = "stage-in"
    STAGE_OUT = "stage-out"


class PilotError(Exception):
    """Base of every error the pilot raises; carries exactly one :class:`ErrorCode`.

    Subclasses fix the code with the class attribute ``code`` (a transfer error sets it from its direction).
    ``str(err)`` is the message with the facts.
    """

    code: ErrorCode = ErrorCode.GENERALERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.message)

    @property
    def message(self) -> str:
        """The message given when raised (or the catalogue's message)."""
        return str(self.args[0])

    @property
    def diagnostics(self) -> str:
        """What the server gets as ``pilotErrorDiag``: the message, truncated as the server truncates it."""
        return truncate_diag(self.message)


def truncate_diag(text: str, limit: int = 500) -> str:
    """Truncate a diagnostic as the PanDA server does (it keeps 500 characters)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


class TransferError(PilotError):
    """A file transfer failed; the code is the stage-in or the stage-out one, by direction.

    Subclasses set ``codes = (stage-in code, stage-out code)``.
    """

    codes: ClassVar[tuple[ErrorCode, ErrorCode]] = (ErrorCode.STAGEINFAILED, ErrorCode.STAGEOUTFAILED)

    def __init__(self, message: str, direction: Direction) -> None:
        self.direction = direction
        self.code = self.codes[0] if direction is Direction.STAGE_IN else self.codes[1]
        super().__init__(message)
