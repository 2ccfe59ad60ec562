"""Secrets never leak (issue 16, security): markers planted as the X509 proxy's content, a token file's content, the
pilot's own PanDA tokens in its environment and a password in the server URL appear nowhere a job leaves behind.

Each test runs a real pilot process (``grid-pilot`` in server, Harvester, ARC and container mode, ``hpc-pilot``
without MPI) on a payload that dumps its own environment and command line into its work directory, and samples
``/proc/<pid>/cmdline`` and ``/proc/<pid>/environ`` of every process descending from the pilot while the job runs.
Afterwards it greps, for every marker: those samples, the pilot's stdout and stderr, every file under the test's
directory (work area, state directory, launch directory or access point, storage; the log tarball's members too)
and, in server mode, everything the server received (every update's fields, every request's headers but
``Authorization``). The marker may be only in the proxy file and the token file themselves: the payload gets their
PATHS (``X509_USER_PROXY``, ``BEARER_TOKEN_FILE``), never their content, and the pilot's own PanDA tokens
(``PANDA_AUTH_TOKEN``, ``OIDC_AUTH_TOKEN``; pilot3 unsets them for the payload, ``pilot/user/atlas/common.py:872-879``
HEAD a090538b) and a token's content in ``BEARER_TOKEN`` (WLCG bearer token discovery) reach no process the pilot
starts.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import attrs
import pytest

from panda_devserver import DevServer

from .pilot_process import Finished, arc_launch, file_texts, grep, run_watched, spy_job
from .test_hpc_pilot import feed_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@attrs.frozen
class Secrets:
    """The planted secrets: the proxy and token files (their content a marker each) and the markers."""

    proxy: Path
    token: Path
    proxy_mark: str
    token_mark: str
    env_mark: str
    password_mark: str

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker."""
        return self.proxy_mark, self.token_mark, self.env_mark, self.password_mark

    def environ(self) -> dict[str, str]:
        """The pilot's environment: the test's, with the pilot's own PanDA tokens and a bearer token's content."""
        return {**os.environ, "PANDA_AUTH_TOKEN": self.env_mark, "OIDC_AUTH_TOKEN": self.env_mark,
                "PANDA_AUTH_TOKEN_KEY": self.env_mark, "BEARER_TOKEN": self.env_mark,
                "PANDA_AUTH_ORIGIN": "atlas.pilot"}


def _secrets(tmp_path: Path, pem: bytes = b"") -> Secrets:
    """Unique markers; the proxy file is the marker (then ``pem``, a client certificate and key, when a TLS server
    must accept it: PEM readers skip the text before ``-----BEGIN``)."""
    unique = uuid.uuid4().hex[:12]
    secrets = Secrets(tmp_path / "x509up_test", tmp_path / "bt_test", f"PROXYMARK{unique}", f"TOKFILEMARK{unique}",
                      f"ENVTOKENMARK{unique}", f"PASSWORDMARK{unique}")
    secrets.proxy.write_bytes(f"{secrets.proxy_mark}\n".encode() + pem)
    secrets.proxy.chmod(0o600)
    secrets.token.write_text(secrets.token_mark + "\n")
    secrets.token.chmod(0o600)
    return secrets


def _places(done: Finished, tmp_path: Path, secrets: Secrets) -> dict[str, bytes]:
    """Everything to grep: the /proc samples, the pilot's output, every file under the test's directory."""
    places = {f"/proc/{pid}/{what}": data for (pid, what), data in done.seen.items()}
    places.update({"pilot stdout": done.stdout, "pilot stderr": done.stderr})
    places.update(file_texts([tmp_path], allowed=[secrets.proxy, secrets.token]))
    return places


