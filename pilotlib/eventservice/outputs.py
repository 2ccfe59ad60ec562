"""Where the ranges' outputs go and how their statuses are reported, per mode.

- :class:`StoredRangeOutputs` (a pilot of the PanDA server), as pilot3's generic executor
  (``pilot/eventservice/workexecutor/plugins/genericexecutor.py`` ``stageout_es``, ``tarzip_output_es``,
  ``update_finished_event_ranges``): finished ranges' outputs are collected into a tar file
  (``EventService_premerge_<first range id>.tar``) every ``gap`` seconds (the queue's ``zip_time_gap``), the tar
  is stored (the event-service storage, through the pilot's stagers) and its ranges are reported finished with it
  as their ``zipFile`` (``updateEventRanges`` version 1); a tar that could not be stored is tried again at the next
  gap, and at the final flush its ranges are reported failed. A stored tar is never stored again: when its report
  fails (the call's outcome may be unknown: cut off by the pilot's stop after the server applied it), only the
  report is sent again, at the next flush (panda-server applies a final status only to a range still ``sent`` or
  ``running``, ``task_event_module.py:343-345`` at 9cc36033, so a repeat changes nothing). Failed ranges are
  reported at once, version 0, with their ``errorCode``.
- :class:`HarvesterRangeOutputs` (a Harvester worker): Harvester stages the outputs out and zips them itself; each
  finished range's output is moved into the job's directory in the access point and listed in
  ``event_status.dump.json`` as ``{path, type: es_output, fsize, chksum, guid, eventRangeID, eventStatus}``
  (HSF/harvester ``shared_file_messenger.py`` ``get_files_to_stage_out`` reads these keys, and computes the
  checksum itself when ``chksum`` is absent); a failed range as ``{eventRangeID, eventStatus: failed}``.

Each range is reported once: finished, or failed, never both.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from pilotlib.errors import PilotError
from pilotlib.eventservice.book import FailedRange, FinishedRange
from pilotlib.eventservice.errors import EventServiceRecoverableError
from pilotlib.panda.base import EventRangeSource, EventRangeUpdate, UpdateAnswer, ZipRecord
from pilotlib.recovery import FinalRetry, retry_until
from pilotlib.stop import StopSignal
from pilotlib.transfer.checksum import calculate_checksum

__all__ = ["HarvesterRangeOutputs", "RangeOutputs", "StoredRangeOutputs", "ZippedRangeReporter", "tar_name"]

log = logging.getLogger(__name__)

#: How long the final flush of a pilot of the server keeps sending a report of finished ranges that failed: a minute,
#: backing off from 1 s (the work of every range in the tar is at stake).
FINAL_REPORT_RETRY = FinalRetry(deadline=60.0, first_delay=1.0, max_delay=15.0)


class RangeOutputs(Protocol):
    """Takes the ranges' outcomes as they come and reports them (thread-safe)."""

    def finished(self, item: FinishedRange) -> None:
        """A range finished (reported at the next :meth:`flush` that stores it)."""
        ...

    def failed(self, items: Sequence[FailedRange]) -> None:
        """Ranges failed (reported at once)."""
        ...

    def flush(self, final: bool, stop: StopSignal | None = None) -> PilotError | None:
        """Store and report what is due (``final``: everything, now, trying a failed report again for a while; once
        ``stop`` is set, only briefly); the error that left ranges unstored or unreported, if any."""
        ...


@runtime_checkable
class ZippedRangeReporter(Protocol):
    """Reports ranges to the server: one by one (version 0) or with the file that holds their outputs."""

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Version 0."""
        ...

    def update_zipped_ranges(self, zip_file: ZipRecord, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Version 1, one group."""
        ...


def tar_name(first_range_id: str) -> str:
    """pilot3's name of a batch of outputs (``genericexecutor.py`` ``tarzip_output_es``)."""
    return f"EventService_premerge_{first_range_id}.tar"


def _failed_updates(items: Sequence[FailedRange], panda_id: int) -> list[EventRangeUpdate]:
    return [EventRangeUpdate(item.range.event_range_id, "failed", panda_id, {"errorCode": int(item.code)})
            for item in items]


def _report(what: str, call: Callable[[], UpdateAnswer]) -> PilotError | None:
    try:
        answer = call()
    except PilotError as exc:
        log.warning("event ranges not reported what=%s code=%d error=%s", what, int(exc.code), exc)
        return exc
    if not answer.accepted:
        log.warning("event ranges refused what=%s message=%s", what, answer.message)
        return EventServiceRecoverableError(f"the server refused the {what} ranges: {answer.message}")
    return None


