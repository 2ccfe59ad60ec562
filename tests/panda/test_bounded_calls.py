"""Every dispatcher call is bounded in total time and listens to the pilot's stop (real HTTP, the local server).

``requests`` bounds each socket operation, not a call: before, a server trickling its answer held a call for as long
as it liked (each byte came within the read timeout), and neither a hanging server nor a retry's backoff noticed the
pilot's stop. The faults are the devserver's ``hang`` (no answer) and ``trickle`` (one byte every ``seconds``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from panda_devserver import DevServer
from pilotlib.errors import ErrorCode, SigTermError
from pilotlib.panda.base import JobRequest, JobUpdate
from pilotlib.panda.client import CallRetry, PandaClient, Timeouts
from pilotlib.panda.errors import CommunicationError
from pilotlib.stop import Stop

pytestmark = pytest.mark.integration

REQUEST = JobRequest(site_name="TEST_Q", queue="TEST_Q", node="wn01")
JOB = {"PandaID": 5151, "prodSourceLabel": "managed", "transformation": "run.sh", "jobPars": "--x " + "y" * 300}


def _client(server: DevServer, stop: Stop | None = None, **retry: float) -> PandaClient:
    policy = CallRetry(**{"attempts": 3, "total_seconds": 60.0, "backoff": 0.01, "max_backoff": 0.02, **retry})
    return PandaClient(server.url, "v1", timeouts=Timeouts(connect=5, read=30), retry=policy,
                       rng=random.Random(1), stop=stop, ca_dir=server.ca_dir)


def _stop_after(stop: Stop, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, stop.set, args=(SigTermError("SIGTERM"),))
    timer.start()
    return timer


@pytest.fixture
def no_helper_left() -> Iterator[None]:
    """After the test, no request thread of a cut-off call is still running (its socket was shut down)."""
    yield
    deadline = time.monotonic() + 3
    while any(t.name.startswith("http-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a cut-off request's thread is still running"
        time.sleep(0.05)


@pytest.mark.reliability("faults", "server", "trickling answer cut off at the total bound")
def test_trickling_answer_is_cut_off_at_the_total_bound(panda_server: DevServer, no_helper_left: None) -> None:
    """A getJob answer trickled one byte every 0.2 s (each within the 30 s read timeout; the whole answer would
    take minutes) ends the call with CommunicationError (1318) at its 2 s bound, one attempt."""
    panda_server.add_job(JOB)
    panda_server.inject_fault("getJob", "trickle", times=3, seconds=0.2)
    began = time.monotonic()
    with pytest.raises(CommunicationError) as failed:
        _client(panda_server, total_seconds=2.0).get_jobs(REQUEST)
    assert 1.9 < time.monotonic() - began < 3.0
    assert failed.value.code == ErrorCode.COMMUNICATIONFAILURE
    assert "no answer within the call's bound" in str(failed.value)
    assert panda_server.request_count("getJob") == 1


@pytest.mark.reliability("faults", "server", "hanging call ends when the stop is set")
@pytest.mark.parametrize("server", ["panda_server", "panda_server_tls"])
def test_hanging_call_ends_at_once_when_the_stop_is_set(request: pytest.FixtureRequest, server: str,
                                                        no_helper_left: None) -> None:
    """A getJob the server never answers (30 s read timeout, 60 s bound), over HTTP and over verified HTTPS, ends
    soon after the stop (under 5 s from the start, the stop at 0.5 s: a loaded machine's margin, far below the 30 s
    the call would hang) with CommunicationError saying the pilot is stopping; no retry follows, and the request's
    thread ends (its socket, a TLS one too, is shut down)."""
    served: DevServer = request.getfixturevalue(server)
    served.inject_fault("getJob", "hang", times=3)
    stop = Stop()
    timer = _stop_after(stop, 0.5)
    began = time.monotonic()
    with pytest.raises(CommunicationError) as failed:
        _client(served, stop).get_jobs(REQUEST)
    timer.join()
    assert time.monotonic() - began < 5.0
    assert "the pilot is stopping" in str(failed.value)
    assert served.request_count("getJob") == 1


def test_backoff_between_retries_wakes_on_the_stop(panda_server: DevServer) -> None:
    """A retry's backoff (10 s after an HTTP 503) ends when the stop is set (at 0.3 s): the call ends under 5 s from
    the start (a loaded machine's margin, half the backoff), no second request."""
    panda_server.inject_fault("getJob", "http503", times=3)
    stop = Stop()
    timer = _stop_after(stop, 0.3)
    began = time.monotonic()
    with pytest.raises(CommunicationError) as failed:
        _client(panda_server, stop, backoff=10.0, max_backoff=10.0).get_jobs(REQUEST)
    timer.join()
    assert time.monotonic() - began < 5.0
    assert "the pilot is stopping" in str(failed.value)
    assert panda_server.request_count("getJob") == 1


def test_backoff_without_a_stop_waits(panda_server: DevServer) -> None:
    """Without a sleep function the client waits its backoff between retries on the stop's event: two 503s with a
    0.4 s backoff (jitter: 0.2 to 0.4 s each) take at least 0.4 s before the third request succeeds."""
    panda_server.add_job(JOB)
    panda_server.inject_fault("getJob", "http503", times=2)
    began = time.monotonic()
    (job,) = _client(panda_server, Stop(), backoff=0.4, max_backoff=0.4).get_jobs(REQUEST)
    assert time.monotonic() - began >= 0.4
    assert job.panda_id == 5151 and panda_server.request_count("getJob") == 3


@pytest.mark.reliability("faults", "server", "call while stopping: one short attempt")
def test_call_made_while_stopping_gets_one_short_attempt(panda_server: DevServer, no_helper_left: None) -> None:
    """Once the pilot is stopping a call (the final update) is still made, but once, for at most
    stopping_seconds (1 s here), however long the total bound: at least 0.9 s, under 5 s (a loaded machine's
    margin; without the short attempt the call would hang its 30 s read timeout)."""
    panda_server.inject_fault("updateJob", "hang", times=3)
    stop = Stop()
    stop.set(SigTermError("SIGTERM"))
    began = time.monotonic()
    with pytest.raises(CommunicationError):
        _client(panda_server, stop, stopping_seconds=1.0).update_job(JobUpdate(1, "failed"))
    assert 0.9 < time.monotonic() - began < 5.0
    assert panda_server.request_count("updateJob") == 1


def test_call_made_while_stopping_is_sent(panda_server: DevServer) -> None:
    """The stop does not refuse calls: a final update made once the pilot is stopping reaches the server."""
    panda_server.add_job(JOB)
    stop = Stop()
    client = _client(panda_server, stop)
    (job,) = client.get_jobs(REQUEST)
    stop.set(SigTermError("SIGTERM"))
    assert client.update_job(JobUpdate(job.panda_id, "failed", {"pilotErrorCode": 1201})).accepted
    assert panda_server.final_state(job.panda_id) == "failed"


def test_trickle_fault_delivers_the_whole_answer(panda_server: DevServer) -> None:
    """The devserver's trickle fault slows the answer but sends all of it: a client with time enough gets the job."""
    panda_server.add_job(JOB)
    panda_server.inject_fault("getJob", "trickle", times=1, seconds=0.001)
    (job,) = _client(panda_server).get_jobs(REQUEST)
    assert job.panda_id == 5151 and job.job_pars == JOB["jobPars"]


@pytest.mark.reliability("faults", "server", "hang past the read timeout")
def test_hang_fault_ends_when_the_server_is_cleared(panda_server: DevServer) -> None:
    """A request held by the hang fault is let go (its connection closed, nothing applied) by clear(): the client
    sees a failed call at once, not after the hour the fault would hold it."""
    panda_server.inject_fault("updateJob", "hang", times=1)
    errors: list[Exception] = []

    def call() -> None:
        try:
            _client(panda_server, attempts=1).update_job(JobUpdate(1, "running"))
        except CommunicationError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while panda_server.request_count("updateJob") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    panda_server.clear()
    caller.join(5)
    assert not caller.is_alive() and len(errors) == 1
    assert panda_server.updates(1) == []
