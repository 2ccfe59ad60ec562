"""The NorduGrid/ARC launch directory: the job comes in a file, updates go to files, the CE uploads the outputs.

Facts relied on (PanDAWMS/pilot3):

- the CE places the job definition in the launch directory as ``pandaJobData.out`` (``pandajobdata`` in
  ``pilot/util/default.cfg``), url-encoded (JSON is accepted too); the pilot removes it once read
  (``pilot/control/job.py``, ``get_job_definition_from_file``);
- with server updates off, each would-be ``updateJob`` dictionary is written to ``heartbeat.json`` in the launch
  directory (``heartbeat_message`` in ``default.cfg``; ``write_heartbeat_to_file`` in ``pilot/control/job.py``);
- outputs for the CE to upload are listed in ``output.list`` in the launch directory, one
  ``<lfn> <url>:checksumtype=<type>:checksumvalue=<value>`` line per file (``create_output_list`` in
  ``pilot/copytool/mv.py``, which takes the type and value of the file's checksum, adler32 in practice).
  pilot3's ATLAS-specific rewrite of ``s3://`` URLs to a CERN Rucio proxy is not done here.

The reporter takes the outputs from the final update's ``xml`` field (``{lfn: {surl, adler32, ...}}``, the same
information the server would get), so a pipeline sends the same updates whichever reporter the app chose.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pilotlib.job import Job
from pilotlib.panda._file_errors import BrokenJobFileError, LaunchDirFileError, OutputInfoError
from pilotlib.panda._files import atomic_write_json, atomic_write_text, read_text
from pilotlib.panda._jobfile import Consume, consume_job_file, read_job_file
from pilotlib.panda.base import JobRequest, JobUpdate, UpdateAnswer
from pilotlib.stop import Stop

__all__ = [
    "ArcJobSource",
    "ArcOutput",
    "ArcReporter",
    "BrokenJobFileError",
    "Consume",
    "LaunchDirFileError",
    "OutputInfoError",
    "output_list_entries",
]

log = logging.getLogger(__name__)

JOB_FILE = "pandaJobData.out"
HEARTBEAT_FILE = "heartbeat.json"
OUTPUT_LIST = "output.list"


class ArcJobSource:
    """The one job an ARC CE placed in the launch directory (implements :class:`~pilotlib.panda.base.JobSource`).

    The first call returns the job (and removes the file, as pilot3 does); later calls return nothing.
    """

    def __init__(
        self,
        launch_dir: Path,
        *,
        job_file: str = JOB_FILE,
        consume: Consume = Consume.REMOVE,
        read_timeout: float = 10.0,
    ) -> None:
        """Create the source.

        Args:
            launch_dir: the directory the CE started the pilot in.
            job_file: the job definition's file name.
            consume: what to do with the file once read.
            read_timeout: seconds an incomplete file is read again before it is an error.
        """
        self._path = Path(launch_dir) / job_file
        self._consume = consume
        self._read_timeout = read_timeout
        self._done = False

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        """Return the launch directory's job the first time, then an empty sequence.

        Raises:
            pilotlib.errors.JobDefinitionError: the file holds a bad definition (or stayed incomplete).
            LaunchDirFileError: the file can not be read or removed.
        """
        if self._done:
            return ()
        jobs = read_job_file(self._path, timeout=self._read_timeout, interval=0.2, stop=Stop())
        self._done = True
        if not jobs:
            log.warning("no job definition in the launch directory path=%s", self._path)
            return ()
        consume_job_file(self._path, self._consume)
        log.info("took job from the launch directory panda_id=%s", jobs[0].panda_id)
        return jobs[: max(request.n_jobs, 1)]


@attrs.frozen
class ArcOutput:
    """One line of ``output.list``: a file the CE uploads after the job."""

    lfn: str
    url: str
    checksum_type: str
    checksum: str

    def line(self) -> str:
        """The ``output.list`` line (without the newline)."""
        return f"{self.lfn} {self.url}:checksumtype={self.checksum_type}:checksumvalue={self.checksum}"


def _xml_document(xml: Any) -> Mapping[str, Any]:
    document = xml
    if isinstance(xml, str):
        try:
            document = json.loads(xml) if xml.strip() else {}
        except json.JSONDecodeError as exc:
            raise OutputInfoError(f"the update's xml field is not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise OutputInfoError(f"the update's xml field must be an object by LFN, got {type(document).__name__}")
    return document


def _output(lfn: str, info: Any) -> ArcOutput:
    if not isinstance(info, Mapping):
        raise OutputInfoError(f"output {lfn}: the file information must be an object")
    url = info.get("surl") or info.get("turl")
    if not url or any(ch.isspace() for ch in str(url)) or any(ch.isspace() for ch in lfn) or not lfn:
        raise OutputInfoError(f"output {lfn!r}: no usable destination URL ({url!r})")
    for kind in ("adler32", "md5"):
        if info.get(kind):
            return ArcOutput(lfn=lfn, url=str(url), checksum_type=kind, checksum=str(info[kind]))
    raise OutputInfoError(f"output {lfn}: no adler32 or md5 checksum")


def output_list_entries(xml: Any) -> tuple[ArcOutput, ...]:
    """The ``output.list`` entries from an update's ``xml`` field (a mapping or its JSON text).

    Raises:
        OutputInfoError: the field is not an object by LFN, or a file has no URL or checksum (BADXML).
    """
    return tuple(_output(str(lfn), info) for lfn, info in _xml_document(xml).items())


class ArcReporter:
    """Would-be server updates into the launch directory (implements :class:`~pilotlib.panda.base.JobReporter`).

    Every update replaces ``heartbeat.json`` with the update dictionary (its fields plus ``jobId`` and ``state``).
    The final update first writes ``output.list`` from its ``xml`` field: lines for other LFNs already in the file
    are kept, a line for the same LFN is replaced. Answers are always accepted, without a command.
    """

    def __init__(
        self, launch_dir: Path, *, heartbeat_file: str = HEARTBEAT_FILE, output_list: str = OUTPUT_LIST
    ) -> None:
        """Create the reporter writing into ``launch_dir``."""
        self._heartbeat = Path(launch_dir) / heartbeat_file
        self._output_list = Path(launch_dir) / output_list

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        """Write the update; see the class description.

        Raises:
            OutputInfoError: the final update's ``xml`` field is malformed (BADXML); nothing is written then.
            LaunchDirFormatError: a field can not be written as JSON.
            LaunchDirFileError: a file can not be written.
        """
        if update.final and "xml" in update.fields:
            self.write_output_list(output_list_entries(update.fields["xml"]))
        data = dict(update.fields)
        data.update(jobId=update.panda_id, state=update.state)
        atomic_write_json(self._heartbeat, data, "heartbeat")
        log.info("wrote heartbeat file panda_id=%s state=%s final=%s", update.panda_id, update.state, update.final)
        return UpdateAnswer(accepted=True)

    def write_output_list(self, outputs: Sequence[ArcOutput]) -> None:
        """Add ``outputs`` to ``output.list`` (replacing lines of the same LFN), atomically.

        Raises:
            LaunchDirFileError: the file can not be written.
        """
        lines: dict[str, str] = {}
        for line in (read_text(self._output_list) or "").splitlines():
            if line.strip():
                lines[line.split(maxsplit=1)[0]] = line
        for output in outputs:
            lines[output.lfn] = output.line()
        atomic_write_text(self._output_list, "".join(line + "\n" for line in lines.values()))
        log.info("wrote output list path=%s files=%d", self._output_list, len(outputs))
