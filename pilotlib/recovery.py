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
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from pilotlib._atomic import WriteGuard, unguarded, write_atomic
from pilotlib.errors import PilotError
from pilotlib.panda.base import JobReporter, JobUpdate
from pilotlib.stop import StopSignal

__all__ = ["FINAL_NAME", "STOPPING_DEADLINE", "FinalRetry", "FinalStore", "deliver_final", "recover"]

log = logging.getLogger(__name__)

FINAL_NAME = "final_update.json"
_SENT = FINAL_NAME + ".sent"
_SENDING = FINAL_NAME + ".sending-"
_OWN_CLAIMS: set[Path] = set()  # the claims this process holds (set operations are atomic under the GIL)


class FinalStore:
    """Final updates on disk under ``root``, one folder per PandaID; ``guard`` runs each save (e.g. the state
    directory's reserve, which frees space and writes again when the disk is full)."""

    def __init__(self, root: Path, guard: WriteGuard = unguarded) -> None:
        self.root = root
        self._guard = guard

    def path(self, panda_id: int) -> Path:
        """Where the pending final update of ``panda_id`` lives."""
        return self.root / str(panda_id) / FINAL_NAME

    def save(self, update: JobUpdate) -> Path:
        """Write ``update`` atomically (a reader sees the old file or the whole new one, never a part)."""
        target = self.path(update.panda_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {"panda_id": update.panda_id, "state": update.state, "fields": dict(update.fields)}
        self._guard(lambda: write_atomic(target, json.dumps(body, separators=(",", ":"))))
        return target

    def claim(self, panda_id: int) -> Path | None:
        """Take the pending update of ``panda_id`` for sending; None when there is none (or another took it)."""
        claimed = self.path(panda_id).with_name(f"{_SENDING}{os.getpid()}")
        try:
            os.rename(self.path(panda_id), claimed)
        except FileNotFoundError:
            return None
        _OWN_CLAIMS.add(claimed.absolute())
        return claimed

    def mark_sent(self, claimed: Path) -> None:
        """Record that the claimed update was acknowledged (it is kept as ``.sent`` and never sent again)."""
        os.replace(claimed, claimed.with_name(_SENT))
        _OWN_CLAIMS.discard(claimed.absolute())

    def unclaim(self, claimed: Path) -> None:
        """Give a claimed update back to pending (it could not be sent)."""
        os.replace(claimed, claimed.with_name(FINAL_NAME))
        _OWN_CLAIMS.discard(claimed.absolute())

    def has(self, panda_id: int) -> bool:
        """Whether a final update of ``panda_id`` was saved (pending, being sent, acknowledged or set aside)."""
        return any(self.path(panda_id).parent.glob(FINAL_NAME + "*"))

    def is_sent(self, panda_id: int) -> bool:
        """Whether the final update of ``panda_id`` was acknowledged."""
        return self.path(panda_id).with_name(_SENT).exists()

    def pending(self) -> list[int]:
        """The PandaIDs with a final update not yet acknowledged (stale claims of dead processes included)."""
        if not self.root.is_dir():
            return []
        for stale in self.root.glob(f"*/{_SENDING}*"):
            if self._is_stale(stale):
                self.unclaim(stale)
        return sorted(int(p.parent.name) for p in self.root.glob(f"*/{FINAL_NAME}") if p.parent.name.isdigit())


    def _is_stale(self, claimed: Path) -> bool:
        """A claim of a process that is gone, or one with this process's id that this process did not make (the pid
        of a pilot killed while sending, reused by its successor: likely in a container, where pilots get the same
        small pid)."""
        pid = claimed.name.removeprefix(_SENDING)
        if not pid.isdigit():
            return False
        if int(pid) == os.getpid():
            return claimed.absolute() not in _OWN_CLAIMS
        return not Path(f"/proc/{pid}").exists()


def _load(path: Path) -> JobUpdate:
    body = json.loads(path.read_text(encoding="utf-8"))
    return JobUpdate(int(body["panda_id"]), str(body["state"]), body["fields"], final=True)


#: Seconds a final update is still tried once the pilot is stopping (a signal: the whole shutdown must end within about
#: two minutes; what is not sent by then stays on disk for the next pilot). An attempt begun just before the deadline
#: runs to its own bound (the client's ``stopping_seconds``, 10 s in the grid pilot).
STOPPING_DEADLINE = 25.0


@attrs.frozen
class FinalRetry:
    """How long to keep trying a final update: until ``deadline`` seconds from now, backing off between tries.

    Once the pilot is stopping, at most ``stopping_deadline`` more seconds are spent.
    """

    deadline: float = 600.0
    first_delay: float = 1.0
    max_delay: float = 60.0
    stopping_deadline: float = STOPPING_DEADLINE


class _Deadline:
    """The end of the tries, cut short the first time the pilot is seen stopping; pauses wake when it stops."""

    def __init__(self, policy: FinalRetry, stopping: StopSignal | None, pause: Callable[[float], object] | None):
        self._end = time.monotonic() + policy.deadline
        self._policy = policy
        self._stopping = stopping
        self._pause = pause
        self._cut = False

    def passed(self, delay: float = 0.0) -> bool:
        """Whether the end comes before ``delay`` more seconds."""
        if not self._cut and self._stopping is not None and self._stopping.is_set():
            self._cut = True
            self._end = min(self._end, time.monotonic() + self._policy.stopping_deadline)
        return time.monotonic() + delay > self._end

    def pause(self, delay: float) -> None:
        """Wait ``delay`` seconds (the given pause, else until the pilot stops, else a plain sleep)."""
        if self._pause is not None:
            self._pause(delay)
        elif self._stopping is not None and not self._stopping.is_set():
            self._stopping.wait(delay)
        else:
            time.sleep(delay)


def _try_send(reporter: JobReporter, update: JobUpdate) -> bool:
    try:
        answer = reporter.update_job(update)
    except (PilotError, OSError) as exc:
        log.warning("final update not sent panda_id=%d error=%s", update.panda_id, exc)
        return False
    if not answer.accepted:
        log.warning("final update refused panda_id=%d message=%s", update.panda_id, answer.message)
    return answer.accepted


def retry_until(attempt: Callable[[], bool], policy: FinalRetry, *, stopping: StopSignal | None = None,
                pause: Callable[[float], object] | None = None) -> bool:
    """Call ``attempt`` until it returns True (then True), backing off between calls as ``policy`` says, or until
    its deadline passed (then False); once ``stopping`` is set, at most ``policy.stopping_deadline`` more seconds."""
    return _retry(attempt, policy, _Deadline(policy, stopping, pause))


def _retry(attempt: Callable[[], bool], policy: FinalRetry, deadline: _Deadline) -> bool:
    delay = policy.first_delay
    while not attempt():
        if deadline.passed(delay):
            return False
        deadline.pause(delay)
        delay = min(delay * 2, policy.max_delay)
    return True


def _send_until(reporter: JobReporter, update: JobUpdate, policy: FinalRetry, deadline: _Deadline) -> bool:
    """Try, backing off, until acknowledged (True) or the deadline passed (False)."""
    return _retry(lambda: _try_send(reporter, update), policy, deadline)


def _send_claimed(store: FinalStore, reporter: JobReporter, claimed: Path, policy: FinalRetry,
                  deadline: _Deadline) -> bool:
    try:
        update = _load(claimed)
        sent = _send_until(reporter, update, policy, deadline)
    except BaseException:
        if claimed.exists():  # not sent: pending again (or set aside by the caller)
            store.unclaim(claimed)
        raise
    if not sent:
        store.unclaim(claimed)
        log.error("final update left for recovery panda_id=%d path=%s", update.panda_id, store.path(update.panda_id))
        return False
    store.mark_sent(claimed)
    log.info("final update acknowledged panda_id=%d state=%s", update.panda_id, update.state)
    return True


def deliver_final(
    update: JobUpdate,
    reporter: JobReporter,
    store: FinalStore,
    policy: FinalRetry | None = None,
    pause: Callable[[float], object] | None = None,
    *,
    stopping: StopSignal | None = None,
) -> bool:
    """Save ``update`` to disk, then send it until acknowledged or the policy's deadline passes.

    Args:
        update: the job's final update.
        reporter: where it is sent.
        store: where it is kept until acknowledged.
        policy: how long to try (default :class:`FinalRetry`).
        pause: waits between tries (default: a sleep that ends early when ``stopping`` is set).
        stopping: the pilot's stop; once set, the tries end within ``policy.stopping_deadline`` seconds.

    Returns:
        True when the server acknowledged it; False when it is left on disk for a later pilot (:func:`recover`).
        When the update cannot be written (a full disk), it is still sent, without a copy for recovery.
    """
    policy = policy or FinalRetry()
    deadline = _Deadline(policy, stopping, pause)
    try:
        store.save(update)
    except OSError as exc:  # e.g. the disk is full (often why the job failed): sending matters more than the copy
        log.error("final update not saved, sent without a copy on disk panda_id=%d error=%s", update.panda_id, exc)
        return _send_until(reporter, update, policy, deadline)
    claimed = store.claim(update.panda_id)
    if claimed is None:
        return store.is_sent(update.panda_id)
    return _send_claimed(store, reporter, claimed, policy, deadline)


def recover(
    store: FinalStore,
    reporter: JobReporter,
    policy: FinalRetry | None = None,
    pause: Callable[[float], object] | None = None,
    *,
    stopping: StopSignal | None = None,
) -> list[int]:
    """Send every pending final update found in the store; return the PandaIDs acknowledged now.

    ``policy.deadline`` (default 0: one try each) bounds the whole recovery, not each update: once an update could
    not be sent and the deadline passed, the rest are left for the next pilot without trying (a server that is down
    must not hold up the start once per pending job). ``pause`` and ``stopping`` as in :func:`deliver_final`.
    """
    policy = policy or FinalRetry(deadline=0.0)
    deadline = _Deadline(policy, stopping, pause)
    sent = []
    for panda_id in store.pending():
        claimed = store.claim(panda_id)
        if claimed is None:
            continue
        try:
            ok = _send_claimed(store, reporter, claimed, policy, deadline)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable final update set aside path=%s error=%s", store.path(panda_id), exc)
            os.replace(store.path(panda_id), store.path(panda_id).with_name(FINAL_NAME + ".bad"))
            continue
        if ok:
            sent.append(panda_id)
        elif deadline.passed():
            log.warning("recovery ended: the remaining final updates are left for the next pilot")
            break
    return sent
