"""Helpers of the end-to-end tests: job definitions, payload scripts, and the file copytool stand-in.

GAP (noted in the report): the transfer area's ``mv`` (file) copytool had not landed when these tests were written,
so :class:`FileCopytool` below is a minimal stand-in for ``file://`` URLs registered under the name ``mv``;
everything around it is real (``StageIn``/``StageOut`` orchestration with checksum verification, deterministic
paths, the log tarball, the payload runner, the local PanDA server over HTTP, the launch-directory files).
Replace it by the real copytool when the entry point exists.
"""

from __future__ import annotations

import json
import shutil
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import apps.grid_pilot.compose as compose
from apps.grid_pilot.__main__ import main as pilot_main
from pilotlib.errors import TransferError
from pilotlib.transfer.base import TransferRequest, TransferResult
from pilotlib.transfer.registry import CopytoolRegistry, default_registry

PAYLOAD = """#!/bin/sh
# a small payload: copies its input to its output, writes a job report, sleeps, exits with $EXIT
cat in.dat > out.dat 2>/dev/null || true
[ -n "$NO_OUTPUT" ] && rm -f out.dat
printf '{"exitCode": %s, "exitMsg": "%s"}' "${EXIT:-0}" "${MSG:-OK}" > jobReport.json
[ -n "$SELF_KILL" ] && kill -9 $$
sleep "${SLEEP:-0.5}"
exit "${EXIT:-0}"
"""


def adler32(data: bytes) -> str:
    """8 hex digits."""
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def job_definition(panda_id: int, *, sleep: float = 0.5, exit_code: int = 0, env: str = "",
                   data: bytes = b"input data\n") -> dict[str, str]:
    """A job with one input ``in.dat``, one output ``out.dat`` and a log; the payload is ``payload.sh``."""
    pars = f"SLEEP={sleep} EXIT={exit_code} {env}".strip()
    return {
        "PandaID": str(panda_id), "attemptNr": "1", "prodSourceLabel": "managed", "jobName": f"e2e.{panda_id}",
        "transformation": "/usr/bin/env", "jobPars": f"{pars} sh payload.sh",
        "inFiles": "in.dat,payload.sh", "scopeIn": "e2e,e2e", "GUID": "g1,g2",
        "fsize": f"{len(data)},{len(PAYLOAD.encode())}",
        "checksum": f"ad:{adler32(data)},ad:{adler32(PAYLOAD.encode())}",
        "ddmEndPointIn": "LOCAL,LOCAL",
        "outFiles": "out.dat,log.tgz", "scopeOut": "e2e", "scopeLog": "e2e", "logFile": "log.tgz",
        "logGUID": "0B1C2D3E-4F50-4617-8293-A4B5C6D7E8F9", "realDatasets": "ds.out,ds.log",
        "destinationDblock": "db.out,db.log", "ddmEndPointOut": "LOCAL,LOCAL", "coreCount": "1",
        "maxWalltime": "600",
    }


def make_inputs(directory: Path, data: bytes = b"input data\n") -> Path:
    """The input directory: ``in.dat`` and the payload script."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "in.dat").write_bytes(data)
    (directory / "payload.sh").write_text(PAYLOAD)
    return directory


def _path(url: str, workdir: Path) -> Path:
    return Path(url[len("file://"):]) if url.startswith("file://") else workdir / url


class FileCopytool:
    """Stand-in ``mv`` copytool for ``file://`` URLs (see the module docstring)."""

    name = "mv"
    schemes = ("file",)

    def unusable_reason(self) -> str | None:
        return None

    def transfer(self, requests: Sequence[TransferRequest], workdir: Path) -> list[TransferResult]:
        results = []
        for r in requests:
            src, dst = _path(r.source, workdir), _path(r.destination, workdir)
            url = r.source if "://" in r.source else r.destination
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            except OSError as exc:
                results.append(TransferResult(r.lfn, r.direction, self.name, url, str(dst),
                                              error=TransferError(f"copy failed: {exc.strerror}", r.direction)))
                continue
            data = dst.read_bytes()
            results.append(TransferResult(r.lfn, r.direction, self.name, url, str(dst), len(data),
                                          ("adler32", adler32(data))))
        return results


def registry() -> CopytoolRegistry:
    """The installed copytools plus the stand-in ``mv`` when the real one is not installed."""
    reg = default_registry()
    if "mv" not in reg.names():
        reg.register("mv", FileCopytool)
    return reg


def main() -> int:
    """``python -m tests.e2e.helpers ARGS``: the grid pilot with :func:`registry` (for subprocess tests)."""
    compose.default_registry = registry  # type: ignore[assignment]
    return pilot_main(sys.argv[1:])


def final_update(updates: list[dict[str, object]]) -> dict[str, object]:
    """The last update with a final state."""
    finals = [u for u in updates if u.get("state") in ("finished", "failed", "holding")]
    assert finals, f"no final update in {json.dumps(updates)[:500]}"
    return finals[-1]


if __name__ == "__main__":
    sys.exit(main())
