"""The stop budget: the bounds of the steps a stopping pilot still takes add up to less than two minutes."""

from __future__ import annotations

from apps.grid_pilot.settings import Settings
from pilotlib.recovery import STOPPING_DEADLINE
from pilotlib.stages import HEARTBEAT_CLOSE_TIMEOUT, LOG_STOP_DEADLINE, STOP_BUDGET
from pilotlib.transfer.copytools._common import CANCEL_WAIT
from pilotlib.workflow import DISPATCHER_RETRY


def test_the_stopping_bounds_add_up_to_less_than_the_stop_budget() -> None:
    """The worst stop (SIGTERM mid-payload with a heartbeat stuck, the log step (tarball, copy, the pilot log alone)
    to its deadline, the final update retried to its deadline and its last attempt to the client's bound) ends
    within STOP_BUDGET (120 s, the two minutes a batch system leaves between SIGTERM and SIGKILL), with the grid
    pilot's defaults."""
    worst = (max(Settings().payload_grace, CANCEL_WAIT) + HEARTBEAT_CLOSE_TIMEOUT + LOG_STOP_DEADLINE
             + STOPPING_DEADLINE + DISPATCHER_RETRY.stopping_seconds)
    assert worst <= STOP_BUDGET - 10.0  # a margin for the steps that are not bounded one by one (process start, exit)
