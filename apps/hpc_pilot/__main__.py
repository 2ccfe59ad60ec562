"""``hpc-pilot``: PanDA jobs on HPC under Harvester (MPI ranks, work directories on a RAM disk).

Not built yet: it is on the roadmap after containers and the event service. The command exists so that the package's
console scripts are stable; it says so and exits with status 2 instead of pretending to run anything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Explain that the HPC pilot is not available yet; exit status 2."""
    del argv
    print("hpc-pilot: not available yet in this release; use grid-pilot --mode harvester for Harvester workers",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
