"""The README's run command (interim): parse the shipped example job definitions and print them.

This becomes the real pilot running the example job end to end once the grid pilot exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pilotlib.errors import PilotError
from pilotlib.job import load_job_definitions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"


def main() -> int:
    """Parse every example job definition and print a summary of each."""
    status = 0
    for path in sorted(EXAMPLES.glob("*")):
        try:
            jobs = load_job_definitions(path.read_bytes())
        except PilotError as exc:
            print(f"{path.name}: error {exc.code.value} {exc.code.name}: {exc}")
            status = 1
            continue
        for job in jobs:
            print(
                f"{path.name}: PandaID={job.panda_id} label={job.prod_source_label} "
                f"inputs={[f.lfn for f in job.inputs]} outputs={[f.lfn for f in job.outputs]} "
                f"log={job.log.lfn if job.log else None}"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