class StoredRangeOutputs:
    """The server's way (see the module).

    Args:
        reporter: the dispatcher client.
        store: stores a file (the tar) and returns its zip record (raises a :class:`PilotError` when it cannot).
        panda_id: the job's.
        workdir: where the tars are made.
        gap: seconds between stores (the queue's ``zip_time_gap``).
        clock: seconds, monotonic.
        final_retry: how long the final flush keeps sending a report that failed (the transport's own retries
            spent), backing off, before the ranges count as not reported.
    """

    def __init__(self, reporter: ZippedRangeReporter, store: Callable[[Path, int], ZipRecord], panda_id: int,
                 workdir: Path, *, gap: float, clock: Callable[[], float] = time.monotonic,
                 final_retry: FinalRetry = FINAL_REPORT_RETRY) -> None:
        self._reporter = reporter
        self._store = store
        self._panda_id = panda_id
        self._workdir = Path(workdir)
        self._gap = gap
        self._clock = clock
        self._final_retry = final_retry
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: list[FinishedRange] = []
        self._unreported: list[tuple[ZipRecord, list[EventRangeUpdate]]] = []
        self._last = clock()
        self.stored_files = 0

    def finished(self, item: FinishedRange) -> None:
        """Queue the range for the next tar."""
        with self._lock:
            self._pending.append(item)

    def failed(self, items: Sequence[FailedRange]) -> None:
        """Report the ranges failed (version 0)."""
        if items:
            _report("failed", lambda: self._reporter.update_event_ranges(_failed_updates(items, self._panda_id)))

    def flush(self, final: bool, stop: StopSignal | None = None) -> PilotError | None:
        """Report the stored tars whose report failed; tar, store and report the pending ranges when the gap has
        passed (``final``: now, what cannot be stored is reported failed, and a failed report is sent again until
        ``final_retry``'s deadline)."""
        with self._flushing:
            report_error = self._report_stored()
            store_error, added = self._store_due(final)
            if added:
                report_error = self._report_stored()
            if final and report_error is not None:
                report_error = self._report_again(stop)
            return store_error or report_error

    def _store_due(self, final: bool) -> tuple[PilotError | None, bool]:
        """Tar and store the pending ranges when due: (the error that left them unstored, whether a tar was added
        to the ones to report)."""
        with self._lock:
            if not self._pending or not (final or self._clock() - self._last >= self._gap):
                return None, False
            batch, self._pending = self._pending, []
            self._last = self._clock()
        stored = self._store_batch(batch)
        if isinstance(stored, ZipRecord):
            self._unreported.append((stored, [EventRangeUpdate(item.range.event_range_id, "finished", self._panda_id)
                                              for item in batch]))
            return None, True
        if final:
            self.failed([FailedRange(item.range, stored.code, str(stored)) for item in batch])
        else:
            with self._lock:
                self._pending[:0] = batch  # tried again at the next gap
        return stored, False

    def _report_again(self, stop: StopSignal | None) -> PilotError | None:
        """Send the failed reports again, backing off, until they are taken or ``final_retry``'s deadline."""
        errors: list[PilotError | None] = []

        def report() -> bool:
            errors.append(self._report_stored())
            return errors[-1] is None

        sent = retry_until(report, self._final_retry, stopping=stop)
        log.log(logging.INFO if sent else logging.ERROR,
                "event range reports sent again sent=%s tries=%d unreported=%d", sent, len(errors),
                sum(len(updates) for _record, updates in self._unreported))
        return errors[-1]

    def _report_stored(self) -> PilotError | None:
        """Report the stored tars not reported yet; those whose report fails stay for the next flush."""
        left: list[tuple[ZipRecord, list[EventRangeUpdate]]] = []
        error: PilotError | None = None
        for record, updates in self._unreported:
            failure = _report("finished", functools.partial(self._reporter.update_zipped_ranges, record, updates))
            if failure is not None:
                left.append((record, updates))
                error = failure
        self._unreported = left
        return error

    def _store_batch(self, batch: Sequence[FinishedRange]) -> ZipRecord | PilotError:
        path = self._workdir / tar_name(batch[0].range.event_range_id)
        try:
            with tarfile.open(path, "w") as tar:
                for item in batch:
                    tar.add(item.output, arcname=item.output.name, recursive=False)
            record = self._store(path, len(batch))
        except PilotError as exc:
            log.warning("event-service outputs not stored file=%s ranges=%d code=%d error=%s", path.name, len(batch),
                        int(exc.code), exc)
            return exc
        except OSError as exc:
            return EventServiceRecoverableError(f"event-service outputs not packed in {path.name}: {exc}")
        finally:
            path.unlink(missing_ok=True)
        self.stored_files += 1
        log.info("event-service outputs stored file=%s ranges=%d size=%d", record.lfn, len(batch), record.fsize)
        return record


class HarvesterRangeOutputs:
    """Harvester's way (see the module).

    Args:
        source: Harvester's event-range files (its ``update_event_ranges`` merges into ``event_status.dump.json``).
        panda_id: the job's.
        place: the job's directory in the access point, where the outputs are moved for Harvester.
    """

    def __init__(self, source: EventRangeSource, panda_id: int, place: Path) -> None:
        self._source = source
        self._panda_id = panda_id
        self._place = Path(place)
        self._lock = threading.Lock()
        self._pending: list[EventRangeUpdate] = []

    def finished(self, item: FinishedRange) -> None:
        """Move the output into the access point and queue its entry."""
        target = self._place / item.output.name
        try:
            os.replace(item.output, target)
        except OSError:  # another file system
            shutil.move(item.output, target)
        fields = {"path": str(target), "type": "es_output", "fsize": target.stat().st_size,
                  "chksum": calculate_checksum(target), "guid": str(uuid.uuid4())}
        with self._lock:
            self._pending.append(EventRangeUpdate(item.range.event_range_id, "finished", self._panda_id, fields))

    def failed(self, items: Sequence[FailedRange]) -> None:
        """Write the failed entries at once."""
        if items:
            _report("failed", lambda: self._source.update_event_ranges(_failed_updates(items, self._panda_id)))

    def flush(self, final: bool, stop: StopSignal | None = None) -> PilotError | None:
        """Merge the queued entries into the dump (every call: Harvester reads it when it likes)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return None
        error = _report("finished", lambda: self._source.update_event_ranges(batch))
        if error is not None:
            with self._lock:
                self._pending[:0] = batch
        return error
