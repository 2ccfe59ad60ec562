"""build_command: transformation lookup and download, jobPars splitting, the payload's environment."""

from __future__ import annotations

import gzip
import http.server
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotlib._redact import redact_url
from pilotlib.errors import ErrorCode, error_for_signal
from pilotlib.job import Job, parse_job
from pilotlib.payload import (
    PayloadRunner,
    PayloadSettings,
    TransformNotFoundError,
    TrfDownloadError,
    build_command,
)
from pilotlib.stop import Stop

TRF_BODY = b'#!/bin/sh\necho trf-ran "$@"\n'


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh work directory."""
    d = tmp_path / "work"
    d.mkdir()
    return d


def _script(path: Path, body: bytes = TRF_BODY) -> Path:
    path.write_bytes(body)
    path.chmod(0o755)
    return path


def test_trf_in_workdir_and_pars_split(workdir: Path) -> None:
    """A plain transformation name found in the work dir is run from there; jobPars are split like a shell would."""
    _script(workdir / "run.sh")
    job = Job(panda_id=42, transformation="run.sh", job_pars="""-a 1 --name 'two words' "x y" --flag""")
    cmd = build_command(job, workdir, PayloadSettings(base_env={"PATH": "/usr/bin:/bin"}))
    assert cmd.argv == (str(workdir / "run.sh"), "-a", "1", "--name", "two words", "x y", "--flag")
    assert cmd.workdir == workdir
    assert cmd.stdout == workdir / "payload.stdout"
    assert cmd.stderr == workdir / "payload.stderr"


def test_pars_are_not_shell_evaluated(workdir: Path) -> None:
    """Shell syntax in jobPars stays literal text: no substitution, no command chaining."""
    _script(workdir / "run.sh")
    job = Job(panda_id=1, transformation="run.sh", job_pars="$(touch pwned); echo `id` && x")
    cmd = build_command(job, workdir, PayloadSettings())
    result = PayloadRunner(cmd, poll_interval=0.05).run()
    assert result.stdout.read_text() == "trf-ran $(touch pwned); echo `id` && x\n"
    assert not (workdir / "pwned").exists()


def test_shell_mode_runs_pars_through_bash_as_pilot3(workdir: Path) -> None:
    """With ``shell=True`` the command is ``bash -c '<trf> <jobPars>'`` (pilot3's way): variables of the payload's
    environment expand, quoting is the shell's; the transformation path itself is quoted."""
    _script(workdir / "run.sh")
    job = Job(panda_id=7, transformation="run.sh", job_pars="--cores=$ATHENA_CORE_NUMBER 'a b'", core_count=4)
    cmd = build_command(job, workdir, PayloadSettings(base_env={"PATH": "/usr/bin:/bin"}, shell=True))
    assert cmd.argv[:2] == ("/bin/bash", "-c")
    result = PayloadRunner(cmd, poll_interval=0.05).run()
    assert result.exit_code == 0
    assert result.stdout.read_text() == "trf-ran --cores=4 a b\n"


def test_trf_on_path(workdir: Path, tmp_path: Path) -> None:
    """A plain name not in the work dir is looked up on the base environment's PATH (not the pilot's)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "mytrf")
    job = Job(panda_id=1, transformation="mytrf", job_pars="")
    cmd = build_command(job, workdir, PayloadSettings(base_env={"PATH": str(bindir)}))
    assert cmd.argv == (str(bindir / "mytrf"),)


def test_trf_absolute_path(workdir: Path, tmp_path: Path) -> None:
    """An absolute transformation path is used as it is."""
    trf = _script(tmp_path / "abs.sh")
    cmd = build_command(Job(panda_id=1, transformation=str(trf), job_pars="a"), workdir, PayloadSettings())
    assert cmd.argv == (str(trf), "a")


@pytest.mark.parametrize("trf", ["missing-trf", "/nonexistent/trf", "../outside.sh", "sub/../../outside.sh"])
@pytest.mark.reliability("bad input", "file names",
                         "transformation missing or with '..' leaving the work directory: TRANSFORMNOTFOUND")
def test_trf_not_found_or_escaping(workdir: Path, tmp_path: Path, trf: str) -> None:
    """A missing transformation, or a relative one leaving the work dir, gives TransformNotFoundError (1346)."""
    _script(tmp_path / "outside.sh")
    with pytest.raises(TransformNotFoundError) as info:
        build_command(Job(panda_id=1, transformation=trf), workdir, PayloadSettings(base_env={"PATH": ""}))
    assert info.value.code == ErrorCode.TRANSFORMNOTFOUND


def test_unbalanced_quotes(workdir: Path) -> None:
    """jobPars that cannot be split (an open quote) give TransformNotFoundError (1346), not a ValueError."""
    _script(workdir / "run.sh")
    with pytest.raises(TransformNotFoundError) as info:
        build_command(Job(panda_id=1, transformation="run.sh", job_pars="--x 'open"), workdir, PayloadSettings())
    assert info.value.code == 1346
    assert "jobPars" in str(info.value)


def test_empty_trf_uses_pars_as_command(workdir: Path) -> None:
    """Without a transformation, jobPars are the whole command; with neither, 1346."""
    cmd = build_command(Job(panda_id=1, job_pars="/bin/echo hi"), workdir, PayloadSettings())
    assert cmd.argv == ("/bin/echo", "hi")
    with pytest.raises(TransformNotFoundError):
        build_command(Job(panda_id=1), workdir, PayloadSettings())


def test_environment(workdir: Path, tmp_path: Path) -> None:
    """The payload gets the base env plus the job's identity, core numbers, work dir and credential paths (never
    contents); names as pilot3 3.7.0.36 exports them (``pilot/user/atlas/setup.py:396-423``, ``PANDAID``
    ``pilot/control/job.py:2221``, cores ``pilot/user/atlas/common.py:2694-2729``), the token as WLCG discovery's
    ``BEARER_TOKEN_FILE``."""
    proxy = tmp_path / "x509up"
    proxy.write_text("SECRET-PROXY")
    token = tmp_path / "token"
    token.write_text("SECRET-TOKEN")
    job = parse_job({"PandaID": "4242", "taskID": "17", "coreCount": "8", "transformation": "/bin/true"})
    settings = PayloadSettings(
        base_env={"PATH": "/usr/bin", "HOME": "/home/x"},
        proxy_path=proxy,
        token_path=token,
        extra_env={"PILOT_CHANNEL": "/tmp/chan"},
    )
    cmd = build_command(job, workdir, settings)
    assert dict(cmd.env) == {
        "PATH": "/usr/bin",
        "HOME": "/home/x",
        "PandaID": "4242",
        "PANDAID": "4242",
        "PanDA_TaskID": "17",
        "PanDA_AttemptNr": "0",
        "FRONTIER_ID": "[17_4242]",
        "CMSSW_VERSION": "[17_4242]",
        "INDS": "unknown",
        "RUCIO_ACCOUNT": "pilot",
        "PILOT_WORKDIR": str(workdir),
        "ATHENA_PROC_NUMBER": "8",
        "ATHENA_PROC_NUMBER_JOB": "8",
        "ATHENA_CORE_NUMBER": "8",
        "X509_USER_PROXY": str(proxy),
        "BEARER_TOKEN_FILE": str(token),
        "PILOT_CHANNEL": "/tmp/chan",
    }
    assert not any("SECRET" in v for v in cmd.env.values())
    assert not any("SECRET" in a for a in cmd.argv)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temporary directory; yields (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args: object, **kwargs: object) -> _Handler:
        return _Handler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_trf_downloaded_and_run(workdir: Path, http_root: tuple[str, Path]) -> None:
    """A transformation URL is downloaded into the work dir, made executable, and runs with the split jobPars."""
    base, root = http_root
    (root / "runGen-00-01").write_bytes(TRF_BODY)
    job = Job(panda_id=7, transformation=f"{base}/runGen-00-01", job_pars="-i 'in file'")
    cmd = build_command(job, workdir, PayloadSettings(base_env={"PATH": "/usr/bin:/bin"}))
    trf = workdir / "runGen-00-01"
    assert cmd.argv == (str(trf), "-i", "in file")
    assert trf.read_bytes() == TRF_BODY
    assert trf.stat().st_mode & stat.S_IXUSR
    result = PayloadRunner(cmd, poll_interval=0.05).run()
    assert result.exit_code == 0
    assert result.stdout.read_text() == "trf-ran -i in file\n"


@pytest.mark.integration
def test_trf_download_404(workdir: Path, http_root: tuple[str, Path]) -> None:
    """A transformation URL answering 404 gives TrfDownloadError (1149) and leaves no file behind."""
    base, _ = http_root
    job = Job(panda_id=7, transformation=f"{base}/missing-trf?token=SECRET")
    with pytest.raises(TrfDownloadError) as info:
        build_command(job, workdir, PayloadSettings())
    assert info.value.code == ErrorCode.TRFDOWNLOADFAILURE == 1149
    assert "HTTP 404" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert list(workdir.iterdir()) == []


def test_trf_download_connection_refused(workdir: Path) -> None:
    """A transformation URL nobody listens on gives TrfDownloadError (1149)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    job = Job(panda_id=7, transformation=f"http://127.0.0.1:{port}/trf")
    with pytest.raises(TrfDownloadError) as info:
        build_command(job, workdir, PayloadSettings(download_timeout=5))
    assert info.value.code == 1149
    assert list(workdir.iterdir()) == []


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces a huge body and sends it one byte every 20 ms, for as long as the client reads."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"#")
                self.wfile.flush()
                threading.Event().wait(0.02)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.integration
