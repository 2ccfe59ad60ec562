"""End to end: the payload dumps its environment; the site's variables, the credential paths and the job's identity
arrive, and no secret's content is in the dump, the pilot's logs, the reports or the log tarball."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from apps.grid_pilot.__main__ import main

from .helpers import job_definition, make_inputs

pytestmark = pytest.mark.integration

PROXY_CONTENT = "-----BEGIN CERTIFICATE-----\nPROXYCONTENT0123456789\n-----END CERTIFICATE-----\n"
TOKEN_CONTENT = "eyJhbGciOiJSUzI1NiJ9.TOKENFILECONTENT.signature"
ENV_TOKEN_CONTENT = "eyJhbGciOiJSUzI1NiJ9.ENVTOKENCONTENT.signature"
SECRETS = ("PROXYCONTENT0123456789", "TOKENFILECONTENT", "ENVTOKENCONTENT", "PILOTLIBPRIVATEVALUE")
SITE = {"SITE_NAME": "EXAMPLE-SITE", "VO_ATLAS_SW_DIR": "/cvmfs/atlas.cern.ch/repo/sw",
        "FRONTIER_SERVER": "(serverurl=http://frontier.example:8000/atlr)(proxyurl=http://squid.example:3128)",
        "HARVESTER_WORKER_ID": "77"}


def _dump_job(panda_id: int) -> dict[str, str]:
    definition = job_definition(panda_id)
    definition.update({
        "transformation": "/bin/sh",
        "jobPars": "-c 'env > payload_env.txt; cat in.dat > out.dat; echo {} > jobReport.json'",
        "taskID": "31", "jobsetID": "32", "coreCount": "8",
    })
    return definition


def _environment(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs}


def _all_text(*roots: Path) -> str:
    text = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        text.extend(p.read_bytes().decode("utf-8", "replace") for p in files)
    return "\n".join(text)


def _tarball_text(tarball: Path) -> str:
    with tarfile.open(tarball) as tar:
        members = [tar.extractfile(m) for m in tar.getmembers() if m.isfile()]
        return "\n".join(m.read().decode("utf-8", "replace") for m in members if m is not None)


def test_payload_gets_site_environment_paths_and_identity_never_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """ARC mode: the payload (``env > payload_env.txt``) sees the pilot's site variables, the queue description's
    ``environ`` variables (``pilot/user/atlas/common.py:534``), ``X509_USER_PROXY``,
    ``BEARER_TOKEN_FILE`` and ``X509_CERT_DIR`` as the paths given by ``--proxy``, ``--token-file`` and ``--capath``,
    ``PandaID``/``PANDAID``/``PanDA_TaskID``/``FRONTIER_ID`` (pilot3 3.7.0.36 ``pilot/user/atlas/setup.py:396-402``,
    ``pilot/control/job.py:2221``) and the core count as ``ATHENA_PROC_NUMBER``/``ATHENA_CORE_NUMBER``
    (``pilot/user/atlas/common.py:763-766``, ``2724-2726``); the pilot's PanDA token (``OIDC_AUTH_TOKEN``, unset by
    ``pilot/user/atlas/common.py:872-879``), a ``BEARER_TOKEN`` content and ``PILOTLIB_*`` settings do not reach it.
    Neither the proxy's nor any token's content is in the dump, the pilot's output and logs, ``heartbeat.json``,
    ``output.list`` or the log tarball."""
    proxy, token, cadir = tmp_path / "creds" / "x509up_u1", tmp_path / "creds" / "bt_u1", tmp_path / "certificates"
    proxy.parent.mkdir()
    cadir.mkdir()
    proxy.write_text(PROXY_CONTENT)
    token.write_text(TOKEN_CONTENT)
    for name, value in SITE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BEARER_TOKEN", ENV_TOKEN_CONTENT)
    monkeypatch.setenv("OIDC_AUTH_TOKEN", "pilot.token")
    monkeypatch.setenv("PILOTLIB_TEST_SETTING", "PILOTLIBPRIVATEVALUE")
    launch = tmp_path / "launch"
    launch.mkdir()
    make_inputs(launch)
    (launch / "pandaJobData.out").write_text(json.dumps(_dump_job(9301)))
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps({"nickname": "EXAMPLE_QUEUE", "state": "ACTIVE", "status": "online",
                                 "environ": "QUEUE_SQUID=http://squid.queue.example:3128 QUEUE_FLAG=on"}))
    work, storage = tmp_path / "work", tmp_path / "storage"
    status = main(["--mode", "arc", "--launch-dir", str(launch), "-q", "EXAMPLE_QUEUE", "-a", str(work),
                   "--queuedata-file", str(queue),
                   "--input-dir", str(launch), "--output-dir", str(storage), "--copytool", "mv", "--no-cleanup",
                   "--proxy", str(proxy), "--token-file", str(token), "--capath", str(cadir)])
    captured = capfd.readouterr()
    assert status == 0, captured.err[-2000:]
    env = _environment(work / "9301" / "payload_env.txt")
    assert {k: env.get(k) for k in SITE} == SITE
    assert (env["QUEUE_SQUID"], env["QUEUE_FLAG"]) == ("http://squid.queue.example:3128", "on")
    assert (env["X509_USER_PROXY"], env["BEARER_TOKEN_FILE"], env["X509_CERT_DIR"]) == (str(proxy), str(token),
                                                                                        str(cadir))
    assert {k: env.get(k) for k in ("PandaID", "PANDAID", "PanDA_TaskID", "PanDA_JobsetID", "FRONTIER_ID",
                                    "PANDA_RESOURCE", "ATHENA_PROC_NUMBER", "ATHENA_CORE_NUMBER")} == {
        "PandaID": "9301", "PANDAID": "9301", "PanDA_TaskID": "31", "PanDA_JobsetID": "32",
        "FRONTIER_ID": "[31_9301]", "PANDA_RESOURCE": "EXAMPLE_QUEUE", "ATHENA_PROC_NUMBER": "8",
        "ATHENA_CORE_NUMBER": "8"}
    assert not {"BEARER_TOKEN", "OIDC_AUTH_TOKEN", "PILOTLIB_TEST_SETTING"} & set(env)
    heartbeat = json.loads((launch / "heartbeat.json").read_text())
    assert heartbeat["state"] == "finished", heartbeat
    tarballs = list(storage.rglob("log.tgz"))
    assert len(tarballs) == 1
    everything = "\n".join([_all_text(work, launch), captured.out, captured.err, _tarball_text(tarballs[0])])
    with tarfile.open(tarballs[0]) as tar:  # the dump itself is in the tarball that was searched
        assert any(name.endswith("/payload_env.txt") for name in tar.getnames())
    for secret in SECRETS:
        assert secret not in everything, secret
