"""What stage-in and stage-out share: copytools by name in priority order, bounded parallelism, per-file log lines."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pilotlib._redact import redact_url
from pilotlib.errors import Direction, PilotError, TransferError
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import Copytool, CopytoolFallback, TransferResult
from pilotlib.transfer.errors import NoUsableCopytoolError, UnknownCopytoolError
from pilotlib.transfer.registry import CopytoolRegistry

log = logging.getLogger("pilotlib.transfer")

T = TypeVar("T")
R = TypeVar("R")


class ToolChain:
    """The usable copytools of an activity, in its configured order, built once.

    Args:
        registry: where tools come from.
        names: copytool names in priority order (the queue's ``acopytools`` for the activity).
        direction: the transfer direction (picks error codes).
        options: keyword options per tool name.
        fallback: what runs a tool that is not usable here instead (the middleware container); None: such a tool
            is skipped.
    """

    def __init__(
        self,
        registry: CopytoolRegistry,
        names: Sequence[str],
        direction: Direction,
        options: Mapping[str, Mapping[str, object]] | None = None,
        fallback: CopytoolFallback | None = None,
    ) -> None:
        self.direction = direction
        self.tools: list[Copytool] = []
        self.skipped: dict[str, str] = {}
        unknown = 0
        for name in names:
            tool_options = dict((options or {}).get(name, {}))
            try:
                tool = registry.create(name, direction, **tool_options)
            except UnknownCopytoolError as exc:
                unknown += 1
                self.skipped[name] = exc.message
                continue
            except PilotError as exc:
                self.skipped[name] = exc.message
                continue
            reason = tool.unusable_reason()
            if reason is not None and fallback is not None:
                tool, reason = _instead(tool, reason, fallback, tool_options)
            if reason is None:
                self.tools.append(tool)
            else:
                self.skipped[name] = reason
        self._all_unknown = bool(names) and unknown == len(names)

    def error(self) -> NoUsableCopytoolError:
        """The error when no tool is usable."""
        return NoUsableCopytoolError(self.direction, self.skipped, all_unknown=self._all_unknown)


def _instead(tool: Copytool, reason: str, fallback: CopytoolFallback,
             options: Mapping[str, object]) -> tuple[Copytool, str | None]:
    """The fallback's tool for an unusable ``tool`` (and None), or ``tool`` and why neither can be used."""
    other = fallback(tool, options)
    if other is None:
        return tool, reason
    why = other.unusable_reason()
    if why is not None:
        return tool, f"{reason}; and not in the middleware container: {why}"
    log.info("copytool not usable here, run in the middleware container name=%s reason=%s", tool.name, reason)
    return other, None


def run_parallel(func: Callable[[T], R], items: Sequence[T], parallel: int) -> list[R]:
    """``[func(item) for item in items]`` on at most ``parallel`` threads, results in order.

    Each call runs in a copy of the caller's context, so context variables (the job a log record belongs to) follow.
    """
    if parallel <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    context = contextvars.copy_context()

    def call(item: T) -> R:
        return context.copy().run(func, item)

    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="transfer") as pool:
        return list(pool.map(call, items))


def log_start(direction: Direction, lfn: str, tool: str, size: int | None, url: str) -> None:
    """One line when a file's transfer starts."""
    log.info("%s start lfn=%s tool=%s size=%s url=%s", direction.value, lfn, tool, size, redact_url(url))


def log_done(result: TransferResult) -> None:
    """One line when a file is done: size, seconds, rate (or the error)."""
    if result.ok:
        rate = (result.size or 0) / result.seconds / 1e6 if result.seconds > 0 else 0.0
        log.info("%s done lfn=%s tool=%s size=%s seconds=%.2f rate_mb_s=%.2f", result.direction.value, result.lfn,
                 result.tool, result.size, result.seconds, rate)
    else:
        log.warning("%s failed lfn=%s tool=%s code=%s error=%s", result.direction.value, result.lfn, result.tool,
                    int(result.error_code or 0), result.error)


def is_stopping(stop: StopSignal | None) -> bool:
    """Whether ``stop`` (None: no stop) is set."""
    return stop is not None and stop.is_set()


def stopped_error(lfn: str, direction: Direction) -> TransferError:
    """The error of a file whose transfer was not started because the pilot is stopping."""
    log.warning("%s not started lfn=%s reason=the pilot is stopping", direction.value, lfn)
    return TransferError(f"transfer of {lfn} not started: the pilot is stopping", direction)
