"""The job: frozen value objects for a PanDA job, its files and its states.

A job definition arrives from the dispatcher, from Harvester's job file or from an ARC CE's launch directory as a flat
dictionary whose per-file fields are comma-separated parallel lists. :func:`parse_job` turns it into a :class:`Job`
once, at the boundary; :func:`job_to_wire` gives the wire dictionary back (a definition parsed and serialised again
gives the same dictionary). :func:`load_job_definitions` reads every shape a definition file or answer comes in:
a JSON object, Harvester's ``{"<PandaID>": {...}}`` wrapper, a JSON list, or the url-encoded form.

Parsing errors are :class:`pilotlib.errors.JobDefinitionError` subclasses naming the field and the value, each with
its PanDA error code. Nothing else in pilotlib sees a raw server dictionary.
"""

from pilotlib._jobmodel import FileKind, FileSpec, Job, JobState, can_transition, is_secret_field
from pilotlib._jobwire import MAX_LFN_LENGTH, job_to_wire, load_job_definitions, parse_job

__all__ = [
    "MAX_LFN_LENGTH",
    "FileKind",
    "FileSpec",
    "Job",
    "JobState",
    "can_transition",
    "is_secret_field",
    "job_to_wire",
    "load_job_definitions",
    "parse_job",
]
