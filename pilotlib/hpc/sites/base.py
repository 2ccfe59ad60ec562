"""What a site profile is: where a rank's jobs run, how their environment is set up, and what is done around them.

A site profile is plain Python (one small module per site, like Parsl's site configs) made from the pilot's
``--site-option KEY=VALUE`` settings, and found through the ``pilotlib.hpc_sites`` entry-point group
(:mod:`pilotlib.hpc.sites`), so a site adds its own without editing pilotlib.

The profile never holds the pilot's own state (final reports, journal, log): those stay in the state directory the
app chooses, on the shared file system, never on a RAM disk that disappears with the allocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from pilotlib.errors import SetupFailureError
from pilotlib.hpc.ranks import RankPlace
from pilotlib.pipeline import JobRun

__all__ = ["SiteProfile", "option_float", "option_list"]


class SiteProfile(Protocol):
    """A site's preparation of its ranks' jobs (see the module)."""

    #: copytools that bring the inputs from Harvester's job directory into the work directory (``symlink``: Harvester's
    #: links are used where they are; ``cp``: the inputs are copied, e.g. onto a RAM disk).
    copytools_in: tuple[str, ...]
    #: shell lines run before each payload in the payload's own shell (a set-up script, ``module load`` lines).
    payload_setup: tuple[str, ...]
    #: bytes the work area must keep free while a payload runs.
    free_space_limit: int

    def work_area(self, access_point: Path, place: RankPlace) -> Path:
        """The directory under which this rank's jobs get their work directories (``<area>/<PandaID>``)."""
        ...

    def prepare(self, run: JobRun) -> None:
        """Make ``run.workdir`` ready before its inputs come in (check its space, copy auxiliary files).

        Raises:
            pilotlib.errors.PilotError: the job cannot run here (with its code: NOLOCALSPACE 1098, ...).
        """
        ...

    def finish(self, work_area: Path) -> None:
        """Clean up what the profile made once the rank's jobs are over (every job reported)."""
        ...


def option_list(options: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A comma-separated option as a tuple of its non-empty items."""
    return tuple(item.strip() for item in options.get(key, "").split(",") if item.strip())


def option_float(options: Mapping[str, str], key: str, default: float) -> float:
    """A number option.

    Raises:
        SetupFailureError: it is not a number (SETUPFAILURE 1110).
    """
    text = options.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise SetupFailureError(f"site option {key}={text!r} is not a number") from None
