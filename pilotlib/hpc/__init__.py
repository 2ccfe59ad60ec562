"""PanDA jobs on an HPC allocation under Harvester: ranks, site profiles, and how rank 0 gathers the outcomes.

- :mod:`pilotlib.hpc.ranks`: which rank this process is (MPI through mpi4py, or the launcher's variables) and
  which of the worker's jobs it takes;
- :mod:`pilotlib.hpc.source`: the rank's jobs from Harvester's per-job directories;
- :mod:`pilotlib.hpc.sites`: site profiles (``generic``; ``olcf``, work directories on a RAM disk), plug-ins of the
  ``pilotlib.hpc_sites`` entry-point group;
- :mod:`pilotlib.hpc.gather`: each rank's liveness lock and outcome, rank 0's bounded wait for them;
- :mod:`pilotlib.hpc.reporter`: a job all ranks share (one event-service job) is reported by rank 0 alone;
- :mod:`pilotlib.hpc.timelimit`: the allocation's end from the batch system.

The rest of a rank's pilot is the ordinary pilot kit (:mod:`pilotlib.workflow`) in Harvester's mode: the same
pipeline, payload execution, containers and event service as the grid pilot.
"""

from pilotlib.hpc.gather import RankBoard, RankOutcome, RankStatus
from pilotlib.hpc.ranks import RankPlace, detect_rank, mpi_place, outside_mpi, slots
from pilotlib.hpc.reporter import SharedJobReporter
from pilotlib.hpc.sites import GenericSite, RamDiskSite, SiteProfile, load_site, site_names
from pilotlib.hpc.source import RankJobSource
from pilotlib.hpc.stagers import SiteInputStager
from pilotlib.hpc.timelimit import allocation_end

__all__ = [
    "GenericSite",
    "RamDiskSite",
    "RankBoard",
    "RankJobSource",
    "RankOutcome",
    "RankPlace",
    "RankStatus",
    "SharedJobReporter",
    "SiteInputStager",
    "SiteProfile",
    "allocation_end",
    "detect_rank",
    "load_site",
    "mpi_place",
    "outside_mpi",
    "site_names",
    "slots",
]
