"""pilotlib: a toolkit for building PanDA pilots.

The public API is re-exported here; submodules whose names start with ``_`` are private.
"""

from pilotlib.errors import ErrorCode, PilotError
from pilotlib.job import FileKind, FileSpec, Job, JobState, job_to_wire, load_job_definitions, parse_job

__all__ = [
    "ErrorCode",
    "FileKind",
    "FileSpec",
    "Job",
    "JobState",
    "PilotError",
    "job_to_wire",
    "load_job_definitions",
    "parse_job",
]
__version__ = "0.1.0"
