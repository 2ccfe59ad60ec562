"""The grid pilot's settings: one frozen value built once from the command line and the config file."""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from pathlib import Path

import attrs

from pilotlib.space import MB
from pilotlib.workflow import PilotConfig

__all__ = ["HARVESTER_FILES", "STATE_DIR_NAME", "Mode", "Settings"]

#: The state directory's name in the work area when ``state_dir`` is not given.
STATE_DIR_NAME = "pilot-state"

#: Harvester's file names the pilot can be given: the ``--harvester-<option>`` (and config key), the
#: ``[payload_interaction]`` key of Harvester's configuration it mirrors, and the
#: :class:`~pilotlib.panda.harvester.HarvesterFiles` attribute it sets. The setting is ``harvester_<option>``.
HARVESTER_FILES = (
    ("job-file", "jobSpecFile", "job_file"), ("pandaids-file", "pandaIDsFile", "panda_ids"),
    ("request-file", "jobRequestFile", "job_request"), ("attributes-file", "workerAttributesFile", "worker_attributes"),
    ("report-file", "jobReportFile", "job_report"), ("event-status-file", "eventStatusDumpJsonFile", "event_status"),
    ("event-request-file", "eventRequestFile", "event_request"),
    ("event-ranges-file", "eventRangesFile", "event_ranges"), ("kill-file", "killWorkerFile", "kill_worker"),
    ("heartbeat-file", "heartbeatFile", "heartbeat"),
)


class Mode(enum.Enum):
    """Where jobs come from and where updates go."""

    SERVER = "server"  # the PanDA dispatcher
    HARVESTER = "harvester"  # Harvester's shared files in the access point
    ARC = "arc"  # a NorduGrid/ARC CE's launch directory, no server


#: The library's defaults of a pilot, which the settings keep unless told otherwise.
_PILOT = PilotConfig(Path("."))


def _frozen_environ(env: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(env))


