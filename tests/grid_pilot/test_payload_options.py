"""grid-pilot's credential options (--proxy/--cacert, --token-file, --capath) and the payload settings they make."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from apps.grid_pilot.__main__ import main
from apps.grid_pilot.cli import parse_settings
from apps.grid_pilot.compose import payload_settings
from pilotlib.errors import NoProxyError
from pilotlib.job import Job
from pilotlib.payload import TrfDownloadError, download_transformation, payload_env
from pilotlib.workflow import find_proxy


def test_proxy_and_token_file_options(tmp_path: Path) -> None:
    """``--proxy`` (also under pilot3's name ``--cacert``, pilot3 3.7.0.36 ``pilot.py:369-374``: "CA certificate to
    use with HTTPS calls to server, commonly X509 proxy") and ``--token-file`` are absolute paths in the settings."""
    s = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path), "--proxy", "x509up", "--token-file", "bt"])
    assert (s.proxy, s.token_file) == (Path("x509up").absolute(), Path("bt").absolute())
    assert parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path), "--cacert", "/p"]).proxy == Path("/p")


def test_config_file_keys_are_the_long_names(tmp_path: Path) -> None:
    """The config file names them like the options: ``proxy``, ``token-file``."""
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('[grid-pilot]\nmode = "arc"\nlaunch-dir = "/l"\nproxy = "/p/x509"\ntoken-file = "/p/bt"\n')
    s = parse_settings(["--config", str(cfg)])
    assert (s.proxy, s.token_file) == (Path("/p/x509"), Path("/p/bt"))


def test_proxy_option_wins_for_the_dispatcher(tmp_path: Path) -> None:
    """The dispatcher's client certificate is ``--proxy`` when given, before ``X509_USER_PROXY``."""
    given, env_proxy = tmp_path / "given", tmp_path / "env"
    given.write_text("x")
    env_proxy.write_text("x")
    proxy = find_proxy({"X509_USER_PROXY": str(env_proxy)}, given)
    assert proxy is not None and proxy.path == given
    fallback = find_proxy({"X509_USER_PROXY": str(env_proxy)})
    assert fallback is not None and fallback.path == env_proxy


def test_payload_settings_carry_paths_and_the_sites_environment(tmp_path: Path) -> None:
    """The payload starts from the pilot's whole environment (less private variables) with ``--proxy``,
    ``--token-file`` and ``--capath`` as paths and the site name as ``PANDA_RESOURCE``; ``--capath`` also verifies
    transformation downloads. The token file's content is never read into the environment."""
    token = tmp_path / "bt"
    token.write_text("TOKEN-CONTENT")
    s = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path), "-q", "QUEUE_X", "--proxy", "/p/x509",
                        "--token-file", str(token), "--capath", "/etc/grid-security/certificates"])
    site = {"SITE_NAME": "S", "PILOTLIB_SECRET": "x", "BEARER_TOKEN": "TOKEN-CONTENT"}
    ps = payload_settings(attrs.evolve(s, environ=site))
    assert ps.verify_tls == "/etc/grid-security/certificates"
    env = payload_env(Job(panda_id=1, transformation="/bin/true"), tmp_path, ps)
    assert (env["SITE_NAME"], env["X509_USER_PROXY"], env["BEARER_TOKEN_FILE"], env["X509_CERT_DIR"],
            env["PANDA_RESOURCE"]) == ("S", "/p/x509", str(token), "/etc/grid-security/certificates", "QUEUE_X")
    assert "PILOTLIB_SECRET" not in env and "TOKEN-CONTENT" not in "".join(env.values())
    assert payload_settings(parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path)])).verify_tls is True


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a self-signed certificate; yields its base URL and a CA directory that
    trusts it (hashed as OpenSSL's capath lookup wants)."""
    from panda_devserver._tls import make_test_pki  # noqa: PLC0415 - needs cryptography, only this test does

    pki = make_test_pki(tmp_path / "pki")
    root = tmp_path / "www"
    root.mkdir()
    (root / "trf.sh").write_text("#!/bin/sh\necho ran\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", pki.ca_dir
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_capath_verifies_transformation_downloads(tmp_path: Path, https_server: tuple[str, Path]) -> None:
    """With ``--capath`` naming the CA directory that signed the server, the transformation is downloaded; without
    it the system store refuses the server (1149, TrfDownloadError)."""
    url, cadir = https_server
    s = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path), "--capath", str(cadir)])
    work = tmp_path / "work"
    work.mkdir()
    assert download_transformation(f"{url}/trf.sh", work, payload_settings(s)).read_text().endswith("ran\n")
    plain = payload_settings(parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path)]))
    with pytest.raises(TrfDownloadError):
        download_transformation(f"{url}/trf.sh", tmp_path, plain)


def test_missing_proxy_file_is_noproxy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``--proxy`` that names no file ends the pilot before any server call with NOPROXY (1163) and the wrapper
    exit status pilot3 gives that code (68: pilot3 a090538b ``pilot/util/auxiliary.py`` line 186), not an anonymous
    TLS session or a traceback."""
    missing = tmp_path / "x509up_missing"
    status = main(["-q", "Q", "--url", "https://127.0.0.1:9", "--proxy", str(missing),
                   "--workdir", str(tmp_path / "w")])
    assert status == 68
    assert f"NoProxyError code=1163: --proxy names no file: {missing}" in capsys.readouterr().out
    with pytest.raises(NoProxyError):
        find_proxy({}, missing)
