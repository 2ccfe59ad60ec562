"""Harvester's files naming one PandaID twice: what the pilot's job source does with them.

Harvester cannot write such files itself: ``SharedFileMessenger.feed_jobs`` (HSF/harvester
``pandaharvester/harvestermessenger/shared_file_messenger.py``, commit d561b72, cited as ``sfm``) writes the job file
with ``json.dump({PandaID: jobParams})`` of a Python dict (one key per PandaID; or ``urlencode`` of one job's
parameters) and ``worker_pandaids.json`` with ``json.dump`` of ``[jobSpec.PandaID for jobSpec in jobspec_list]``, its
worker's jobs. A duplicate therefore comes from a broken Harvester or a file edited by hand, and the pilot must still
run each job at most once, or stop with a clear error.

- ``worker_pandaids.json`` listing a PandaID twice, one job file: one pilot runs it once (the source never hands
  out a PandaID twice), and two ranks reading their entries one after the other run it once (the first renames the
  file to ``.read``);
- the job file whose JSON object has the PandaID key twice, ``{"7010": {...}, "7010": {...}}``: JSON's last value
  wins (Python's ``json``, as pilot3 reads the file: ``pilot/util/harvester.py`` ``parse_job_definition_file`` through
  ``read_json``), so it is one job, run once;
- ``hpc-pilot`` (``pilotlib/hpc/source.py``, each entry of the list read by a new source): a PandaID listed twice is
  one job, so the ranks share out only the entries that name a PandaID first; with per-job directories or with
  ``--single-job-dir`` and a multi-job file (left in place for the other entries), on one rank or several, each job
  runs once and a duplicate never keeps a rank from its later jobs (both were bugs this suite found).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.ledger import Ledger

from pilotlib.hpc.ranks import RankPlace
from pilotlib.hpc.source import RankJobSource
from pilotlib.panda.base import JobRequest
from pilotlib.panda.harvester import Consume, HarvesterFiles, HarvesterJobSource

REPO = Path(__file__).resolve().parents[2]
REQUEST = JobRequest(site_name="SITE", queue="QUEUE")
FAST: dict[str, Any] = {"poll_interval": 0.02, "read_timeout": 2.0, "wait_timeout": 0.3}
PANDA_ID = 7010


def definition(panda_id: int, job_name: str = "") -> dict[str, Any]:
    """The shipped production example with another PandaID (and job name)."""
    params: dict[str, Any] = json.loads((REPO / "examples" / "jobs" / "production.json").read_text())
    params["PandaID"] = panda_id
    if job_name:
        params["jobName"] = job_name
    return params


def _write(path: Path, text: str) -> None:
    """A plain ``open(..., "w")`` as ``feed_jobs`` writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def _ids(ap: Path, ids: list[int]) -> None:
    _write(ap / "worker_pandaids.json", json.dumps(ids))


def _taken(sources: list[HarvesterJobSource], rounds: int = 2) -> list[int]:
    """Every PandaID the sources hand out over ``rounds`` calls each (a pilot asks again after each job)."""
    taken = []
    for _ in range(rounds):
        for source in sources:
            taken += [job.panda_id for job in source.get_jobs(REQUEST)]
    return taken


def _duplicated_key(first: dict[str, Any], second: dict[str, Any]) -> str:
    """``{"7010": first, "7010": second}``: one JSON object, its key twice (no Python dict can be dumped so)."""
    return f'{{"{PANDA_ID}": {json.dumps(first)}, "{PANDA_ID}": {json.dumps(second)}}}'


