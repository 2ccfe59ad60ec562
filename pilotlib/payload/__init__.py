"""Payload execution and monitoring: build the command, run it in its own session, watch it, measure it, diagnose it.

Typical use (the payload stage of a pipeline)::

    command = build_command(job, workdir, PayloadSettings(base_env=env, proxy_path=proxy))
    runner = PayloadRunner(command, monitors=[WalltimeMonitor(max_seconds=job.max_walltime or None),
                                              LoopingMonitor(), MemoryMonitor(limit_kb=2_000_000 * job.core_count)])
    runner.start()
    result = runner.wait(stop)          # other threads: runner.usage(), runner.request_kill(PandaKillError())
    if result.error is not None: ...    # the job fails with result.error.code
"""

from pilotlib.payload._command import (
    MAX_ARG_BYTES,
    MAX_JOB_PARS_BYTES,
    PayloadCommand,
    PayloadSettings,
    build_command,
    download_transformation,
    payload_env,
    resolve_transformation,
)
from pilotlib.payload._diagnosis import Diagnosis, PayloadOutcome, diagnose
from pilotlib.payload._environment import (
    PRIVATE_PREFIXES,
    PRIVATE_VARIABLES,
    PayloadIdentity,
    parse_queue_environ,
    payload_environment,
)
from pilotlib.payload._jobmetrics import JOB_METRICS_LIMIT, build_job_metrics
from pilotlib.payload._lifeline import KILL_SECONDS, Lifeline
from pilotlib.payload._memlimit import DEFAULT_MEMORY_PER_CORE_MB, memory_limit_kb
from pilotlib.payload._monitors import (
    FreeDiskMonitor,
    LoopingMonitor,
    MemoryMonitor,
    Monitor,
    MonitorContext,
    StdoutSizeMonitor,
    WalltimeMonitor,
    WorkdirSizeMonitor,
)
from pilotlib.payload._runner import (
    CommandWrapper,
    IdentityWrapper,
    PayloadResult,
    PayloadRunner,
    StdinMode,
)
from pilotlib.payload._split import split_args
from pilotlib.payload._usage import ResourceSnapshot, ResourceUsage, read_prmon_summary, sample_session
from pilotlib.payload.errors import (
    LoopingJobError,
    MemoryLimitExceededError,
    NoLocalSpaceError,
    PandaKillError,
    PayloadError,
    PayloadExecutionError,
    PayloadKilledError,
    PayloadStartError,
    ReachedMaxTimeError,
    StdoutTooBigError,
    TransformNotFoundError,
    TrfChmodError,
    TrfDownloadError,
    UserDirTooLargeError,
)

__all__ = [
    "DEFAULT_MEMORY_PER_CORE_MB",
    "JOB_METRICS_LIMIT",
    "KILL_SECONDS",
    "MAX_ARG_BYTES",
    "MAX_JOB_PARS_BYTES",
    "PRIVATE_PREFIXES",
    "PRIVATE_VARIABLES",
    "CommandWrapper",
    "Diagnosis",
    "FreeDiskMonitor",
    "IdentityWrapper",
    "Lifeline",
    "LoopingJobError",
    "LoopingMonitor",
    "MemoryLimitExceededError",
    "MemoryMonitor",
    "Monitor",
    "MonitorContext",
    "NoLocalSpaceError",
    "PandaKillError",
    "PayloadCommand",
    "PayloadError",
    "PayloadExecutionError",
    "PayloadIdentity",
    "PayloadKilledError",
    "PayloadOutcome",
    "PayloadResult",
    "PayloadRunner",
    "PayloadSettings",
    "PayloadStartError",
    "ReachedMaxTimeError",
    "ResourceSnapshot",
    "ResourceUsage",
    "StdinMode",
    "StdoutSizeMonitor",
    "StdoutTooBigError",
    "TransformNotFoundError",
    "TrfChmodError",
    "TrfDownloadError",
    "UserDirTooLargeError",
    "WalltimeMonitor",
    "WorkdirSizeMonitor",
    "build_command",
    "build_job_metrics",
    "diagnose",
    "download_transformation",
    "memory_limit_kb",
    "parse_queue_environ",
    "payload_env",
    "payload_environment",
    "read_prmon_summary",
    "resolve_transformation",
    "sample_session",
    "split_args",
]
