"""A tutorial pilot for a new experiment, MYEXP: the jobs of a JSON file, reported to a PanDA server that knows them::

    python examples/my_pilot.py --job job.json --url URL --workdir work --input-dir inputs --output-dir storage

A pilot is a kit of :mod:`pilotlib.workflow` parts; each numbered block is where a new pilot plugs in its own:

1. the job source, :class:`JsonJobSource`: any class with ``get_jobs`` (:class:`pilotlib.panda.base.JobSource`);
2. the mode, a :class:`~pilotlib.workflow.ModeParts`: that source, and the dispatcher client as the reporter;
3. the transfers: the installed ``cp`` copytool, inputs from one directory, outputs and logs to another;
4. the payload set-up: every payload starts from the site's environment plus the experiment's release;
5. the run: logging, signals and the lifeline around :func:`~pilotlib.workflow.run_pilot`, then the exit status.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentParser, Namespace
from collections.abc import Sequence
from pathlib import Path

from pilotlib import workflow
from pilotlib.job import Job, load_job_definitions
from pilotlib.panda.base import JobRequest
from pilotlib.payload import Lifeline, PayloadSettings
from pilotlib.space import MB
from pilotlib.stop import Stop
from pilotlib.transfer.registry import default_registry


class JsonJobSource:
    """1. The jobs of a JSON file, each handed out once (read at the first ask: a bad file is the pilot's error)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._jobs: list[Job] | None = None

    def get_jobs(self, request: JobRequest) -> Sequence[Job]:
        """Up to ``request.n_jobs`` jobs not handed out yet; none once the file is used up."""
        if self._jobs is None:
            self._jobs = list(load_job_definitions(self._path.read_bytes()))
        taken, self._jobs = self._jobs[: request.n_jobs], self._jobs[request.n_jobs :]
        return taken


def compose(args: Namespace, stop: Stop, state: workflow.PilotState, tied: Lifeline | None) -> workflow.PilotKit:
    """2.-4. The mode, the transfers, the payload set-up in a kit; it asks for jobs (for a day) until none are left."""
    env = dict(os.environ)  # the environment, read once: the proxy, the copytools' and the payloads' base
    mode = workflow.ModeParts(JsonJobSource(args.job), workflow.server_parts(args.url, environ=env, stop=stop).reporter)
    transfers = workflow.TransferStages(default_registry(env), args.input_dir, args.output_dir, state=state)
    payload = workflow.RunnerExecutor(PayloadSettings(base_env={**env, "MYEXP_RELEASE": "1.0"}), lifeline=tied)
    return workflow.PilotKit(mode, workflow.PilotConfig(args.workdir, timefloor=86400.0), state,
                             workflow.this_pilot("MYEXP", "my-pilot"), JobRequest("MYEXP", "MYEXP_QUEUE"),
                             stage_in=transfers, stage_out=transfers, log_out=transfers, payload=payload,
                             copytools=workflow.CopytoolChoice(("cp",), ("cp",)))


def main(argv: Sequence[str] | None = None) -> int:
    """5. Parse the options, run the pilot, print what it did; return the exit status."""
    parser = ArgumentParser(description="A tutorial pilot: the jobs of a JSON file, reported to PanDA.")
    parser.add_argument("--job", type=Path, required=True, help="the JSON job definition file")
    parser.add_argument("--url", required=True, help="the PanDA server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--workdir", type=Path, required=True, help="the work area (the pilot's state inside)")
    parser.add_argument("--input-dir", required=True, help="where the jobs' input files are")
    parser.add_argument("--output-dir", required=True, help="where outputs and logs go")
    args = parser.parse_args(argv)
    state = workflow.PilotState.at(args.workdir / "pilot-state", 4 * MB)  # final updates, journal, logs
    per_job = workflow.configure_logging(state)
    stop = Stop()
    with workflow.handle_signals(stop), workflow.tie_payloads() as tied:
        outcome = workflow.run_pilot(compose(args, stop, state, tied), stop,
                                     on_done=lambda run: per_job.close_job(run.job.panda_id))
    status = workflow.exit_code(outcome, stop)
    print(workflow.summary(outcome, state, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
