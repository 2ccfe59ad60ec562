"""The job id reaches log records through a context variable; per-job files get only their job's records."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pilotlib.logcontext import JobIdFilter, PerJobFileHandler, current_panda_id, job_context


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.logcontext.{id(handler)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler.addFilter(JobIdFilter())
    handler.setFormatter(logging.Formatter("%(panda_id)s %(message)s"))
    logger.addHandler(handler)
    return logger


def test_job_context_sets_and_restores_the_panda_id() -> None:
    """Inside job_context the current PandaID is set; after it, the previous value is back (nesting works)."""
    assert current_panda_id.get() is None
    with job_context(1):
        with job_context(2):
            assert current_panda_id.get() == 2
        assert current_panda_id.get() == 1
    assert current_panda_id.get() is None


def test_per_job_files_hold_only_their_jobs_records(tmp_path: Path) -> None:
    """Records logged in two jobs' contexts, from two threads, land in each job's own file; others in neither."""
    handler = PerJobFileHandler(lambda panda_id: tmp_path / f"pilotlog-{panda_id}.txt")
    log = _logger(handler)
    log.info("no job yet")

    def work(panda_id: int) -> None:
        with job_context(panda_id):
            for i in range(20):
                log.info("step %d of job %d", i, panda_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in (11, 12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    for panda_id, other in ((11, 12), (12, 11)):
        lines = (tmp_path / f"pilotlog-{panda_id}.txt").read_text().splitlines()
        assert len(lines) == 20
        assert all(line.startswith(f"{panda_id} step") and f"job {other}" not in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pilotlog-11.txt", "pilotlog-12.txt"]


def test_close_job_closes_its_file_and_reopens_appending(tmp_path: Path) -> None:
    """After close_job a later record of the job appends to the same file."""
    handler = PerJobFileHandler(lambda panda_id: tmp_path / f"{panda_id}.log")
    log = _logger(handler)
    with job_context(5):
        log.info("first")
        handler.close_job(5)
        log.info("second")
    handler.close()
    assert (tmp_path / "5.log").read_text().splitlines() == ["5 first", "5 second"]