def test_trf_download_bounded_in_time_and_size(workdir: Path, http_root: tuple[str, Path]) -> None:
    """download_timeout bounds the whole download (a server trickling bytes can not hold the pilot), and a body
    above download_max_bytes is refused; both give TrfDownloadError (1149) and leave no file behind."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = Job(panda_id=7, transformation=f"http://127.0.0.1:{server.server_address[1]}/trf")
        with pytest.raises(TrfDownloadError) as info:
            build_command(job, workdir, PayloadSettings(download_timeout=0.3))
        assert info.value.code == 1149 and "took longer than 0.3 s" in str(info.value)
        assert list(workdir.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()
    base, root = http_root
    (root / "big-trf").write_bytes(b"#" * 5000)
    job = Job(panda_id=7, transformation=f"{base}/big-trf")
    with pytest.raises(TrfDownloadError) as info:
        build_command(job, workdir, PayloadSettings(download_max_bytes=4096))
    assert info.value.code == 1149 and "larger than 4096 B" in str(info.value)
    assert list(workdir.iterdir()) == []


class _Silent(http.server.BaseHTTPRequestHandler):
    """Reads the request and answers nothing for 30 s (a server that hangs before its headers)."""

    def do_GET(self) -> None:
        threading.Event().wait(30)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that never answers; yields its transformation URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/trf"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_trf_download_from_a_silent_server_ends_at_its_bound(workdir: Path, silent_server: str) -> None:
    """A server that never sends its headers holds the download no longer than download_timeout in all (before, a
    blocked read waited the whole read timeout, 120 s by default, whatever the download's bound): 1149, no file."""
    begin = time.monotonic()
    with pytest.raises(TrfDownloadError) as info:
        build_command(Job(panda_id=7, transformation=silent_server), workdir, PayloadSettings(download_timeout=0.5))
    assert time.monotonic() - begin < 3.0
    assert info.value.code == 1149 and "took longer than 0.5 s" in str(info.value)
    assert list(workdir.iterdir()) == []


@pytest.mark.integration
def test_trf_download_ends_at_once_on_the_stop(workdir: Path, silent_server: str) -> None:
    """The job's stop (SIGTERM, the server's kill) ends a transformation download under way at once, long before its
    bound (120 s here): 1149 saying the job is stopping, no file left."""
    stop = Stop()
    threading.Timer(0.3, stop.set, args=(error_for_signal(15),)).start()
    begin = time.monotonic()
    with pytest.raises(TrfDownloadError) as info:
        build_command(Job(panda_id=7, transformation=silent_server), workdir, PayloadSettings(download_timeout=120),
                      stop)
    assert time.monotonic() - begin < 3.0
    assert "stopped: the job is stopping" in str(info.value)
    assert list(workdir.iterdir()) == []


class _Gzipped(http.server.BaseHTTPRequestHandler):
    """Serves TRF_BODY gzip-compressed (Content-Encoding: gzip)."""

    def do_GET(self) -> None:
        body = gzip.compress(TRF_BODY)
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.integration
def test_trf_download_decodes_content_encoding(workdir: Path) -> None:
    """A transformation served gzip-encoded is stored decoded (the script itself, runnable)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gzipped)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = Job(panda_id=7, transformation=f"http://127.0.0.1:{server.server_address[1]}/trf")
        cmd = build_command(job, workdir, PayloadSettings())
    finally:
        server.shutdown()
        server.server_close()
    assert (workdir / "trf").read_bytes() == TRF_BODY and cmd.argv == (str(workdir / "trf"),)


def test_redact_url() -> None:
    """Logged transformation URLs show user info and a signature as ``***``; host, path and fragment stay."""
    assert redact_url("https://u:pw@host:8443/a/trf?sig=abc#x") == "https://***@host:8443/a/trf?sig=***#x"


def test_settings_are_frozen() -> None:
    """Settings and commands are immutable values; the env mapping cannot be changed in place."""
    settings = PayloadSettings(base_env={"A": "1"})
    with pytest.raises(AttributeError):
        settings.download_timeout = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.base_env["B"] = "2"  # type: ignore[index]