def _check(ledger: object, places: dict[str, bytes], secrets: Secrets, done: Finished) -> None:
    """No marker anywhere (the figure recorded first); the payload ran, was sampled, dumped its environment (in
    its work directory or the log tarball) and got the secrets' paths and nothing of the pilot's tokens."""
    hits = grep(secrets.markers, places)
    ledger.add(secrets_leaked=len(hits))  # type: ignore[attr-defined]
    shown = [(hit, places.get(hit.split(": ")[0].replace("/environ", "/cmdline"), b"")[:200]) for hit in hits[:20]]
    assert hits == [], shown
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert any(b"payload.sh" in data for (_pid, what), data in done.seen.items() if what == "cmdline"), \
        "the payload was never sampled"
    dumps = [data.decode() for place, data in places.items() if place.endswith("payload.env.txt")]
    assert dumps, "the payload left no environment dump"
    for payload_env in dumps:
        names = {line.partition("=")[0] for line in payload_env.splitlines()}
        assert not names & {"PANDA_AUTH_TOKEN", "OIDC_AUTH_TOKEN", "PANDA_AUTH_TOKEN_KEY", "BEARER_TOKEN"}
        assert f"BEARER_TOKEN_FILE={secrets.token}" in payload_env.splitlines() or "BEARER_TOKEN_FILE=/" in payload_env
        assert "X509_USER_PROXY=/" in payload_env


def _credential_options(secrets: Secrets) -> list[str]:
    return ["--proxy", str(secrets.proxy), "--token-file", str(secrets.token)]


@pytest.mark.reliability("security", "secrets", "server mode")
def test_no_secret_leaks_in_server_mode(panda_server_tls: DevServer, tmp_path: Path, ledger: object) -> None:
    """Server mode over verified TLS, the proxy (marker + the test CA's client certificate) presented to the
    server, a password in the server URL's user info: no marker in any process, file, output, or anything the
    server received (every update's fields, every request's headers but ``Authorization``)."""
    server = panda_server_tls
    assert server.pki is not None
    secrets = _secrets(tmp_path, server.pki.client_proxy.read_bytes())
    server.add_queue("SEC_Q", {"nickname": "SEC_Q", "state": "ACTIVE", "status": "online"})
    server.add_job(spy_job(9601, tmp_path / "in"))
    url = server.url.replace("https://", f"https://pilot:{secrets.password_mark}@")
    done = run_watched(["-q", "SEC_Q", "--url", url, "-a", str(tmp_path / "work"), "--input-dir",
                        str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
                        "--capath", str(server.ca_dir), "--heartbeat", "0.5", "--no-cleanup", "--max-jobs", "1",
                        *_credential_options(secrets)], secrets.environ())
    places = _places(done, tmp_path, secrets)
    places["server: updates"] = json.dumps(server.updates(9601)).encode()
    places["server: worker statuses"] = json.dumps(server.worker_statuses()).encode()
    for call in set(server.calls()):
        headers = {k: v for k, v in server.last_headers(call).items() if k.lower() != "authorization"}
        places[f"server: {call} headers"] = json.dumps(headers).encode()
    assert server.final_state(9601) == "finished", done.stderr.decode(errors="replace")[-3000:]
    _check(ledger, places, secrets, done)


def _harvester_access_point(tmp_path: Path, panda_id: int) -> Path:
    access_point = tmp_path / "access_point"
    feed_jobs(access_point, [spy_job(panda_id, tmp_path / "prestaged")], tmp_path / "prestaged")
    return access_point


@pytest.mark.reliability("security", "secrets", "harvester mode")
def test_no_secret_leaks_in_harvester_mode(tmp_path: Path, ledger: object) -> None:
    """Harvester mode (per-job directories, Harvester stages out): no marker in any process, in the files the
    pilot writes for Harvester (``worker_attributes.json``, ``jobReport.json``, ``event_status.dump.json``, the
    heartbeat, the log tarball in the access point) or anywhere else."""
    secrets = _secrets(tmp_path)
    access_point = _harvester_access_point(tmp_path, 9602)
    done = run_watched(["--mode", "harvester", "--harvester-workdir", str(access_point), "--harvester-per-job-dirs",
                        "-q", "Q", "-a", str(tmp_path / "work"), "--harvester-stageout", "harvester",
                        "--max-jobs", "1", "--no-cleanup", *_credential_options(secrets)], secrets.environ())
    assert json.loads((access_point / "9602" / "worker_attributes.json").read_text())["jobStatus"] == "finished"
    _check(ledger, _places(done, tmp_path, secrets), secrets, done)