@pytest.mark.reliability("faults", "harvester", "worker_pandaids.json lists a PandaID twice: run once")
@pytest.mark.parametrize("consume", [Consume.RENAME, Consume.REMOVE, Consume.KEEP])
def test_a_panda_id_listed_twice_is_run_once_by_a_pilot(ap: Path, ledger: Ledger, consume: Consume) -> None:
    """``[7010, 7010]`` and one job file ``{"7010": {...}}``: the pilot takes 7010 once; asked again (the request
    written), it does not take it a second time, whether the file was renamed, removed or kept."""
    _write(ap / "HPCJobs.json", json.dumps({str(PANDA_ID): definition(PANDA_ID)}))
    _ids(ap, [PANDA_ID, PANDA_ID])
    taken = _taken([HarvesterJobSource(HarvesterFiles(ap), consume=consume, **FAST)], rounds=3)
    ledger.add(faults_injected=1, finals_duplicated=max(0, len(taken) - 1))
    assert taken == [PANDA_ID]
    assert (ap / "HPCJobs.json").exists() == (consume is Consume.KEEP)


@pytest.mark.reliability("faults", "harvester", "worker_pandaids.json lists a PandaID twice: two ranks run it once")
@pytest.mark.parametrize("per_job_dirs", [False, True], ids=["one-file", "per-job-dirs"])
@pytest.mark.parametrize("first", [0, 1], ids=["rank0-first", "rank1-first"])
def test_a_panda_id_listed_twice_is_run_once_by_two_ranks(ap: Path, ledger: Ledger, per_job_dirs: bool,
                                                          first: int) -> None:
    """``[7010, 7010]``: rank 0 and rank 1 (an HPC worker's ranks, as ``pilotlib/hpc/source.py`` gives them the
    entries) read their entries one after the other; the first takes 7010 and renames its file, the other finds no
    job: 7010 runs once, whichever rank reads first, with one job file or per-job directories."""
    job_file = ap / str(PANDA_ID) / "HPCJobs.json" if per_job_dirs else ap / "HPCJobs.json"
    _write(job_file, json.dumps({str(PANDA_ID): definition(PANDA_ID)}))
    _ids(ap, [PANDA_ID, PANDA_ID])
    files = HarvesterFiles(ap, per_job_dirs=per_job_dirs)
    ranks = [HarvesterJobSource(files, rank=rank, **FAST) for rank in (0, 1)]
    taken_by = {rank: _taken([ranks[rank]], rounds=1) for rank in (first, 1 - first)}
    ledger.add(faults_injected=1, finals_duplicated=max(0, sum(map(len, taken_by.values())) - 1))
    assert taken_by[first] == [PANDA_ID] and taken_by[1 - first] == []
    assert job_file.with_name("HPCJobs.json.read").exists() and not job_file.exists()


@pytest.mark.reliability("faults", "harvester", "job file with its PandaID key twice: one job, run once")
@pytest.mark.parametrize("same", [True, False], ids=["same-definition", "different-definitions"])
def test_a_job_file_with_its_panda_id_key_twice_is_one_job_run_once(ap: Path, ledger: Ledger, same: bool) -> None:
    """``{"7010": {...}, "7010": {...}}`` listed ``[7010]``: one job, the last definition (JSON's last value wins, as
    pilot3's ``json.load`` reads it), taken once and the file renamed; asked again, the pilot takes nothing."""
    second = definition(PANDA_ID, job_name="the.second" if not same else "")
    _write(ap / "HPCJobs.json", _duplicated_key(definition(PANDA_ID, job_name="" if same else "the.first"), second))
    _ids(ap, [PANDA_ID])
    source = HarvesterJobSource(HarvesterFiles(ap), **FAST)
    (job,) = source.get_jobs(REQUEST)
    again = source.get_jobs(REQUEST)
    ledger.add(faults_injected=1, finals_duplicated=len(again))
    assert job.panda_id == PANDA_ID and job.job_name == second["jobName"]
    assert again == ()
    assert (ap / "HPCJobs.json.read").exists() and not (ap / "HPCJobs.json").exists()


