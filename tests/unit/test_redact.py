"""The one redaction of pilotlib: ``redact_url``/``redact_text`` on the URL forms storages and signed URLs use,
every ``PilotError`` message, the apps' log filter, and the hand-over of a token to a command's environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pilotlib._redact import redact_text, redact_url
from pilotlib.errors import Direction, ErrorCode, PilotError, TransferError
from pilotlib.logcontext import SecretFilter
from pilotlib.panda._transport import _reason
from pilotlib.transfer import TransferRequest, TransferResult
from pilotlib.transfer.copytools._common import command_url, run_command
from pilotlib.transfer.copytools.rucio import RucioCopytool, _rucio_log
from pilotlib.transfer.report import output_file_info

S = "s3cr3tV4lue"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # XRootD / XrdHttp / dCache: the token as the authz CGI (also "Bearer%20<token>")
        (f"davs://se.example.org:443/atlas/f.root?authz={S}", "davs://se.example.org:443/atlas/f.root?authz=***"),
        (f"root://se.example.org:1094//atlas/f?authz=Bearer%20{S}&xrd.wantprot=ztn",
         "root://se.example.org:1094//atlas/f?authz=***&xrd.wantprot=ztn"),
        # RFC 6750 section 2.3
        (f"https://se.example.org/f?access_token={S}", "https://se.example.org/f?access_token=***"),
        (f"https://se.example.org/f?x=1&bearer_token={S}", "https://se.example.org/f?x=1&bearer_token=***"),
        # AWS SigV4 and SigV2 presigned URLs
        (f"https://s3.example.org/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={S}%2F20261201"
         f"&X-Amz-Date=20261201T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={S}",
         "https://s3.example.org/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
         "&X-Amz-Date=20261201T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=***"),
        (f"https://s3.example.org/b/k?AWSAccessKeyId={S}&Expires=1&Signature={S}",
         "https://s3.example.org/b/k?AWSAccessKeyId=***&Expires=1&Signature=***"),
        # user info in the netloc, with or without a password
        (f"https://atlas:{S}@se.example.org:8443/f", "https://***@se.example.org:8443/f"),
        (f"root://{S}@se.example.org//f", "root://***@se.example.org//f"),
        # a token in the fragment (OAuth implicit grant form)
        (f"https://h.example.org/cb#access_token={S}&state=1", "https://h.example.org/cb#access_token=***&state=1"),
    ],
)
def test_redact_url_forms(url: str, shown: str) -> None:
    """Each secret-bearing form shows ``***`` in place of the secret; scheme, host, port, path and the parameters
    that are no secret stay readable."""
    assert redact_url(url) == shown
    assert S not in redact_url(url)


@pytest.mark.parametrize("text", ["mc23:EVNT.pool.root", "/data/in/EVNT.pool.root", "root://h:1094//d/f.root",
                                  "https://h/p?svcClass=atlas&x=1", "lfn=a.root tool=xrdcp size=10",
                                  "BEARER_TOKEN_FILE=/run/user/1/bt_u1 X509_USER_PROXY=/tmp/x509up_u1"])
def test_text_without_secrets_is_unchanged(text: str) -> None:
    """DIDs, paths, plain URLs, ordinary ``key=value`` log fields and where a credential is (a path: WLCG bearer
    token discovery's ``BEARER_TOKEN_FILE`` names a file) are shown as they are."""
    assert redact_url(text) == text
    assert redact_text(text) == text


def test_redact_url_never_raises_on_a_bad_url() -> None:
    """A URL ``urlsplit`` refuses (a bracketed host that is no IP) is still redacted, not an error."""
    assert redact_url(f"root://u:{S}@[bad:port]/f?authz={S}") == "root://***@[bad:port]/f?authz=***"


def test_redact_text_in_a_copytool_stderr() -> None:
    """A tool's output: every URL in it, an XRootD path with its opaque part (``/f?authz=``), an
    ``Authorization: Bearer`` header (pilot3 masks that header: PanDAWMS/pilot3 a090538b
    ``pilot/util/https.py:982``), a JSON Web Token on its own and ``S3_SECRET_KEY=`` (pilot3
    ``pilot/util/container.py:550-553``) come out as ``***``."""
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwaWxvdCJ9.c2lnbmF0dXJl"
    text = (f"[ERROR] Unable to open /atlas/f?authz={S}; permission denied\n"
            f"copy https://u:{S}@h/p?access_token={S} failed (Authorization: Bearer {S}) token {jwt}\n"
            f"env S3_SECRET_KEY={S} S3_ACCESS_KEY=AK")
    shown = redact_text(text)
    assert S not in shown and jwt not in shown
    assert "/atlas/f?authz=***; permission denied" in shown
    assert "https://***@h/p?access_token=***" in shown and "Bearer ***" in shown and "S3_SECRET_KEY=***" in shown


def test_authz_with_a_space_before_the_token() -> None:
    """``authz=Bearer <token>`` written with a space (a decoded CGI) hides the token too, not only ``Bearer``."""
    assert S not in redact_text(f"open https://h/p?authz=Bearer {S} failed; authz=Bearer {S}")


def test_every_pilot_error_message_is_redacted() -> None:
    """A message quoting a tokenised URL is stored redacted, so ``str``, ``message`` and the ``pilotErrorDiag``
    sent to the server never carry the token."""
    err = TransferError(f"cannot open davs://h/f?authz={S}", Direction.STAGE_IN)
    assert str(err) == "cannot open davs://h/f?authz=***"
    assert S not in err.message and S not in err.diagnostics
    assert S not in str(PilotError(f"x https://h/p?X-Amz-Signature={S}"))


def test_secret_filter_redacts_a_third_party_record() -> None:
    """The apps' handler filter rewrites any record (here one with %-args, as rucio-clients logs) and its
    traceback text, and never drops a record."""
    record = logging.LogRecord("rucio", logging.DEBUG, __file__, 1, "xrootd.get: cmd: xrdcp -f %s %s",
                               (f"root://h//f?authz={S}", "/tmp/f"), None)
    record.exc_text = f"Traceback ... root://h//f?authz={S}"
    assert SecretFilter().filter(record) is True
    assert record.getMessage() == "xrootd.get: cmd: xrdcp -f root://h//f?authz=*** /tmp/f"
    assert S not in record.exc_text


def test_rucio_client_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """rucio-clients 41.5.1 logs the command its xrootd protocol runs, PFN included
    (``rse/protocols/xrootd.py:238-246``, ``xrootd.get: cmd: {shlex.join(args)}``); through pilotlib's logger
    function the PFN's token is ``***``."""
    with caplog.at_level(logging.DEBUG):
        _rucio_log(logging.DEBUG, "xrootd.get: cmd: xrdcp -f %s %s", f"root://h//f?authz={S}", "/tmp/f")
    assert "xrootd.get: cmd: xrdcp -f root://h//f?authz=*** /tmp/f" in caplog.text and S not in caplog.text


def test_command_url_moves_a_bearer_token_to_the_environment() -> None:
    """``authz``/``access_token``/``bearer_token`` leave the URL and come back as ``BEARER_TOKEN``, how
    rucio-clients 41.5.1 gives a token to xrdcp (``rse/protocols/xrootd.py:29-31``, ``_auth_env``); the other
    parameters stay in place; ``authz=Bearer%20<token>`` gives the bare token."""
    moved = command_url(f"root://h:1094//d/f?xrd.wantprot=ztn&authz=Bearer%20{S}&x=1", Direction.STAGE_IN)
    assert moved.url == "root://h:1094//d/f?xrd.wantprot=ztn&x=1" and dict(moved.env) == {"BEARER_TOKEN": S}
    assert dict(command_url(f"https://h/f?access_token={S}", Direction.STAGE_OUT).env) == {"BEARER_TOKEN": S}
    plain = command_url("root://h//d/f", Direction.STAGE_IN)
    assert plain.url == "root://h//d/f" and dict(plain.env) == {}


@pytest.mark.parametrize("url", [f"https://s3/b/k?X-Amz-Signature={S}", f"https://u:{S}@h/f",
                                 f"https://h/f?authz={S}&access_token=other"])
def test_command_url_refuses_a_secret_it_can_not_move(url: str) -> None:
    """A signature, a password or two different tokens can not go to a command but on its command line: refused
    with a TransferError (STAGEOUTFAILED here) that does not show the secret."""
    with pytest.raises(TransferError) as err:
        command_url(url, Direction.STAGE_OUT)
    assert S not in str(err.value) and err.value.code.name == "STAGEOUTFAILED"


def test_run_command_refuses_an_argument_with_a_secret() -> None:
    """The last guard: a command whose argv holds a secret is not started (``/proc/<pid>/cmdline`` is
    world-readable), and the error does not repeat the secret."""
    with pytest.raises(TransferError) as err:
        run_command(["true", f"root://h//f?authz={S}"], 5, Direction.STAGE_IN)
    assert "not run" in str(err.value) and S not in str(err.value)


def test_rucio_tool_keeps_a_tokenised_pfn_from_rucio_clients(tmp_path: Path) -> None:
    """A stage-in PFN with ``?authz=`` is not handed to rucio-clients' ``download_pfns``: its protocols run
    commands with the PFN as an argument (rucio 41.5.1 ``rse/protocols/xrootd.py:240-246`` ``xrdcp -f <pfn>``,
    ``rse/protocols/gfal.py:658-670`` ``gfal-copy``); the file fails with STAGEINFAILED, the error shows
    ``authz=***`` and no rucio client is even built beyond the factory."""
    request = TransferRequest(lfn="f.root", direction=Direction.STAGE_IN, scope="mc23", destination="f.root",
                              source=f"root://se.example.org//atlas/f.root?authz={S}", timeout=10)
    (result,) = RucioCopytool(client_factory=object).transfer([request], tmp_path)
    assert result.error_code is ErrorCode.STAGEINFAILED
    assert "root://se.example.org//atlas/f.root?authz=***" in str(result.error) and S not in str(result.error)
    assert not (tmp_path / "f.root").exists()


def test_final_update_surl_is_redacted() -> None:
    """The final update's ``xml`` (PanDAWMS/pilot3 a090538b ``pilot/control/data.py:1164-1179``,
    ``generate_fileinfo``: a ``surl`` per output) never carries a stage-out URL's signature to the server."""
    result = TransferResult(lfn="out.root", direction=Direction.STAGE_OUT, tool="gfal", local_path="out.root",
                            url=f"https://s3.example.org/b/out.root?X-Amz-Signature={S}", size=1,
                            checksum=("adler32", "00000001"), ddmendpoint="S3_DATADISK", guid="g")
    info = output_file_info([result])
    assert info["out.root"]["surl"] == "https://s3.example.org/b/out.root?X-Amz-Signature=***"


def test_dispatcher_transport_reason_is_redacted() -> None:
    """requests quotes the URL with its query in a connection error; the reason logged and raised by the
    dispatcher client shows the secret as ``***``."""
    exc = ConnectionError(f"HTTPSConnectionPool(host='h', port=25443): Max retries exceeded with url: "
                          f"/api/v1/creds/get_proxy?access_token={S}")
    assert _reason(exc).endswith("/api/v1/creds/get_proxy?access_token=***")


def test_quoted_secret_pairs_in_an_answer_excerpt() -> None:
    """A JSON answer or a ``repr`` quoted in an error (``"access_token": "..."``, ``'secrets': '...'``) shows the
    value as ``***``; ordinary quoted fields stay."""
    text = f"""answer: '{{"access_token": "{S}", "status": "ok"}}' job {{'pilotSecrets': '{S}', 'PandaID': '1'}}"""
    shown = redact_text(text)
    assert S not in shown
    assert '"access_token": "***", "status": "ok"' in shown and "'pilotSecrets': '***', 'PandaID': '1'" in shown
