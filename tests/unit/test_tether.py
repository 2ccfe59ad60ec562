"""The tether (``pilotlib/_tether.py``): the library's own commands are tied to the pilot's lifeline while it runs."""

from __future__ import annotations

from pilotlib import _tether as tether
from pilotlib.errors import Direction
from pilotlib.transfer.copytools._common import run_command


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def watch(self, pid: int, mark: str = "") -> None:
        self.calls.append(("watch", pid))

    def release(self, pid: int) -> None:
        self.calls.append(("release", pid))


def test_a_copy_command_is_watched_while_it_runs_and_released_after() -> None:
    """Within ``tied``, a command run by the copytools is announced when started and released when over; outside,
    nothing is announced."""
    recorder = _Recorder()
    with tether.tied(recorder):
        result = run_command(["sh", "-c", "echo $$"], 10, Direction.STAGE_IN)
    pid = int(result.stdout)
    assert recorder.calls == [("watch", pid), ("release", pid)]
    run_command(["true"], 10, Direction.STAGE_IN)
    assert len(recorder.calls) == 2


def test_a_tie_that_fails_does_not_fail_the_command() -> None:
    """A lifeline that is gone (its pipe closed) refuses the session: the command still runs."""

    class _Gone(_Recorder):
        def watch(self, pid: int, mark: str = "") -> None:
            raise OSError("lifeline gone")

    with tether.tied(_Gone()):
        assert run_command(["true"], 10, Direction.STAGE_IN).returncode == 0
