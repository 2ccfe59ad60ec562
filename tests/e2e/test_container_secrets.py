"""Secrets and isolation of a containerised payload (real bubblewrap): the proxy and the token file are bound into
the container as files and reach the payload as paths; nothing of the host but what was bound is visible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main
from pilotlib.transfer.paths import deterministic_path

from .helpers import job_definition, make_inputs, run_arc_job

pytestmark = pytest.mark.integration

PROXY = "-----BEGIN CERTIFICATE-----PROXY-CONTENT-7731\n"
TOKEN = "eyJTOKEN-CONTENT-9913\n"


def test_the_proxy_and_token_are_bound_files_and_the_host_is_not_seen(tmp_path: Path, busybox_rootfs: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Inside the container ``$X509_USER_PROXY`` and ``$BEARER_TOKEN_FILE`` name files holding the secrets (bound
    read-only: the payload cannot change them), the host's own files (``/etc/debian_version``) and the pilot's
    state directory are not there; the secrets' contents appear in no log, report or output of the pilot."""
    proxy, token = tmp_path / "x509up", tmp_path / "token"
    proxy.write_text(PROXY)
    token.write_text(TOKEN)
    script = ('cat "$X509_USER_PROXY" "$BEARER_TOKEN_FILE" > out.dat; '
              'test -e /etc/debian_version && echo host-visible >> out.dat; '
              f'test -e {tmp_path / "work" / "pilot-state"} && echo state-visible >> out.dat; '
              'echo x >> "$X509_USER_PROXY" 2>/dev/null && echo proxy-writable >> out.dat; true')
    job = job_definition(9501)
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": str(busybox_rootfs)})
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "pandaJobData.out").write_text(json.dumps(job))
    make_inputs(tmp_path / "in")
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": "bubblewrap:pilot",
             "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    status = main(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file",
                   str(tmp_path / "queue.json"), "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"),
                   "--output-dir", str(tmp_path / "storage"), "--proxy", str(proxy), "--token-file", str(token)])
    assert status == 0
    assert (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text() == PROXY + TOKEN
    assert proxy.read_text() == PROXY
    printed = capsys.readouterr()
    state = tmp_path / "work" / "pilot-state"
    for text in (printed.out, printed.err, (launch / "heartbeat.json").read_text(),
                 *(p.read_text(errors="replace") for p in state.glob("pilotlog*.txt"))):
        assert "PROXY-CONTENT-7731" not in text and "TOKEN-CONTENT-9913" not in text


def test_the_sites_proxy_from_the_environment_is_bound_too(tmp_path: Path, busybox_rootfs: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``--proxy``, the site's ``X509_USER_PROXY`` (the usual grid set-up) reaches the payload as it is and
    is bound into the container at that path; the CA directory ``--capath`` is bound read-only as well."""
    proxy, certs = tmp_path / "site-proxy", tmp_path / "certificates"
    proxy.write_text(PROXY)
    certs.mkdir()
    (certs / "ca.pem").write_text("CA\n")
    monkeypatch.setenv("X509_USER_PROXY", str(proxy))
    job = job_definition(9502)
    script = 'cat "$X509_USER_PROXY" "$X509_CERT_DIR/ca.pem" > out.dat'
    job.update({"transformation": "/bin/sh", "jobPars": f"-c '{script}'", "container_name": str(busybox_rootfs)})
    queue = {"nickname": "Q", "state": "ACTIVE", "status": "online", "container_type": "bubblewrap:pilot",
             "acopytools": {"pr": ["cp"], "pw": ["cp"], "pl": ["cp"]}}
    heartbeat = run_arc_job(tmp_path, job, queue, "--capath", str(certs))
    assert heartbeat["state"] == "finished", heartbeat
    assert (tmp_path / "storage" / deterministic_path("e2e", "out.dat")).read_text() == PROXY + "CA\n"
