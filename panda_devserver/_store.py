"""The development server's state, in one SQLite file (``<workdir>/panda.sqlite``).

Everything a pilot reports is kept here so that a test or a user can ask afterwards what happened to a job: the job
definitions with their server-side status, every update in arrival order (legacy field names), event ranges with
their status, every event range update, queue and storage descriptions, and pending back-channel commands.

One connection is shared by the server's threads behind a lock; each public method is one transaction. The database
is in write-ahead-log mode (``panda.sqlite-wal`` beside it while the server runs; other readers, such as ``sqlite3``,
see every committed transaction).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    panda_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, definition TEXT NOT NULL,
    status TEXT NOT NULL, final_state TEXT, pilot TEXT);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, panda_id INTEGER NOT NULL, fields TEXT NOT NULL, received REAL);
CREATE TABLE IF NOT EXISTS event_ranges (
    event_range_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, panda_id INTEGER NOT NULL,
    body TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_range_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, panda_id INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zip_files (
    panda_id INTEGER NOT NULL, lfn TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (panda_id, lfn));
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS storages (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (panda_id INTEGER PRIMARY KEY, command TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS worker_status (
    id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ignored_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, panda_id INTEGER NOT NULL, fields TEXT NOT NULL, answer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dropped_fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT, panda_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL);
"""

#: Job states a pilot may report as final (JobDispatcher.updateJob turns them into ``holding`` on the server).
FINAL_STATES = frozenset({"finished", "failed"})

#: Server-side job states for which ranges are handed out (``DBProxy.getEventRanges``, task_event_module.py:161).
SERVE_RANGES_STATES = ("sent", "running", "starting")


