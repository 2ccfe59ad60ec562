"""The middleware container as the grid pilot composes it, for real: a node without the copytool's library and
commands (no ``xrdcp``/``gfal-*`` on the pilot's ``PATH``, no ``XRootD``/``gfal2`` Python module for the pilot), a
queue whose ``container_type`` puts the middleware in a bubblewrap container, and ``grid-pilot
--middleware-image``: the pilot's own launcher runs ``python3 -m pilotlib.transfer.incontainer`` in the image, whose
real XRootD client or gfal2 (with its XRootD plugin) copies the input from and the output and log to the test
XRootD server.

The image is a busybox root file system holding this machine's ``/usr`` (read-only: the XRootD client, gfal2, their
libraries and plugins), this Python with pilotlib, and ``/usr/local/bin/python3`` (:mod:`fixtures.middleware`),
mounted into it in the pilot's own mount namespace, so that it is an image that has them, as a site's has, and the
launcher binds nothing.

As pilot3 (``pilot/control/data.py`` ``_stage_in``: ``use_container = pilot.util.middleware.use_middleware_script(
container_type)``; ``pilot/util/middleware.py`` ``containerise_middleware``): the copy runs in the middleware
container when the queue's ``container_type`` says ``middleware`` goes in a container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.middleware import REPO, make_middleware_image, mounted_image_command
from fixtures.xrootd import XRootDServer

from panda_devserver import DevServer
from pilotlib.transfer.paths import deterministic_path

from .helpers import PAYLOAD, final_update, job_definition

pytestmark = pytest.mark.integration

DATA = b"input data read inside the middleware container\n"
#: The programs (by name prefix) and Python modules of each copytool, missing on the pilot's node.
MISSING = {"xrdcp": (("xrd",), ("XRootD",)), "gfal": (("gfal-",), ("gfal2",))}


def _node_without(tool: str, base: Path) -> dict[str, str]:
    """The pilot's environment: ``PATH`` has every program of ``/usr/bin`` but ``tool``'s; its modules first on
    ``PYTHONPATH``, failing to import, as on a node without the library."""
    programs, modules = MISSING[tool]
    bin_dir = base / "node-bin"
    bin_dir.mkdir()
    for program in Path("/usr/bin").iterdir():
        if not program.name.startswith(programs):
            (bin_dir / program.name).symlink_to(program)
    shadows = base / "shadows"
    for module in modules:
        (shadows / module).mkdir(parents=True)
        (shadows / module / "__init__.py").write_text(f'raise ImportError("no {module} on this node")\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "COV"))}
    return {**env, "PATH": str(bin_dir), "PYTHONPATH": f"{shadows}{os.pathsep}{REPO}"}


@pytest.mark.parametrize("tool", ["xrdcp", "gfal"])
def test_the_grid_pilot_stages_through_its_middleware_image(panda_server: DevServer, xrootd_server: XRootDServer,
                                                            tmp_path: Path, tool: str) -> None:
    """The job finishes; its input was read and its output and log written on the XRootD server by the copytool
    in the container (the pilot's log says so), with the checksums the server reports back in ``xml``."""
    base = f"mw-{tmp_path.name}"
    for lfn, content in (("in.dat", DATA), ("payload.sh", PAYLOAD.encode())):
        xrootd_server.put(f"{base}/{deterministic_path('e2e', lfn)}", content)
    protocol = {"endpoint": xrootd_server.endpoint, "path": f"/{base}/", "flavour": "XROOTD"}
    panda_server.add_storage("MW_DISK", {"name": "MW_DISK", "type": "DATADISK", "is_deterministic": True,
                                         "state": "ACTIVE",
                                         "arprotocols": {"read_lan": [protocol], "write_lan": [protocol]}})
    panda_server.add_queue("MW_QUEUE", {"nickname": "MW_QUEUE", "state": "ACTIVE", "status": "online",
                                        "container_type": "bubblewrap:middleware",
                                        "acopytools": {"pr": [tool], "pw": [tool], "pl": [tool]},
                                        "astorages": {"pr": ["MW_DISK"], "pw": ["MW_DISK"]}})
    panda_id = {"xrdcp": 8201, "gfal": 8202}[tool]
    panda_server.add_job({**job_definition(panda_id, sleep=0.2, data=DATA), "ddmEndPointIn": "MW_DISK,MW_DISK",
                          "ddmEndPointOut": "MW_DISK,MW_DISK"})
    image = make_middleware_image(tmp_path / "image")
    pilot = [sys.executable, "-m", "apps.grid_pilot", "-q", "MW_QUEUE", "--url", panda_server.url, "--api", "v1",
             "-a", str(tmp_path / "work"), "--heartbeat", "0.2", "--middleware-image", str(image)]

    done = subprocess.run(mounted_image_command(image, tmp_path, pilot), env=_node_without(tool, tmp_path),
                          cwd=REPO, capture_output=True, text=True, timeout=180, check=False)

    final = final_update(panda_server.updates(panda_id))
    assert final["state"] == "finished", (final.get("pilotErrorDiag"), done.stdout[-2000:], done.stderr[-2000:])
    assert done.returncode == 0
    out = xrootd_server.local(f"{base}/{deterministic_path('e2e', 'out.dat')}")
    assert out.read_bytes() == DATA
    assert xrootd_server.local(f"{base}/{deterministic_path('e2e', 'log.tgz')}").stat().st_size > 0
    assert int(json.loads(str(final["xml"]))["out.dat"]["fsize"]) == len(DATA)
    log = (tmp_path / "work" / "pilot-state" / "pilotlog.txt").read_text()
    assert log.count(f"copytool not usable here, run in the middleware container name={tool}") == 3  # in, out, log
    assert log.count(f"middleware container start tool={tool} runtime=bubblewrap") >= 3
    assert f"stage-in done lfn=in.dat tool={tool}" in log and f"stage-out done lfn=out.dat tool={tool}" in log
    assert not any(image.joinpath("usr").iterdir())  # the mounts ended with the pilot's namespace