@attrs.frozen
class Settings:
    """Everything the grid pilot needs, already checked.

    Attributes:
        mode: server, harvester or arc.
        queue: the PanDA queue (``computingElement``); ``site`` the site name (``siteName``), default the queue.
        url: the dispatcher's base URL (server mode); ``api`` its dialect, ``v1`` (panda-server 1.x, the
            default) or ``legacy`` (servers before 1.0).
        job_label: ``prodSourceLabel`` asked for (``managed``, ``user``, ``ptest``, ...).
        workdir: the pilot's work area; each job runs in ``<workdir>/<PandaID>``.
        state_dir: the pilot's own state (final updates until acknowledged, the journal of jobs started, the pilot's
            logs), kept apart from the jobs' work directories so that it never depends on the space they use (None:
            ``<workdir>/pilot-state``; point it at another file system, e.g. when the work area is a RAM disk).
        lifetime: seconds the pilot may live (the queue's ``maxtime`` shortens it); ``timefloor`` seconds during
            which a multi-job pilot keeps asking (None: the queue's ``timefloor``, else 0).
        max_jobs: the most jobs this pilot runs (0: as many as the lifetime allows).
        harvester_workdir: the access point (harvester mode); ``launch_dir`` the ARC launch directory.
        harvester_stageout: ``pilot`` (the pilot stages outputs and the log out and declares what it transferred in
            ``event_status.dump.json``) or ``harvester`` (the pilot copies them into the access point and declares
            them there for Harvester's stager).
        harvester_per_job_dirs: each job's files are in ``<access point>/<PandaID>/`` (Harvester's ``MT_MultiJobs``).
        harvester_job_file, harvester_pandaids_file, harvester_request_file, harvester_attributes_file,
            harvester_report_file, harvester_event_status_file, harvester_event_request_file,
            harvester_event_ranges_file, harvester_kill_file, harvester_heartbeat_file: Harvester's file names
            (``[payload_interaction]`` ``jobSpecFile``, ``pandaIDsFile``, ``jobRequestFile``,
            ``workerAttributesFile``, ``jobReportFile``, ``eventStatusDumpJsonFile``, ``eventRequestFile``,
            ``eventRangesFile``, ``killWorkerFile``, ``heartbeatFile``); empty: Harvester's default.
        input_url: where inputs are when their storage (``ddmEndPointIn``) is not described (development; a
            directory or ``root://`` URL; ``<input_url>/<lfn>``).
        output_url: where outputs and the log go when their storage is not described (a directory or URL).
        copytool_in, copytool_out: copytool names for stage-in and stage-out (and the log), in order of preference;
            empty: the queue's ``acopytools`` (``pr``, ``pw``, ``pl``), else ``mv``.
        queuedata_url: where the queue description is (``{pandaqueue}`` is replaced); empty in server mode:
            ``<url>/cache/schedconfig/{pandaqueue}.all.json``; ``none``: no download.
        storagedata_url: where the storage descriptions are; empty in server mode: ``<url>/cache/ddmendpoints.json``.
        queuedata_file, storagedata_file: local files with the descriptions, tried before the URLs.
        cache_dir: where downloaded descriptions are cached (default: the work area).
        heartbeat: seconds between heartbeats; ``final_retry`` seconds to keep trying the final update.
        in_flight: jobs between retrieval and report at once (2 lets the next job be fetched during a payload).
        cleanup: remove a job's work directory once its final update is acknowledged and its log staged out.
        log_level: ``DEBUG``, ``INFO``, ...; ``ca_path`` the CA directory (TLS is verified against it: the
            dispatcher, the descriptions, transformation downloads; the payload gets it as ``X509_CERT_DIR``).
        proxy: the X.509 proxy file (None: ``X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``); the dispatcher's
            client certificate, and the payload's ``X509_USER_PROXY``.
        token_file: the bearer token file the payload gets as ``BEARER_TOKEN_FILE`` (WLCG token discovery).
        payload_grace: seconds between SIGTERM and SIGKILL when stopping a payload.
        looping_limit: seconds without a file modified in the work directory before the job counts as looping.
        memory_limit_kb: the payload's PSS limit (0: from the job's resource type, cores and the queue's ``maxrss``).
        free_space_limit_mb: MB (10**6 B) the work area must have free before a job is asked for (pilot3
            ``free_space_limit``, 2 GB); ``free_space_limit_running_mb`` before the payload and while it runs (1 GB).
        state_reserve_mb: MB the state directory keeps preallocated for the pilot's own state on a full disk (0: none).
        container_runtime: the payload's container runtime when the queue names none (``bubblewrap``, ``podman``,
            ``apptainer``, ``singularity``; "": none).
        container_image: the image for a job that names none, when the queue or ``container_runtime`` asks for a
            container ("": none).
        middleware_image: the image stage-in and stage-out run a copytool in when it is not usable on the node and
            the queue's ``container_type`` names a middleware container (pilot3's ``middleware_container``; "": none).
        platform_images: images by platform (``x86_64-el9``: the architecture and OS of a job's ``cmtConfig``) for
            a job that names none; before ``container_image``.
        environ: the pilot's environment, read once when the settings are built
            (:func:`~apps.grid_pilot.cli.parse_settings` copies ``os.environ``, or the environment it is given) and
            kept as a read-only copy; nothing else in the pilot or in pilotlib reads the environment. It gives
            ``X509_USER_PROXY`` (when ``proxy`` is not given), the batch job's id (``SLURM_JOB_ID``) and the
            payload's and the copytools' base environment. Never in the settings' repr (it may hold secrets);
            empty by default (a test gives the settings an environment).
    """

    mode: Mode = Mode.SERVER
    queue: str = ""
    site: str = ""
    url: str = ""
    api: str = "v1"
    job_label: str = "managed"
    workdir: Path = attrs.field(default=Path("."), converter=Path)
    state_dir: Path | None = None
    lifetime: float = _PILOT.lifetime
    timefloor: float | None = None
    max_jobs: int = _PILOT.max_jobs
    harvester_workdir: Path | None = None
    launch_dir: Path | None = None
    harvester_stageout: str = "pilot"
    harvester_per_job_dirs: bool = False
    harvester_job_file: str = ""
    harvester_pandaids_file: str = ""
    harvester_request_file: str = ""
    harvester_attributes_file: str = ""
    harvester_report_file: str = ""
    harvester_event_status_file: str = ""
    harvester_event_request_file: str = ""
    harvester_event_ranges_file: str = ""
    harvester_kill_file: str = ""
    harvester_heartbeat_file: str = ""
    input_url: str = ""
    output_url: str = ""
    copytool_in: tuple[str, ...] = ()
    copytool_out: tuple[str, ...] = ()
    queuedata_url: str = ""
    storagedata_url: str = ""
    queuedata_file: Path | None = None
    storagedata_file: Path | None = None
    cache_dir: Path | None = None
    heartbeat: float = _PILOT.heartbeat
    final_retry: float = _PILOT.final_retry
    in_flight: int = _PILOT.in_flight
    cleanup: bool = _PILOT.cleanup
    log_level: str = "INFO"
    ca_path: Path | None = None
    proxy: Path | None = None
    token_file: Path | None = None
    payload_grace: float = 30.0
    looping_limit: float = 7200.0
    memory_limit_kb: int = 0
    free_space_limit_mb: int = _PILOT.free_space_limit // MB
    free_space_limit_running_mb: int = 1000
    state_reserve_mb: int = 4
    container_runtime: str = ""
    container_image: str = ""
    middleware_image: str = ""
    platform_images: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_environ)
    environ: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_environ, repr=False,
                                             eq=False)

    @property
    def queuedata_source(self) -> str:
        """The queue description's URL template ("" for none)."""
        return _url_or_default(self.queuedata_url, self, "/cache/schedconfig/{pandaqueue}.all.json")

    @property
    def storagedata_source(self) -> str:
        """The storage descriptions' URL ("" for none)."""
        return _url_or_default(self.storagedata_url, self, "/cache/ddmendpoints.json")

    @property
    def state_path(self) -> Path:
        """The pilot's state directory (``state_dir``, else ``<workdir>/pilot-state``)."""
        return self.state_dir if self.state_dir is not None else self.workdir / STATE_DIR_NAME

    @property
    def batch_id(self) -> str:
        """The batch system's job id (``SLURM_JOB_ID`` of :attr:`environ`; "" outside a batch job)."""
        return self.environ.get("SLURM_JOB_ID", "")

    @property
    def site_name(self) -> str:
        """The site name, defaulting to the queue."""
        return self.site or self.queue

    @property
    def harvester_names(self) -> dict[str, str]:
        """Harvester's file names given (``--harvester-<option>``: the name), from :data:`HARVESTER_FILES`."""
        given = ((option, getattr(self, "harvester_" + option.replace("-", "_"))) for option, _k, _a in HARVESTER_FILES)
        return {option: name for option, name in given if name}


def _url_or_default(given: str, settings: Settings, path: str) -> str:
    if given.lower() == "none":
        return ""
    if given or settings.mode is not Mode.SERVER or not settings.url:
        return given
    return settings.url.rstrip("/") + path
