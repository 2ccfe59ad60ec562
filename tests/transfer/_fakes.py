"""Fake copytools for the stage-in/stage-out unit tests (the real ones are exercised against real services)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from pilotlib.errors import Direction, PilotError
from pilotlib.stop import StopSignal
from pilotlib.transfer.base import TransferRequest, TransferResult, failed_result, local_path
from pilotlib.transfer.registry import CopytoolRegistry

Behaviour = Callable[[TransferRequest, Path], PilotError | None]


class FakeTool:
    """A copytool that copies ``file://`` URLs with shutil, or fails as ``behaviour`` says; records every request."""

    def __init__(self, name: str, behaviour: Behaviour | None = None, schemes: tuple[str, ...] = ("file",)) -> None:
        self.name = name
        self.schemes = schemes
        self.behaviour = behaviour
        self.requests: list[TransferRequest] = []

    def unusable_reason(self) -> str | None:
        return None

    def transfer(self, requests: Sequence[TransferRequest], workdir: Path,
                 stop: StopSignal | None = None) -> list[TransferResult]:
        out = []
        for request in requests:
            self.requests.append(request)
            error = self.behaviour(request, workdir) if self.behaviour else None
            if error is not None:
                out.append(failed_result(request, self.name, error))
                continue
            if request.direction is Direction.STAGE_IN:
                src, dst = Path(request.source.removeprefix("file://")), local_path(workdir, request.destination,
                                                                                     request.direction)
            else:
                src = local_path(workdir, request.source, request.direction)
                dst = Path(request.destination.removeprefix("file://"))
                dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            out.append(TransferResult(lfn=request.lfn, direction=request.direction, tool=self.name,
                                      url=request.source if request.direction is Direction.STAGE_IN
                                      else request.destination, local_path=str(dst), size=dst.stat().st_size,
                                      seconds=0.01, ddmendpoint=request.ddmendpoint, guid=request.guid))
        return out


def registry_of(*tools: FakeTool) -> CopytoolRegistry:
    """A registry holding exactly these tool instances (no entry points)."""
    return CopytoolRegistry(entry_points=[], factories={t.name: (lambda t=t: t) for t in tools})
