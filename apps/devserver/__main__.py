"""``pilot-devserver``: run a local PanDA server for a pilot under development.

One line: ``pilot-devserver --port 8080 --jobs examples/jobs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from panda_devserver import DevServer, DevServerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pilot-devserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 for a free one)")
    parser.add_argument("--jobs", type=Path, action="append", default=[],
                        help="a job definition file or a directory of *.json job files (repeatable)")
    parser.add_argument("--queue", type=Path, action="append", default=[],
                        help="a queue description JSON file, served under its 'name' field (repeatable)")
    parser.add_argument("--storages", type=Path, action="append", default=[],
                        help="a ddmendpoints.json file of storage (DDM endpoint) descriptions (repeatable)")
    parser.add_argument("--legacy", action="store_true",
                        help="also serve the legacy dialect /server/panda/<method> (panda-server before 1.0); "
                             "by default only /api/v1/ is served, as panda-server 1.x does")
    parser.add_argument("--workdir", type=Path, help="where panda.sqlite lives (default: a new temporary directory)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a test CA generated in the workdir")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def _load(server: DevServer, jobs: Sequence[Path], queues: Sequence[Path], storages: Sequence[Path] = ()) -> None:
    for path in jobs:
        ids = server.add_jobs_from(path) if path.is_dir() else server.add_job(path)
        logging.info("jobs queued from=%s panda_ids=%s", path, ids)
    for path in queues:
        description = json.loads(path.read_text())
        if not isinstance(description, dict):
            raise ValueError(f"{path}: a queue description must be a JSON object")
        name = description.get("name") or description.get("nickname") or path.stem
        server.add_queue(str(name), description)
    for path in storages:
        logging.info("storages served from=%s names=%s", path, server.add_storages_from(path))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pilot-devserver-"))
    try:
        server = DevServer(workdir, tls=args.tls, host=args.host, port=args.port, legacy=args.legacy)
        _load(server, args.jobs, args.queue, args.storages)
    except (DevServerError, OSError, ValueError) as exc:
        print(f"pilot-devserver: {exc}", file=sys.stderr)
        return 2
    if server.ca_dir:
        print(f"CA directory for clients: {server.ca_dir}", file=sys.stderr)
    # the URL, with the port actually bound (--port 0 picks a free one), is logged when serving starts
    print(f"pilot-devserver database {workdir / 'panda.sqlite'}", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