@pytest.mark.reliability("faults", "harvester", "both: the key twice and listed twice, for two ranks: run once")
def test_a_panda_id_twice_in_both_files_is_run_once_by_two_ranks(ap: Path, ledger: Ledger) -> None:
    """The key twice in the job file and ``[7010, 7010]``: the one job is taken by rank 0 only (rank 1 finds the file
    renamed)."""
    _write(ap / "HPCJobs.json", _duplicated_key(definition(PANDA_ID), definition(PANDA_ID)))
    _ids(ap, [PANDA_ID, PANDA_ID])
    ranks = [HarvesterJobSource(HarvesterFiles(ap), rank=rank, **FAST) for rank in (0, 1)]
    taken = _taken(ranks)
    ledger.add(faults_injected=2, finals_duplicated=max(0, len(taken) - 1))
    assert taken == [PANDA_ID]


def _rank_sources(ap: Path, size: int, *, per_job_dirs: bool) -> list[RankJobSource]:
    """The job sources of ``size`` ranks of ``hpc-pilot`` (``apps/hpc_pilot/compose.py``; ``--single-job-dir``:
    ``per_job_dirs`` False)."""
    files = HarvesterFiles(ap, per_job_dirs=per_job_dirs)
    return [RankJobSource(files, RankPlace(rank, size), wait_timeout=0.3, read_timeout=2.0, poll_interval=0.02)
            for rank in range(size)]


def _rank_taken(sources: list[RankJobSource]) -> list[int]:
    """Every PandaID the ranks take, each until a call gives none: a rank takes its entries one per call, and its
    pilot takes no more work after an empty answer (``pilotlib/workflow/retrieval.py``: "no job to run")."""
    taken: list[int] = []
    for source in sources:
        while jobs := source.get_jobs(REQUEST):
            taken += [job.panda_id for job in jobs]
    return taken


@pytest.mark.reliability("faults", "harvester", "hpc-pilot, per-job dirs, a PandaID listed twice: run once")
@pytest.mark.parametrize("size", [
    pytest.param(1, id="one-rank"),
    pytest.param(2, id="two-ranks"),
])
def test_hpc_ranks_with_per_job_dirs_run_a_panda_id_listed_twice_once(ap: Path, ledger: Ledger, size: int) -> None:
    """``hpc-pilot`` (per-job directories, its default), ``[7010, 7010, 7011]``: one rank taking every entry, or two
    ranks one after the other, run 7010 once (its file renamed by the first taker) and 7011 once: the duplicate
    entry must neither run 7010 again nor keep the rank from 7011."""
    for panda_id in (PANDA_ID, PANDA_ID + 1):
        _write(ap / str(panda_id) / "HPCJobs.json", json.dumps({str(panda_id): definition(panda_id)}))
    _ids(ap, [PANDA_ID, PANDA_ID, PANDA_ID + 1])
    taken = _rank_taken(_rank_sources(ap, size, per_job_dirs=True))
    ledger.add(faults_injected=1, finals_duplicated=max(0, taken.count(PANDA_ID) - 1))
    assert sorted(taken) == [PANDA_ID, PANDA_ID + 1], taken


@pytest.mark.reliability("faults", "harvester",
                         "hpc-pilot --single-job-dir, multi-job file, a PandaID listed twice: run once")
@pytest.mark.parametrize("size", [1, 3], ids=["one-rank", "three-ranks"])
def test_hpc_ranks_with_a_shared_multi_job_file_run_a_panda_id_listed_twice_once(ap: Path, ledger: Ledger,
                                                                                 size: int) -> None:
    """``hpc-pilot --single-job-dir``: one ``HPCJobs.json`` with 7010 and 7011 (left in place, as a multi-job file
    is) and ``[7010, 7010, 7011]``; one rank taking every entry, or three ranks one after the other: 7010 must run
    once (the second entry naming it given nothing, or a clear error) and 7011 once."""
    _write(ap / "HPCJobs.json", json.dumps({str(i): definition(i) for i in (PANDA_ID, PANDA_ID + 1)}))
    _ids(ap, [PANDA_ID, PANDA_ID, PANDA_ID + 1])
    taken = _rank_taken(_rank_sources(ap, size, per_job_dirs=False))
    ledger.add(faults_injected=1, finals_duplicated=max(0, taken.count(PANDA_ID) - 1))
    assert sorted(taken) == [PANDA_ID, PANDA_ID + 1], taken