class Store:
    """The SQLite-backed state of one development server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # a write-ahead log, synced at checkpoints only: a commit is a write, not an fsync (about 5 ms each on this
        # machine's disk, behind the one lock: 200 updates/s at most, and 200 ms a request under 50 clients,
        # measured by benchmarks/load.py); what a crash of the machine (not of the server) may lose is a test's run
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(updates)")}
        if "received" not in columns:  # a database written before the arrival time was kept
            self._db.execute("ALTER TABLE updates ADD COLUMN received REAL")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def clear(self) -> None:
        """Forget jobs, updates, event ranges and commands (queues and storages stay)."""
        with self._tx() as db:
            for table in ("jobs", "updates", "event_ranges", "event_range_updates", "zip_files", "commands",
                          "worker_status", "ignored_updates", "dropped_fields"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # ------------------------------------------------------------------------------------------------------- jobs
    def add_job(self, panda_id: int, definition: Mapping[str, Any]) -> None:
        """Queue a job definition (status ``activated``); a job with the same PandaID is replaced."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO jobs (panda_id, seq, definition, status) VALUES (?, ?, ?, 'activated')",
                (panda_id, seq, json.dumps(dict(definition))),
            )

    def take_jobs(self, count: int, pilot: str) -> list[dict[str, Any]]:
        """Hand up to ``count`` activated jobs to one pilot: each job is handed out once only (status ``sent``)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT panda_id, definition FROM jobs WHERE status = 'activated' ORDER BY seq LIMIT ?", (count,)
            ).fetchall()
            for panda_id, _ in rows:
                db.execute("UPDATE jobs SET status = 'sent', pilot = ? WHERE panda_id = ?", (pilot, panda_id))
        return [json.loads(definition) for _, definition in rows]

    def jobs(self) -> list[dict[str, Any]]:
        """Every job in queueing order: ``{"panda_id", "definition", "status", "final_state", "pilot"}``
        (``pilot``: the ``node`` of the pilot that took it, None while it waits)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT panda_id, definition, status, final_state, pilot FROM jobs ORDER BY seq").fetchall()
        return [{"panda_id": int(panda_id), "definition": json.loads(definition), "status": str(status),
                 "final_state": final_state, "pilot": pilot}
                for panda_id, definition, status, final_state, pilot in rows]

    def job_status(self, panda_id: int) -> str | None:
        """The server-side status of a job, or None when unknown."""
        with self._lock:
            row = self._db.execute("SELECT status FROM jobs WHERE panda_id = ?", (panda_id,)).fetchone()
        return None if row is None else str(row[0])

    def record_update(self, panda_id: int, fields: Mapping[str, Any], server_status: str) -> str | None:
        """Keep one update and move the job to ``server_status``; return the pending command (consumed)."""
        state = str(fields.get("state", ""))
        with self._tx() as db:
            db.execute("INSERT INTO updates (panda_id, fields, received) VALUES (?, ?, ?)",
                       (panda_id, json.dumps(dict(fields)), time.time()))
            final = state if state in FINAL_STATES else None
            db.execute(
                "UPDATE jobs SET status = ?, final_state = COALESCE(?, final_state) WHERE panda_id = ?",
                (server_status, final, panda_id),
            )
            row = db.execute("SELECT command FROM commands WHERE panda_id = ?", (panda_id,)).fetchone()
            db.execute("DELETE FROM commands WHERE panda_id = ?", (panda_id,))
        return None if row is None else str(row[0])

    def updates(self, panda_id: int) -> list[dict[str, Any]]:
        """Every update received for a job, in arrival order."""
        with self._lock:
            rows = self._db.execute("SELECT fields FROM updates WHERE panda_id = ? ORDER BY id", (panda_id,))
            return [json.loads(row[0]) for row in rows.fetchall()]

    def update_times(self, panda_id: int) -> list[float | None]:
        """When each update of a job arrived (seconds since the epoch; None if not kept), in arrival order."""
        with self._lock:
            rows = self._db.execute("SELECT received FROM updates WHERE panda_id = ? ORDER BY id", (panda_id,))
            return [None if row[0] is None else float(row[0]) for row in rows.fetchall()]

    def final_state(self, panda_id: int) -> str | None:
        """The final state the pilot reported (``finished``/``failed``), or None."""
        with self._lock:
            row = self._db.execute("SELECT final_state FROM jobs WHERE panda_id = ?", (panda_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def record_ignored_update(self, panda_id: int, fields: Mapping[str, Any], answer: str) -> None:
        """Keep an update the server acknowledged without applying it, with the command it answered."""
        with self._tx() as db:
            db.execute("INSERT INTO ignored_updates (panda_id, fields, answer) VALUES (?, ?, ?)",
                       (panda_id, json.dumps(dict(fields)), answer))

    def ignored_updates(self, panda_id: int) -> list[dict[str, Any]]:
        """The updates acknowledged without being applied: ``{"fields": ..., "answer": command}`` in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT fields, answer FROM ignored_updates WHERE panda_id = ? ORDER BY id", (panda_id,)).fetchall()
        return [{"fields": json.loads(fields), "answer": answer} for fields, answer in rows]

    def record_dropped_field(self, panda_id: int, field: str, value: Any) -> None:
        """Keep a field value the real server would have dropped (logged and ignored)."""
        with self._tx() as db:
            db.execute("INSERT INTO dropped_fields (panda_id, field, value) VALUES (?, ?, ?)",
                       (panda_id, field, json.dumps(value)))

    def dropped_fields(self, panda_id: int) -> list[tuple[str, Any]]:
        """Every ``(field, value)`` of a job's updates the real server would have dropped, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT field, value FROM dropped_fields WHERE panda_id = ? ORDER BY id", (panda_id,)).fetchall()
        return [(str(field), json.loads(value)) for field, value in rows]

    def set_command(self, panda_id: int, command: str) -> None:
        """Make the next update answer for ``panda_id`` carry ``command``."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO commands (panda_id, command) VALUES (?, ?)", (panda_id, command))

    def pending_command(self, panda_id: int) -> str | None:
        """The command waiting for a job (not consumed)."""
        with self._lock:
            row = self._db.execute("SELECT command FROM commands WHERE panda_id = ?", (panda_id,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------------------------------------ event ranges
    def add_event_ranges(self, panda_id: int, ranges: Sequence[Mapping[str, Any]]) -> None:
        """Make event ranges available for a job (status ``ready``)."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM event_ranges").fetchone()[0]
            for offset, body in enumerate(ranges, start=1):
                db.execute(
                    "INSERT OR REPLACE INTO event_ranges (event_range_id, seq, panda_id, body, status) "
                    "VALUES (?, ?, ?, ?, 'ready')",
                    (str(body["eventRangeID"]), seq + offset, panda_id, json.dumps(dict(body))),
                )

    def take_event_ranges(self, panda_id: int, count: int) -> list[dict[str, Any]]:
        """Hand out up to ``count`` ready event ranges of a job (status ``sent``), each once only.

        Only for a job in :data:`SERVE_RANGES_STATES`; for any other (or an unknown) job the list is empty.
        """
        with self._tx() as db:
            status = db.execute("SELECT status FROM jobs WHERE panda_id = ?", (panda_id,)).fetchone()
            if status is None or status[0] not in SERVE_RANGES_STATES:
                return []
            rows = db.execute(
                "SELECT event_range_id, body FROM event_ranges WHERE panda_id = ? AND status = 'ready' "
                "ORDER BY seq LIMIT ?",
                (panda_id, count),
            ).fetchall()
            for range_id, _ in rows:
                db.execute("UPDATE event_ranges SET status = 'sent' WHERE event_range_id = ?", (range_id,))
        return [json.loads(body) for _, body in rows]

    def count_event_ranges(self, panda_id: int) -> int:
        """How many event ranges of a job are still ready to be handed out."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM event_ranges WHERE panda_id = ? AND status = 'ready'", (panda_id,)
            ).fetchone()
        return int(row[0])

    def record_event_range_updates(self, updates: Sequence[tuple[int, Mapping[str, Any]]],
                                   zip_files: Mapping[tuple[int, str], Mapping[str, Any]]) -> None:
        """Keep the range updates ``(PandaID, body)`` of one request and set each range's status, and keep the zip
        files ``{(PandaID, lfn): zipFile}`` not yet known (a known one stays as it was): one transaction."""
        with self._tx() as db:
            for panda_id, body in updates:
                db.execute("INSERT INTO event_range_updates (panda_id, body) VALUES (?, ?)",
                           (panda_id, json.dumps(dict(body))))
                db.execute("UPDATE event_ranges SET status = ? WHERE event_range_id = ?",
                           (str(body.get("eventStatus", "")), str(body.get("eventRangeID", ""))))
            for (panda_id, lfn), record in zip_files.items():
                db.execute("INSERT OR IGNORE INTO zip_files (panda_id, lfn, body) VALUES (?, ?, ?)",
                           (panda_id, lfn, json.dumps(dict(record))))

    def event_range_updates(self, panda_id: int) -> list[dict[str, Any]]:
        """Every event range update received for a job, in arrival order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM event_range_updates WHERE panda_id = ? ORDER BY id", (panda_id,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def event_range_statuses(self, panda_id: int) -> dict[str, str]:
        """The status of each event range of a job (``ready``, ``sent``, then the last reported one) by id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_range_id, status FROM event_ranges WHERE panda_id = ? ORDER BY seq", (panda_id,)
            ).fetchall()
        return {str(range_id): str(status) for range_id, status in rows}

    def zip_files(self, panda_id: int) -> dict[str, dict[str, Any]]:
        """The zip files recorded for a job (the first ``zipFile`` reported under each name), by name."""
        with self._lock:
            rows = self._db.execute("SELECT lfn, body FROM zip_files WHERE panda_id = ? ORDER BY rowid",
                                    (panda_id,)).fetchall()
        return {str(lfn): json.loads(body) for lfn, body in rows}

    # ------------------------------------------------------------------------------------------ worker status
    def record_worker_status(self, body: Mapping[str, Any]) -> None:
        """Keep one ``updateWorkerPilotStatus`` report."""
        with self._tx() as db:
            db.execute("INSERT INTO worker_status (body) VALUES (?)", (json.dumps(dict(body)),))

    def worker_statuses(self) -> list[dict[str, Any]]:
        """Every worker status report, in arrival order."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM worker_status ORDER BY id").fetchall()
        return [json.loads(row[0]) for row in rows]

    # -------------------------------------------------------------------------------------------- descriptions
    def put_description(self, table: str, name: str, body: Mapping[str, Any]) -> None:
        """Store a queue (``table="queues"``) or storage (``"storages"``) description."""
        if table not in ("queues", "storages"):
            raise ValueError(f"unknown description table {table!r}")
        with self._tx() as db:
            db.execute(f"INSERT OR REPLACE INTO {table} (name, body) VALUES (?, ?)", (name, json.dumps(dict(body))))  # noqa: S608

    def descriptions(self, table: str) -> dict[str, Any]:
        """All descriptions of one table by name."""
        if table not in ("queues", "storages"):
            raise ValueError(f"unknown description table {table!r}")
        with self._lock:
            rows = self._db.execute(f"SELECT name, body FROM {table} ORDER BY name").fetchall()  # noqa: S608
        return {name: json.loads(body) for name, body in rows}
