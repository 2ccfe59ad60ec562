"""Nothing lost: a job's final update is on disk before it is sent, and a later pilot sends what one could not.

Layout, per job, under the store's root (the pilot's work area): ``<root>/<PandaID>/final_update.json`` holds the
final update, written atomically (temporary file, ``fsync``, rename) BEFORE it is sent. A sender claims it by renaming
it to ``final_update.json.sending-<pid>`` (a rename is atomic, so two pilots never send the same file); once the server
acknowledged it, it becomes ``final_update.json.sent`` and is never sent again. A claim left by a process that is gone
(the pilot was killed while sending) goes back to pending. At start, :func:`recover` sends every pending final update.

The server gives up on a job whose pilot has not updated for a long time (PANDA.md: about 3 hours), so a final update
that could not be sent now is worth sending later.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from pilotlib.errors import PilotError
from pilotlib.panda.base import JobReporter, JobUpdate

__all__ = ["FINAL_NAME", "FinalStore", "RetryPolicy", "deliver_final", "recover"]

log = logging.getLogger(__name__)

FINAL_NAME = "final_update.json"
_SENT = FINAL_NAME + ".sent"
_SENDING = FINAL_NAME + ".sending-"


class FinalStore:
    """Final updates on disk under ``root``, one folder per PandaID."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, panda_id: int) -> Path:
        """Where the pending final update of ``panda_id`` lives."""
        return self.root / str(panda_id) / FINAL_NAME

    def save(self, update: JobUpdate) -> Path:
        """Write ``update`` atomically (a reader sees the old file or the whole new one, never a part)."""
        target = self.path(update.panda_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {"panda_id": update.panda_id, "state": update.state, "fields": dict(update.fields)}
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".final-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def claim(self, panda_id: int) -> Path | None:
        """Take the pending update of ``panda_id`` for sending; None when there is none (or another took it)."""
        claimed = self.path(panda_id).with_name(f"{_SENDING}{os.getpid()}")
        try:
            os.rename(self.path(panda_id), claimed)
        except FileNotFoundError:
            return None
        return claimed

    def mark_sent(self, claimed: Path) -> None:
        """Record that the claimed update was acknowledged (it is kept as ``.sent`` and never sent again)."""
        os.replace(claimed, claimed.with_name(_SENT))

    def unclaim(self, claimed: Path) -> None:
        """Give a claimed update back to pending (it could not be sent)."""
        os.replace(claimed, claimed.with_name(FINAL_NAME))

    def is_sent(self, panda_id: int) -> bool:
        """Whether the final update of ``panda_id`` was acknowledged."""
        return self.path(panda_id).with_name(_SENT).exists()

    def pending(self) -> list[int]:
        """The PandaIDs with a final update not yet acknowledged (stale claims of dead processes included)."""
        if not self.root.is_dir():
            return []
        for stale in self.root.glob(f"*/{_SENDING}*"):
            pid = stale.name.removeprefix(_SENDING)
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                self.unclaim(stale)
        return sorted(int(p.parent.name) for p in self.root.glob(f"*/{FINAL_NAME}") if p.parent.name.isdigit())


def _load(path: Path) -> JobUpdate:
    body = json.loads(path.read_text(encoding="utf-8"))
    return JobUpdate(int(body["panda_id"]), str(body["state"]), body["fields"], final=True)


@attrs.frozen
class RetryPolicy:
    """How long to keep trying a final update: until ``deadline`` seconds from now, backing off between tries."""

    deadline: float = 600.0
    first_delay: float = 1.0
    max_delay: float = 60.0


def _try_send(reporter: JobReporter, update: JobUpdate) -> bool:
    try:
        answer = reporter.update_job(update)
    except (PilotError, OSError) as exc:
        log.warning("final update not sent panda_id=%d error=%s", update.panda_id, exc)
        return False
    if not answer.accepted:
        log.warning("final update refused panda_id=%d message=%s", update.panda_id, answer.message)
    return answer.accepted


def _send_claimed(
    store: FinalStore,
    reporter: JobReporter,
    claimed: Path,
    policy: RetryPolicy,
    pause: Callable[[float], object],
) -> bool:
    update = _load(claimed)
    end = time.monotonic() + policy.deadline
    delay = policy.first_delay
    while True:
        if _try_send(reporter, update):
            store.mark_sent(claimed)
            log.info("final update acknowledged panda_id=%d state=%s", update.panda_id, update.state)
            return True
        if time.monotonic() + delay > end:
            store.unclaim(claimed)
            path = store.path(update.panda_id)
            log.error("final update left for recovery panda_id=%d path=%s", update.panda_id, path)
            return False
        pause(delay)
        delay = min(delay * 2, policy.max_delay)


def deliver_final(
    update: JobUpdate,
    reporter: JobReporter,
    store: FinalStore,
    policy: RetryPolicy | None = None,
    pause: Callable[[float], object] = time.sleep,
) -> bool:
    """Save ``update`` to disk, then send it until acknowledged or the policy's deadline passes.

    Returns:
        True when the server acknowledged it; False when it is left on disk for a later pilot (:func:`recover`).
    """
    store.save(update)
    claimed = store.claim(update.panda_id)
    if claimed is None:
        return store.is_sent(update.panda_id)
    return _send_claimed(store, reporter, claimed, policy or RetryPolicy(), pause)


def recover(
    store: FinalStore,
    reporter: JobReporter,
    policy: RetryPolicy | None = None,
    pause: Callable[[float], object] = time.sleep,
) -> list[int]:
    """Send every pending final update found in the store; return the PandaIDs acknowledged now."""
    sent = []
    for panda_id in store.pending():
        claimed = store.claim(panda_id)
        if claimed is None:
            continue
        try:
            ok = _send_claimed(store, reporter, claimed, policy or RetryPolicy(deadline=0.0), pause)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable final update set aside path=%s error=%s", claimed, exc)
            os.replace(claimed, claimed.with_name(FINAL_NAME + ".bad"))
            continue
        if ok:
            sent.append(panda_id)
    return sent
