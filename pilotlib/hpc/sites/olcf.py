"""An OLCF-like site: each job runs on the node's RAM disk, apart from the shared file system.

As pilot3's Titan resource did (PanDAWMS/pilot3 ``pilot/resource/titan.py`` ``set_scratch_workdir``,
``process_jobreport``, ``postprocess_workdir``): the job's work directory is on ``/dev/shm``; before the job its free
space is checked, then the inputs and the auxiliary files the site names are copied in (not linked: the payload
must read from memory, not from the shared file system); afterwards the outputs, the log and the job report go back
to Harvester's job directory (the pilot's stage-out into the access point) and the RAM disk is cleaned.

Options (``--site-option KEY=VALUE``):

- ``ramdisk``: the RAM disk (default ``/dev/shm``); each rank works in ``<ramdisk>/pilotlib-<worker>/rank-<N>``;
- ``aux``: comma-separated files or directories copied into every job's work directory beforehand (a conditions
  database, a geometry file);
- ``min_free_mb``: MB that must stay free on the RAM disk beyond the job's inputs, auxiliary files and
  ``maxDiskCount`` (default 512), checked before anything is copied;
- ``setup``, ``modules``: as for the generic site.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import attrs

from pilotlib.errors import NoLocalSpaceError, SetupFailureError
from pilotlib.hpc.ranks import RankPlace
from pilotlib.hpc.sites.base import option_float, option_list
from pilotlib.hpc.sites.generic import payload_setup_lines
from pilotlib.pipeline import JobRun
from pilotlib.space import MB, free_bytes

__all__ = ["RamDiskSite"]

log = logging.getLogger(__name__)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size


@attrs.frozen
class RamDiskSite:
    """The OLCF-like profile (see the module)."""

    ramdisk: Path = Path("/dev/shm")  # noqa: S108 - the node's RAM disk is the point of this profile
    aux: tuple[Path, ...] = ()
    min_free: int = 512 * MB
    payload_setup: tuple[str, ...] = ()
    copytools_in: tuple[str, ...] = ("cp",)

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> RamDiskSite:
        """The profile of the site options.

        Raises:
            SetupFailureError: an option is not valid, or an auxiliary file is missing (1110).
        """
        aux = tuple(Path(item) for item in option_list(options, "aux"))
        missing = [str(p) for p in aux if not p.exists()]
        if missing:
            raise SetupFailureError(f"site option aux names files that do not exist: {', '.join(missing)}")
        return cls(Path(options.get("ramdisk") or "/dev/shm"), aux,  # noqa: S108
                   int(option_float(options, "min_free_mb", 512) * MB), payload_setup_lines(options))

    @property
    def free_space_limit(self) -> int:
        """Bytes the RAM disk keeps free while a payload runs: ``min_free_mb``."""
        return self.min_free

    def work_area(self, access_point: Path, place: RankPlace) -> Path:
        """``<ramdisk>/pilotlib-<worker>/rank-<N>`` (``<worker>``: the access point's name, unique per worker)."""
        return self.ramdisk / f"pilotlib-{access_point.name}" / f"rank-{place.rank}"

    def prepare(self, run: JobRun) -> None:
        """Check the RAM disk's free space for the job, then copy the auxiliary files in.

        Raises:
            NoLocalSpaceError: the inputs, auxiliary files and ``maxDiskCount`` would not fit with ``min_free_mb``
                left (NOLOCALSPACE 1098); nothing was copied.
            SetupFailureError: an auxiliary file cannot be copied (1110).
        """
        job, workdir = run.job, run.workdir
        inputs = sum(f.filesize or 0 for f in job.inputs)
        need = inputs + sum(_size(p) for p in self.aux) + job.max_disk_count * MB + self.min_free
        free = free_bytes(workdir)
        if free < need:
            raise NoLocalSpaceError(f"RAM disk {self.ramdisk} has {free} B free, job {job.panda_id} needs {need} B "
                                    f"(inputs {inputs} B, maxDiskCount {job.max_disk_count} MB, "
                                    f"min_free {self.min_free} B)")
        for source in self.aux:
            target = workdir / source.name
            try:
                if source.is_dir():
                    shutil.copytree(source, target, symlinks=True)
                else:
                    shutil.copyfile(source, target)
            except OSError as exc:
                raise SetupFailureError(f"auxiliary file {source} not copied to the RAM disk: {exc}") from exc
        log.info("ram disk ready panda_id=%s workdir=%s free=%d need=%d aux=%d", job.panda_id, workdir, free, need,
                 len(self.aux))

    def finish(self, work_area: Path) -> None:
        """Remove the rank's RAM-disk area, and the worker's folder once no rank uses it."""
        shutil.rmtree(work_area, ignore_errors=True)
        with contextlib.suppress(OSError):  # another rank still works there, or it is gone already
            work_area.parent.rmdir()
        log.info("ram disk cleaned area=%s", work_area)
