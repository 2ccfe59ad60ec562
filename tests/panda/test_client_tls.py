"""The dispatcher client over HTTPS with a generated test CA: verification, client certificates and tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from panda_devserver import DevServer, make_test_pki
from pilotlib.errors import ErrorCode
from pilotlib.panda.base import JobRequest, JobUpdate
from pilotlib.panda.client import BearerToken, CallRetry, PandaClient, X509Proxy
from pilotlib.panda.errors import CommunicationError, CredentialError

pytestmark = pytest.mark.integration

REQUEST = JobRequest(site_name="TEST_Q", queue="TEST_Q")
NO_RETRY = CallRetry(attempts=1)


@pytest.mark.parametrize("dialect", ["legacy", "v1"])
def test_verified_https_with_ca_dir(request: pytest.FixtureRequest, dialect: str) -> None:
    """With the test CA's hashed directory as ca_dir, the client verifies the server and gets its job (a legacy
    client against a server that serves the legacy dialect too)."""
    server: DevServer = request.getfixturevalue("panda_tls_legacy" if dialect == "legacy" else "panda_server_tls")
    server.add_job({"PandaID": 5, "transformation": "t"})
    client = PandaClient(server.url, dialect, ca_dir=server.ca_dir)  # type: ignore[arg-type]
    assert [job.panda_id for job in client.get_jobs(REQUEST)] == [5]


def test_wrong_ca_is_refused_without_retry(panda_server_tls: DevServer, tmp_path: Path) -> None:
    """Against another CA the server is not trusted: CommunicationError 1318, one request attempt only."""
    other = make_test_pki(tmp_path, ca_name="another ca")
    client = PandaClient(panda_server_tls.url, ca_dir=other.ca_dir, retry=CallRetry(attempts=3, backoff=0.01))
    with pytest.raises(CommunicationError) as failed:
        client.get_jobs(REQUEST)
    assert failed.value.code == ErrorCode.COMMUNICATIONFAILURE and "SSLError" in str(failed.value)
    assert panda_server_tls.request_count("getJob") == 0


def test_default_verification_rejects_test_ca(panda_server_tls: DevServer) -> None:
    """Without ca_dir the system store is used, which does not trust the test CA: verification is on by default."""
    with pytest.raises(CommunicationError, match="SSLError"):
        PandaClient(panda_server_tls.url, retry=NO_RETRY).get_jobs(REQUEST)


def test_expired_server_certificate_is_refused(devserver_tls_expired: DevServer) -> None:
    """A server certificate that has expired is refused even though its CA is trusted."""
    client = PandaClient(devserver_tls_expired.url, ca_dir=devserver_tls_expired.ca_dir, retry=NO_RETRY)
    with pytest.raises(CommunicationError) as failed:
        client.get_jobs(REQUEST)
    assert "certificate has expired" in str(failed.value)


def test_client_certificate_from_proxy(devserver_tls_client_auth: DevServer) -> None:
    """An X509 proxy file is presented as client certificate; the server identifies the client by its subject."""
    server = devserver_tls_client_auth
    assert server.pki is not None
    server.set_user_proxy("-----BEGIN CERTIFICATE-----user proxy-----END CERTIFICATE-----")
    server.set_key_pair("pub", "PUBLIC", "priv", "PRIVATE")
    for dialect in ("legacy", "v1"):
        client = PandaClient(server.url, dialect, ca_dir=server.ca_dir,  # type: ignore[arg-type]
                             credentials=X509Proxy(server.pki.client_proxy))
        assert client.get_proxy() == "-----BEGIN CERTIFICATE-----user proxy-----END CERTIFICATE-----"
        pair = client.get_key_pair("pub", "priv")
        assert (pair.public_key, pair.private_key) == ("PUBLIC", "PRIVATE") and "PRIVATE" not in repr(pair)


def test_client_without_certificate_is_refused(devserver_tls_client_auth: DevServer) -> None:
    """A server requiring client certificates refuses a client without one: CommunicationError."""
    client = PandaClient(devserver_tls_client_auth.url, ca_dir=devserver_tls_client_auth.ca_dir, retry=NO_RETRY)
    with pytest.raises(CommunicationError):
        client.get_jobs(REQUEST)


def test_missing_proxy_file_is_noproxy(panda_server_tls: DevServer, tmp_path: Path) -> None:
    """A proxy file that does not exist is a CredentialError with NOPROXY (1163), before any request."""
    client = PandaClient(panda_server_tls.url, ca_dir=panda_server_tls.ca_dir,
                         credentials=X509Proxy(tmp_path / "x509up_u0"))
    with pytest.raises(CredentialError) as missing:
        client.update_job(JobUpdate(1, "running"))
    assert missing.value.code == ErrorCode.NOPROXY
    assert panda_server_tls.request_count("updateJob") == 0


def test_bearer_token_sent_and_never_logged(panda_tls_legacy: DevServer, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """The token travels as Authorization: Bearer with its Origin; it is in no log record and no exception."""
    token = tmp_path / "token"
    token.write_text("s3cr3t-token-value\n")
    panda_tls_legacy.inject_fault("updateJob", "http500", times=5)
    client = PandaClient(panda_tls_legacy.url, "legacy", ca_dir=panda_tls_legacy.ca_dir,
                         credentials=BearerToken(token, "atlas"), retry=CallRetry(attempts=2, backoff=0.001))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CommunicationError) as failed:
        client.update_job(JobUpdate(1, "running"))
    headers = panda_tls_legacy.last_headers("updateJob")
    assert headers["Authorization"] == "Bearer s3cr3t-token-value" and headers["Origin"] == "atlas"
    assert "s3cr3t" not in str(failed.value) and "s3cr3t" not in caplog.text
    assert "s3cr3t" not in repr(client._transport.credentials)


def test_get_proxy_over_plain_http_is_refused(panda_legacy: DevServer) -> None:
    """Without a client identity (plain HTTP) getProxy is refused with StatusCode 70, as a server before 1.0
    does."""
    with pytest.raises(CommunicationError) as refused:
        PandaClient(panda_legacy.url, "legacy").get_proxy()
    assert "StatusCode=70" in str(refused.value)
