"""The dispatcher client: a :class:`JobSource`, :class:`JobReporter` and :class:`EventRangeSource` over HTTP(S).

``PandaClient(base_url, dialect="v1" | "legacy", ...)`` speaks the legacy ``/server/panda/<method>`` API or the
current ``/api/v1/<module>/<method>`` API, with connect/read timeouts, bounded retries with backoff and jitter on
connection errors, timeouts and 5xx answers, TLS verified against a CA directory by default, and a client
certificate from an X509 proxy or an OIDC bearer token. Answers that break the protocol become a
:class:`~pilotlib.panda.errors.ServerAnswerError`; refusals a :class:`~pilotlib.panda.errors.ServerRefusedError`;
failures after the retries a :class:`~pilotlib.errors.CommunicationError` (all ``COMMUNICATIONFAILURE``, 1318).

Example::

    client = PandaClient("https://pandaserver.cern.ch:25443", dialect="v1",
                         ca_dir=Path("/etc/grid-security/certificates"),
                         credentials=X509Proxy(Path("/tmp/x509up_u1000")))
    jobs = client.get_jobs(JobRequest(site_name="CERN", queue="CERN"))
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from pilotlib.job import Job, parse_job
from pilotlib.panda._legacy import LegacyDialect
from pilotlib.panda._transport import BearerToken, CallRetry, Credentials, Timeouts, Transport, X509Proxy
from pilotlib.panda._v1 import V1Dialect
from pilotlib.panda.base import EventRange, EventRangeUpdate, JobRequest, JobUpdate, UpdateAnswer, ZipRecord
from pilotlib.stop import StopSignal

if TYPE_CHECKING:  # requests is imported when a transport is made (a launch-directory pilot never loads it)
    import requests

__all__ = ["BearerToken", "CallRetry", "Credentials", "KeyPair", "PandaClient", "Timeouts", "X509Proxy"]

log = logging.getLogger(__name__)


@attrs.frozen(repr=False)
class KeyPair:
    """A key pair from ``getKeyPair`` (its repr hides the keys)."""

    public_key: str
    private_key: str

    def __repr__(self) -> str:
        return "KeyPair(<withheld>)"


class _Dialect(Protocol):
    name: str

    def get_jobs(self, transport: Transport, request: JobRequest) -> list[dict[str, Any]]: ...
    def update_job(self, transport: Transport, update: JobUpdate) -> UpdateAnswer: ...
    def update_jobs(self, transport: Transport, updates: Sequence[JobUpdate]) -> list[UpdateAnswer]: ...
    def get_event_ranges(self, transport: Transport, job: Job, n_ranges: int) -> list[EventRange]: ...
    def update_event_ranges(self, transport: Transport, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer: ...
    def update_zipped_ranges(self, transport: Transport, zip_file: ZipRecord,
                             updates: Sequence[EventRangeUpdate]) -> UpdateAnswer: ...
    def get_key_pair(self, transport: Transport, public_name: str, private_name: str) -> tuple[str, str]: ...
    def get_proxy(self, transport: Transport, role: str | None) -> str: ...
    def update_worker_status(self, transport: Transport, *, site: str, worker_id: str, harvester_id: str,
                             status: str, node_id: str) -> None: ...


_DIALECTS: dict[str, Callable[[], _Dialect]] = {"legacy": LegacyDialect, "v1": V1Dialect}


class PandaClient:
    """A PanDA dispatcher client in one of the two dialects.

    Args:
        base_url: the server, scheme and port included (``https://host:25443``).
        dialect: ``"v1"`` (the default: panda-server 1.0 and later) or ``"legacy"`` (servers before 1.0).
        timeouts: connect and read timeouts.
        retry: the retry policy (bounded in count and total time).
        ca_dir: the CA directory to verify the server against (e.g. ``/etc/grid-security/certificates``); None uses
            the system's default store. Verification is always on unless ``verify=False``.
        credentials: an :class:`X509Proxy` or a :class:`BearerToken` (files read when a call is made), or None.
        verify: False disables TLS verification, with a WARNING naming the server (for nothing but a test).
        session: a ``requests.Session`` to reuse.
        sleep: how to wait between retries (tests pass a recorder); default: a wait that ends when ``stop`` is set.
        rng: the random source of the jitter.
        stop: the pilot's stop (:class:`pilotlib.stop.Stop`): a call in flight when it is set ends at once
            with a :class:`~pilotlib.errors.CommunicationError`; a call made once it is set makes one attempt of at
            most ``retry.stopping_seconds``. Every call ends within ``retry.total_seconds``.

    Raises:
        CaPathError: ``ca_dir`` does not exist (NOSUCHFILE, 1103).
        ValueError: an unknown dialect.
    """

    def __init__(self, base_url: str, dialect: Literal["legacy", "v1"] = "v1", *,
                 timeouts: Timeouts | None = None, retry: CallRetry | None = None, ca_dir: Path | None = None,
                 credentials: Credentials | None = None, verify: bool = True,
                 session: requests.Session | None = None, sleep: Callable[[float], None] | None = None,
                 rng: random.Random | None = None, stop: StopSignal | None = None) -> None:
        if dialect not in _DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}: 'legacy' or 'v1'")
        self.dialect: _Dialect = _DIALECTS[dialect]()
        self._transport = Transport(
            base_url, timeouts=timeouts or Timeouts(), retry=retry or CallRetry(), ca_dir=ca_dir, verify=verify,
            credentials=credentials, session=session, sleep=sleep, rng=rng or random.Random(),  # noqa: S311
            stop=stop,
        )

    def get_jobs(self, request: JobRequest) -> tuple[Job, ...]:
        """Ask for up to ``request.n_jobs`` jobs; an empty tuple when the server has none.

        Raises:
            pilotlib.errors.CommunicationError: the call failed or the answer is malformed.
            pilotlib.errors.JobDefinitionError: a job definition in the answer is malformed.
        """
        definitions = self.dialect.get_jobs(self._transport, request)
        jobs = tuple(parse_job({k: v for k, v in d.items() if k not in ("StatusCode", "nSent")})
                     for d in definitions)
        log.info("jobs received count=%d dialect=%s", len(jobs), self.dialect.name)
        return jobs

    def update_job(self, update: JobUpdate) -> UpdateAnswer:
        """Send one update (heartbeat or final); the answer carries the back-channel command, if any."""
        answer = self.dialect.update_job(self._transport, update)
        log.info("job updated panda_id=%d state=%s command=%s", update.panda_id, update.state,
                 answer.command.value if answer.command else None)
        return answer

    def update_jobs(self, updates: Sequence[JobUpdate]) -> list[UpdateAnswer]:
        """Send several updates in one call (``updateJobsInBulk``); one answer per update, in order."""
        return self.dialect.update_jobs(self._transport, updates) if updates else []

    def get_event_ranges(self, job: Job, n_ranges: int) -> Sequence[EventRange]:
        """Ask for up to ``n_ranges`` event ranges of ``job``; empty when none are left."""
        return tuple(self.dialect.get_event_ranges(self._transport, job, n_ranges))

    def update_event_ranges(self, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Report event range statuses (version 0); not ``accepted`` when the server refused one of them or failed
        the whole update."""
        if not updates:
            return UpdateAnswer(accepted=True)
        return self.dialect.update_event_ranges(self._transport, updates)

    def update_zipped_ranges(self, zip_file: ZipRecord, updates: Sequence[EventRangeUpdate]) -> UpdateAnswer:
        """Report event ranges whose outputs were zipped into one stored file: ``updateEventRanges`` version 1 with
        one group, ``zip_file`` and ``updates`` (pilot3 ``genericexecutor.py:93-118`` reports finished ranges so);
        the server records the zip file with every range of the group.

        Not ``accepted`` when the server refused one of the ranges or failed the whole update (it then applies
        none); ``possibly_applied`` as for :meth:`update_event_ranges`. An empty ``updates`` sends nothing.

        Raises:
            pilotlib.errors.CommunicationError: the call failed or the answer is malformed.
        """
        if not updates:
            return UpdateAnswer(accepted=True)
        answer = self.dialect.update_zipped_ranges(self._transport, zip_file, updates)
        log.info("zipped event ranges updated lfn=%s ranges=%d accepted=%s", zip_file.lfn, len(updates),
                 answer.accepted)
        return answer

    def get_key_pair(self, public_name: str, private_name: str) -> KeyPair:
        """Fetch a named key pair (``getKeyPair``)."""
        return KeyPair(*self.dialect.get_key_pair(self._transport, public_name, private_name))

    def get_proxy(self, role: str | None = None) -> str:
        """Fetch the user proxy (``getProxy``); the text is a secret: never log it."""
        return self.dialect.get_proxy(self._transport, role)

    def update_worker_status(self, *, site: str, worker_id: str, harvester_id: str, status: str,
                             node_id: str = "") -> None:
        """Tell the server the pilot's worker ``started`` or ``finished`` (``updateWorkerPilotStatus``)."""
        self.dialect.update_worker_status(self._transport, site=site, worker_id=worker_id, harvester_id=harvester_id,
                                          status=status, node_id=node_id)
