"""A signal that the kernel delivers to another thread than the main one still stops the pipeline at once.

The kernel picks any thread that does not block the signal, e.g. one of a transfer client's own threads (the XRootD
client's: seen as a SIGTERM handled only after a 50-second copy had ended). Python runs the handler on the main
thread, and only when that thread wakes: the pipeline's main thread must not sleep until the stages end.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from pilotlib.errors import ErrorCode
from pilotlib.job import Job
from pilotlib.pipeline import JobRun, Pipeline, Stage
from pilotlib.stop import Stop
from pilotlib.workflow import handle_signals


def test_a_signal_delivered_to_a_stage_thread_sets_the_stop_within_a_second(tmp_path: Path) -> None:
    """SIGTERM sent to the stage's thread (``pthread_kill``) while the stage waits for the stop: the handler runs,
    the stop is set with SIGTERM's error within a second, and the stage (which would wait 20 s) ends with it."""
    stop = Stop()
    stage_thread: list[int] = []
    waited: list[float] = []

    def slow(run: JobRun, stop: Stop) -> JobRun:
        stage_thread.append(threading.get_ident())
        begin = time.monotonic()
        stop.wait(20)
        waited.append(time.monotonic() - begin)
        return run

    jobs = [JobRun(Job(panda_id=1), tmp_path)]
    pipeline = Pipeline(lambda _stop: jobs.pop() if jobs else None, [Stage("slow", slow)], stop)

    def send() -> None:
        deadline = time.monotonic() + 10
        while not stage_thread and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        signal.pthread_kill(stage_thread[0], signal.SIGTERM)

    with handle_signals(stop):
        threading.Thread(target=send, daemon=True).start()
        (run,) = pipeline.run()
    assert stop.reason is not None and stop.reason.code == ErrorCode.SIGTERM
    assert waited and waited[0] < 1.5, waited
    assert run.failure is None  # the stop came while the stage ran; the stage itself decides what it means
