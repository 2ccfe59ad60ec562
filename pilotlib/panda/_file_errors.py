"""Errors of the launch-directory protocols (Harvester's shared files, the NorduGrid/ARC launch directory).

Each class fixes one PanDA error code (pilot3 ``pilot/common/errorcodes.py`` numbers, via
:class:`pilotlib.errors.ErrorCode`).
"""

from __future__ import annotations

from pilotlib.errors import ErrorCode, JobDefinitionError, PilotError

__all__ = [
    "BrokenJobFileError",
    "LaunchDirFileError",
    "LaunchDirFormatError",
    "LaunchDirTimeoutError",
    "OutputInfoError",
]


class LaunchDirFileError(PilotError):
    """A file of the launch directory could not be read, written, renamed or removed (FILEHANDLINGFAILURE)."""

    code = ErrorCode.FILEHANDLINGFAILURE


class LaunchDirFormatError(PilotError):
    """A value can not be written as, or read from, the JSON a launch-directory file holds (CONVERSIONFAILURE)."""

    code = ErrorCode.CONVERSIONFAILURE


class LaunchDirTimeoutError(PilotError):
    """Harvester did not answer a request file before the deadline (EXCEEDEDMAXWAITTIME)."""

    code = ErrorCode.EXCEEDEDMAXWAITTIME


class OutputInfoError(PilotError):
    """The output file information (the update's ``xml`` field) is malformed or incomplete (BADXML)."""

    code = ErrorCode.BADXML


class BrokenJobFileError(JobDefinitionError):
    """A job definition file was still incomplete or unreadable when the reading deadline passed.

    A :class:`~pilotlib.errors.JobDefinitionError` (CONVERSIONFAILURE) whose ``field`` is the file's path.
    """
