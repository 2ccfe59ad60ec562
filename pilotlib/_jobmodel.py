"""The job model (private: import it from :mod:`pilotlib.job`): frozen value objects for a job, files and states."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["FileKind", "FileSpec", "Job", "JobState", "can_transition"]


class FileKind(enum.Enum):
    """The role of a file in a job."""

    INPUT = "input"
    OUTPUT = "output"
    LOG = "log"


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def is_secret_field(name: str) -> bool:
    """Fields that carry credentials: ``secrets`` (user secrets), ``pilotSecrets``, ``pandaProxySecretKey``, ...

    Fact: PanDAWMS/panda-server ``pandaserver/api/v1/pilot_api.py`` (``secrets``, ``pilotSecrets``) and
    ``pandaserver/jobdispatcher/Protocol.py`` (``setPandaProxySecretKey``) put them into the job definition.
    """
    lowered = name.lower()
    return "secret" in lowered or "password" in lowered


def _redacted_repr(value: Mapping[str, Any]) -> str:
    """``repr`` of the unmodelled fields with credential values hidden (a job may be logged)."""
    shown = {key: ("<redacted>" if is_secret_field(str(key)) else item) for key, item in value.items()}
    return repr(shown)


@attrs.frozen
class FileSpec:
    """One input, output or log file of a job, as the job definition describes it.

    Attributes:
        lfn: the logical file name; a plain file name, never a path (validated when parsed).
        kind: input, output or log.
        scope: the Rucio scope (``scopeIn``/``scopeOut``/``scopeLog``).
        guid: the file's GUID (``GUID`` for inputs, ``logGUID`` for the log); outputs get one after the payload.
        filesize: bytes (``fsize``), inputs only.
        adler32: 8 hex digits, from ``checksum="ad:..."``.
        md5: 32 hex digits, from ``checksum="md5:..."``.
        dataset: ``realDatasetsIn`` / ``realDatasets``.
        ddmendpoint: the storage (``ddmEndPointIn`` / ``ddmEndPointOut``).
        dblock: ``dispatchDblock`` for inputs, ``destinationDblock`` for outputs.
        prod_dblock: ``prodDBlocks`` (inputs).
        storage_token: ``prodDBlockToken`` (inputs) or ``destinationDBlockToken`` (outputs).
        destination_se: ``fileDestinationSE`` (outputs).
        is_archive: an event-service merge job's input named ``zip://<lfn>``: an archive of range outputs, unpacked
            before the payload starts.
    """

    lfn: str
    kind: FileKind
    scope: str | None = None
    guid: str | None = None
    filesize: int | None = None
    adler32: str | None = None
    md5: str | None = None
    dataset: str | None = None
    ddmendpoint: str | None = None
    dblock: str | None = None
    prod_dblock: str | None = None
    storage_token: str | None = None
    destination_se: str | None = None
    is_archive: bool = False

    @property
    def did(self) -> str:
        """The Rucio data identifier ``scope:lfn``."""
        return f"{self.scope}:{self.lfn}"

    @property
    def checksum(self) -> str | None:
        """The checksum in the wire form (``ad:...`` preferred, else ``md5:...``)."""
        if self.adler32:
            return f"ad:{self.adler32}"
        if self.md5:
            return f"md5:{self.md5}"
        return None


class JobState(enum.Enum):
    """The pilot's states of a job, and the server state each one is reported as.

    The server knows ``starting``, ``running``, ``holding``, ``transferring``, ``finished`` and ``failed``; the pilot's
    internal states (``new``, ``stagein``, ``stageout``) are reported as the nearest server state.
    """

    NEW = "new"
    STARTING = "starting"
    STAGEIN = "stagein"
    RUNNING = "running"
    STAGEOUT = "stageout"
    TRANSFERRING = "transferring"
    HOLDING = "holding"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def server_state(self) -> str:
        """The state name the PanDA server expects in ``updateJob``."""
        return _SERVER_STATE.get(self, self.value)

    @property
    def is_final(self) -> bool:
        """True for the states after which the job is over for the pilot."""
        return self in (JobState.FINISHED, JobState.FAILED, JobState.HOLDING)


_SERVER_STATE = {
    JobState.NEW: "starting",
    JobState.STAGEIN: "starting",
    JobState.STAGEOUT: "running",
}

_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.NEW: frozenset({JobState.STARTING, JobState.STAGEIN, JobState.FAILED}),
    JobState.STARTING: frozenset({JobState.STAGEIN, JobState.RUNNING, JobState.FAILED, JobState.HOLDING}),
    JobState.STAGEIN: frozenset({JobState.RUNNING, JobState.FAILED, JobState.HOLDING}),
    JobState.RUNNING: frozenset(
        {JobState.STAGEOUT, JobState.TRANSFERRING, JobState.FINISHED, JobState.FAILED, JobState.HOLDING}
    ),
    JobState.STAGEOUT: frozenset({JobState.TRANSFERRING, JobState.FINISHED, JobState.FAILED, JobState.HOLDING}),
    JobState.TRANSFERRING: frozenset({JobState.FINISHED, JobState.FAILED, JobState.HOLDING}),
    JobState.HOLDING: frozenset({JobState.FINISHED, JobState.FAILED}),
    JobState.FINISHED: frozenset(),
    JobState.FAILED: frozenset(),
}


def can_transition(old: JobState, new: JobState) -> bool:
    """Whether a job may go from ``old`` to ``new`` (staying in the same state is always allowed)."""
    return old is new or new in _TRANSITIONS[old]


@attrs.frozen
class Job:
    """A PanDA job as the pilot sees it: identity, software, files, resources and flags.

    Build one with :func:`parse_job`; change one with :func:`attrs.evolve`. ``extra`` keeps every field pilotlib does
    not model, so that :func:`job_to_wire` gives back what came in; its credential fields (``secrets``,
    ``pilotSecrets``, ``pandaProxySecretKey``) are kept but never shown by ``repr``.
    """

    panda_id: int
    jobset_id: int | None = None
    task_id: int | None = None
    attempt_nr: int = 0
    prod_source_label: str = ""
    job_name: str = ""
    sw_release: str = ""
    homepackage: str = ""
    transformation: str = ""
    job_pars: str = ""
    job_pars_base64: bool = False
    cmtconfig: str = ""
    container_name: str = ""
    processing_type: str = ""
    current_priority: int | None = None
    inputs: tuple[FileSpec, ...] = ()
    outputs: tuple[FileSpec, ...] = ()
    log: FileSpec | None = None
    destination_se: str = ""
    max_cpu_count: int = 0
    min_ram_count: int = 0
    max_disk_count: int = 0
    core_count: int = 1
    max_walltime: int = 0
    resource_type: str = ""
    event_service: bool = False
    event_service_merge: bool = False
    write_to_file: str = ""
    transfer_type: str = ""
    alt_stage_out: str = ""
    allow_no_output: tuple[str, ...] = ()
    looping_check: bool = True
    debug: bool = False
    is_hpo: bool = False
    use_vp: bool = False
    no_exec_str_cnv: bool = False
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping, repr=_redacted_repr)
    source: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping, repr=False, eq=False)

    @property
    def is_analysis(self) -> bool:
        """A user analysis job (``prodSourceLabel`` user or panda)."""
        return self.prod_source_label in ("user", "panda")

    @property
    def direct_access_requested(self) -> bool:
        """The job asks for direct access to its inputs (``transferType=direct`` or ``--accessmode=direct``)."""
        if "--accessmode=copy" in self.job_pars or "--useLocalIO" in self.job_pars:
            return False
        return self.transfer_type == "direct" or "--accessmode=direct" in self.job_pars

    @property
    def all_files(self) -> tuple[FileSpec, ...]:
        """Inputs, outputs and the log."""
        return self.inputs + self.outputs + ((self.log,) if self.log else ())
