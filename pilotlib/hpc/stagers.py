"""The site profile's preparation, in front of the inputs' stage-in."""

from __future__ import annotations

from collections.abc import Sequence

from pilotlib.hpc.sites.base import SiteProfile
from pilotlib.pipeline import JobRun
from pilotlib.stages import InputStager
from pilotlib.stop import Stop
from pilotlib.transfer.base import TransferResult

__all__ = ["SiteInputStager"]


class SiteInputStager:
    """An :class:`~pilotlib.stages.InputStager` that lets the site profile prepare the work directory (check its
    space, copy auxiliary files) before ``inner`` brings the inputs in; a profile's error fails the job with its
    code, before any input is copied."""

    def __init__(self, profile: SiteProfile, inner: InputStager) -> None:
        self._profile = profile
        self._inner = inner

    def stage_in(self, run: JobRun, stop: Stop) -> Sequence[TransferResult]:
        """Prepare ``run.workdir`` (the profile), then stage the inputs in (``inner``).

        Raises:
            pilotlib.errors.PilotError: the profile's (e.g. NoLocalSpaceError 1098 on a full RAM disk).
        """
        self._profile.prepare(run)
        return self._inner.stage_in(run, stop)
