"""Site profiles: found through the ``pilotlib.hpc_sites`` entry-point group, their options, their payload set-up
(:mod:`pilotlib.hpc.sites`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotlib.errors import ErrorCode, PilotError
from pilotlib.hpc import GenericSite, RamDiskSite, RankPlace, load_site, site_names

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A site's own profile in its own installed distribution (a ``*.dist-info`` with ``entry_points.txt`` on
    ``sys.path``, as ``pip install`` leaves it), not in pilotlib."""
    (tmp_path / "mysite_profile.py").write_text(
        "import attrs\n"
        "from pilotlib.hpc import GenericSite\n"
        "@attrs.frozen\n"
        "class MySite(GenericSite):\n"
        "    @classmethod\n"
        "    def from_options(cls, options):\n"
        "        return cls(payload_setup=('export MYSITE=' + options.get('flavour', 'plain'),))\n")
    info = tmp_path / "mysite-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mysite\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pilotlib.hpc_sites]\nmysite = mysite_profile:MySite\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mysite"
    sys.modules.pop("mysite_profile", None)


def test_a_site_adds_its_own_profile_without_editing_pilotlib(own_site: str) -> None:
    """The site's distribution declares the entry point; ``load_site`` finds it beside pilotlib's own."""
    assert {"generic", "olcf", own_site} <= set(site_names())
    profile = load_site(own_site, {"flavour": "fast"})
    assert profile.payload_setup == ("export MYSITE=fast",)


def test_an_unknown_profile_is_a_setup_failure() -> None:
    """A name no distribution declares: SETUPFAILURE 1110, naming the installed ones."""
    with pytest.raises(PilotError) as caught:
        load_site("nosuchsite", {})
    assert caught.value.code == ErrorCode.SETUPFAILURE and "generic" in str(caught.value)


@pytest.mark.parametrize("options", [{"aux": "/nonexistent/conditions.db"}, {"min_free_mb": "lots"}])
def test_bad_site_options_are_setup_failures(options: dict[str, str]) -> None:
    """An auxiliary file that is not there, or a size that is not a number: 1110 before any job is taken."""
    with pytest.raises(PilotError) as caught:
        load_site("olcf", options)
    assert caught.value.code == ErrorCode.SETUPFAILURE


def test_work_areas_per_rank() -> None:
    """Generic: under the access point's ``.hpc-pilot/work`` (or ``workdir``); olcf: on the RAM disk, one folder per
    worker (the access point's name) and rank."""
    access_point = Path("/shared/harvester/worker-17")
    assert GenericSite().work_area(access_point, RankPlace(3, 4)) == access_point / ".hpc-pilot/work/rank-3"
    assert GenericSite(Path("/scratch")).work_area(access_point, RankPlace(0, 1)) == Path("/scratch/rank-0")
    assert RamDiskSite().work_area(access_point, RankPlace(2, 4)) == Path("/dev/shm/pilotlib-worker-17/rank-2")


def test_the_sites_setup_script_and_modules_run_before_the_payload(tmp_path: Path) -> None:
    """``--site-option setup=SCRIPT --site-option modules=a,b c``: the payload's shell sources the script, then runs
    ``module load`` for each module (quoted: ``b c`` is one name, never code), then the payload with its own
    arguments. The script here defines ``module`` as a site's Lmod does."""
    access_point = tmp_path / "access_point"
    folder = access_point / "9951"
    folder.mkdir(parents=True)
    setup = tmp_path / "site setup.sh"
    setup.write_text("export SITE_READY=yes\nmodule() { printf '%s|' \"$@\" >> modules.log; echo >> modules.log; }\n")
    job = {"PandaID": "9951", "jobName": "sites", "transformation": "/bin/sh",
           "jobPars": "-c 'echo $SITE_READY > out.dat; cat modules.log >> out.dat'", "outFiles": "out.dat,log.tgz",
           "scopeOut": "e2e", "scopeLog": "e2e", "logFile": "log.tgz", "realDatasets": "ds.out,ds.log",
           "destinationDblock": "db.out,db.log", "ddmEndPointOut": "LOCAL,LOCAL", "prodSourceLabel": "managed"}
    (folder / "HPCJobs.json").write_text(json.dumps({"9951": job}))
    (access_point / "worker_pandaids.json").write_text("[9951]")
    done = subprocess.run([sys.executable, "-m", "apps.hpc_pilot", "--harvester-workdir", str(access_point),
                           "--site-option", f"setup={setup}", "--site-option", "modules=gcc/12,b c"],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    declared = json.loads((folder / "event_status.dump.json").read_text())["9951"]
    out = next(Path(e["path"]) for e in declared if e["type"] == "output")
    assert out.read_text() == "yes\nload|gcc/12|\nload|b c|\n"
