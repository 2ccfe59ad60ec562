"""The generic site: jobs run on the shared file system beside Harvester's directories, inputs used where they are.

Options (``--site-option KEY=VALUE``):

- ``workdir``: the directory of the rank's work areas (default ``<access point>/.hpc-pilot/work``); each rank gets
  ``<workdir>/rank-<N>``;
- ``setup``: a script each payload's shell sources first (the site's environment);
- ``modules``: comma-separated environment modules to ``module load`` before the payload;
- ``min_free_mb``: MB the work area must keep free while a payload runs (default 1000).
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Mapping
from pathlib import Path

import attrs

from pilotlib.hpc.ranks import RankPlace
from pilotlib.hpc.sites.base import option_float, option_list
from pilotlib.pipeline import JobRun
from pilotlib.space import MB

__all__ = ["GenericSite", "payload_setup_lines"]


def payload_setup_lines(options: Mapping[str, str]) -> tuple[str, ...]:
    """The shell lines of the ``setup`` and ``modules`` options (quoted: a path or module name is never code)."""
    lines = []
    if options.get("setup"):
        lines.append(f"source {shlex.quote(options['setup'])}")
    lines.extend(f"module load {shlex.quote(name)}" for name in option_list(options, "modules"))
    return tuple(lines)


@attrs.frozen
class GenericSite:
    """The generic profile (see the module)."""

    workdir: Path | None = None
    payload_setup: tuple[str, ...] = ()
    free_space_limit: int = 1000 * MB
    copytools_in: tuple[str, ...] = ("symlink",)

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> GenericSite:
        """The profile of the site options.

        Raises:
            SetupFailureError: an option is not valid (1110).
        """
        workdir = Path(options["workdir"]) if options.get("workdir") else None
        return cls(workdir, payload_setup_lines(options), int(option_float(options, "min_free_mb", 1000) * MB))

    def work_area(self, access_point: Path, place: RankPlace) -> Path:
        """``<workdir>/rank-<N>`` (default workdir: ``<access point>/.hpc-pilot/work``)."""
        return (self.workdir or access_point / ".hpc-pilot" / "work") / f"rank-{place.rank}"

    def prepare(self, run: JobRun) -> None:
        """Nothing to prepare: the inputs are Harvester's links."""

    def finish(self, work_area: Path) -> None:
        """Remove the rank's work area once it is empty (the pilot empties each job's work directory once the job
        is reported; one left with files, e.g. a job not reported, stays)."""
        for folder in (*sorted(work_area.glob("*"), reverse=True), work_area):
            with contextlib.suppress(OSError):  # not empty, not a directory, or gone
                folder.rmdir()