@pytest.mark.reliability("security", "secrets", "arc mode")
def test_no_secret_leaks_in_arc_mode(tmp_path: Path, ledger: object) -> None:
    """ARC mode: no marker in any process, in ``heartbeat.json`` or any other file of the launch directory, the
    work area or the storage."""
    secrets = _secrets(tmp_path)
    launch = arc_launch(tmp_path, spy_job(9603, tmp_path / "in"))
    done = run_watched(["--mode", "arc", "--launch-dir", str(launch), "-a", str(tmp_path / "work"), "--input-dir",
                        str(tmp_path / "in"), "--output-dir", str(tmp_path / "storage"), "--copytool", "cp",
                        "--no-cleanup", *_credential_options(secrets)], secrets.environ())
    assert json.loads((launch / "heartbeat.json").read_text())["state"] == "finished"
    _check(ledger, _places(done, tmp_path, secrets), secrets, done)


@pytest.mark.reliability("security", "secrets", "container")
def test_no_secret_leaks_from_a_containerised_payload(tmp_path: Path, busybox_rootfs: Path, ledger: object) -> None:
    """ARC mode with the payload in a bubblewrap container (the proxy and token bound in as files): the
    container runtime's command line and environment, the payload's (inside the container) and every file hold
    no marker."""
    secrets = _secrets(tmp_path)
    job = spy_job(9604, tmp_path / "in")
    job.update({"transformation": "/bin/sh", "jobPars": "payload.sh", "container_name": str(busybox_rootfs)})
    launch = arc_launch(tmp_path, job)
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps({"nickname": "Q", "state": "ACTIVE", "status": "online",
                                 "container_type": "bubblewrap:pilot"}))
    done = run_watched(["--mode", "arc", "--launch-dir", str(launch), "-q", "Q", "--queuedata-file", str(queue),
                        "-a", str(tmp_path / "work"), "--input-dir", str(tmp_path / "in"), "--output-dir",
                        str(tmp_path / "storage"), "--copytool", "cp", "--no-cleanup",
                        *_credential_options(secrets)], secrets.environ())
    assert json.loads((launch / "heartbeat.json").read_text())["state"] == "finished", done.stderr[-3000:]
    assert any(b"bwrap" in data for (_pid, what), data in done.seen.items() if what == "cmdline")
    _check(ledger, _places(done, tmp_path, secrets), secrets, done)


@pytest.mark.reliability("security", "secrets", "hpc pilot")
def test_no_secret_leaks_from_the_hpc_pilot(tmp_path: Path, ledger: object) -> None:
    """``hpc-pilot`` as one rank without MPI, the site's proxy and token file named by ``X509_USER_PROXY`` and
    ``BEARER_TOKEN_FILE``: no marker in any process, in the files for Harvester or in the ranks' state."""
    secrets = _secrets(tmp_path)
    access_point = _harvester_access_point(tmp_path, 9605)
    env = {**secrets.environ(), "X509_USER_PROXY": str(secrets.proxy), "BEARER_TOKEN_FILE": str(secrets.token)}
    done = run_watched(["--harvester-workdir", str(access_point), "--site-name", "Q", "--grace", "2"], env,
                       app="apps.hpc_pilot")
    assert json.loads((access_point / "9605" / "worker_attributes.json").read_text())["jobStatus"] == "finished"
    _check(ledger, _places(done, tmp_path, secrets), secrets, done)
