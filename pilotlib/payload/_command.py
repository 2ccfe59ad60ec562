"""Building the payload command from a job (private: import from :mod:`pilotlib.payload`).

Facts (pilot3): the generic user plug-in builds ``./<trf> <jobPars>`` run from the job's work directory, after fetching
the transformation when it is a URL (``pilot/user/generic/common.py`` ``get_payload_command``,
``get_analysis_run_command``); the payload's output goes to ``payload.stdout``/``payload.stderr``
(``pilot/util/default.cfg``); its environment is :func:`~pilotlib.payload.payload_environment`'s.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import stat
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO

import attrs

from pilotlib._bounded import Cancelled, bounded_call, tracked_session
from pilotlib._redact import redact_url
from pilotlib._tls import tls_verify
from pilotlib.errors import JobDefinitionError
from pilotlib.job import Job
from pilotlib.payload._environment import PayloadIdentity, payload_environment
from pilotlib.payload._split import split_args
from pilotlib.payload.errors import TransformNotFoundError, TrfChmodError, TrfDownloadError
from pilotlib.stop import StopSignal

if TYPE_CHECKING:  # imported on a download only: loading requests is a noticeable part of a pilot's start
    import requests

__all__ = ["MAX_ARG_BYTES", "MAX_JOB_PARS_BYTES", "PayloadCommand", "PayloadSettings", "build_command"]

log = logging.getLogger(__name__)

_URL_SCHEMES = ("http://", "https://")

#: The longest ``jobPars`` accepted, in bytes (UTF-8): Linux's ``ARG_MAX`` with the usual 8 MiB stack, the most the
#: kernel lets ``execve`` pass as arguments and environment together (a longer command fails with ``E2BIG``).
MAX_JOB_PARS_BYTES = 2 * 1024 * 1024

#: The longest single argument ``execve`` takes, in bytes with its NUL (Linux's ``MAX_ARG_STRLEN``, 32 pages): a
#: longer one fails with ``E2BIG`` whatever the total. With ``shell`` the whole script is one argument.
MAX_ARG_BYTES = 32 * 4096


def _frozen_env(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _str_tuple(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _opt_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class PayloadSettings:
    """How to build payload commands; the caller (the app) fills it once (the library reads no environment).

    Attributes:
        base_env: the environment the payload starts from (the app passes the environment it read once, in its
            settings; the pilot's private variables are removed, see :func:`~pilotlib.payload.payload_environment`);
            its ``PATH`` is where plain transformation names are looked up.
        proxy_path: path of the X.509 proxy file, passed as ``X509_USER_PROXY`` (the path only).
        token_path: path of the bearer token file, passed as ``BEARER_TOKEN_FILE`` (the path only).
        ca_path: the CA certificate directory, passed as ``X509_CERT_DIR``.
        panda_resource: the PanDA resource (queue) the pilot serves, passed as ``PANDA_RESOURCE``.
        queue_environ: the queue description's ``environ`` variables (over the base environment).
        extra_env: more variables to set (e.g. an event-service channel directory).
        download_timeout: seconds for downloading a transformation URL (the whole download, not each read).
        download_max_bytes: the largest transformation accepted (a bigger body fails the download).
        verify_tls: ``True`` (default), or a CA bundle/directory path (which must exist), for HTTPS downloads;
            ``False`` turns verification off with a warning (tests only).
        stdout_name: file name of the payload's stdout in the work directory.
        stderr_name: file name of the payload's stderr in the work directory.
        shell: run ``<transformation> <jobPars>`` through ``/bin/bash -c`` as pilot3 does (``jobPars`` may then use
            ``$VARIABLES``, quoting and shell operators, as production job definitions sometimes do); by default
            ``jobPars`` are split into arguments by shell quoting rules (the arguments :func:`shlex.split` gives, in
            linear time) and no shell is involved.
        max_job_pars: the longest ``jobPars`` accepted, in UTF-8 bytes (:data:`MAX_JOB_PARS_BYTES`); a longer one
            is refused before any work is done on it.
        setup: the site's set-up, shell lines (a script to ``source``, ``module load`` lines) run by ``/bin/bash``
            before the payload, which then replaces that shell (``exec``) with its arguments unchanged; the lines
            come from the pilot's configuration, never from the job. A transformation given by name is still looked
            up on the base environment's ``PATH``.
    """

    base_env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)
    proxy_path: Path | None = attrs.field(default=None, converter=_opt_path)
    token_path: Path | None = attrs.field(default=None, converter=_opt_path)
    ca_path: Path | None = attrs.field(default=None, converter=_opt_path)
    panda_resource: str = ""
    queue_environ: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)
    extra_env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)
    download_timeout: float = 120.0
    download_max_bytes: int = 256 * 1024 * 1024
    verify_tls: bool | str = True
    stdout_name: str = "payload.stdout"
    stderr_name: str = "payload.stderr"
    shell: bool = False
    max_job_pars: int = MAX_JOB_PARS_BYTES
    setup: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class PayloadCommand:
    """A payload ready to run: argument list, full environment, work directory and output files.

    Attributes:
        argv: the program and its arguments (never a shell string).
        env: the complete environment of the payload.
        workdir: the directory the payload runs in.
        stdout: file receiving the payload's stdout.
        stderr: file receiving the payload's stderr.
    """

    argv: tuple[str, ...] = attrs.field(converter=_str_tuple)
    env: Mapping[str, str] = attrs.field(converter=_frozen_env)
    workdir: Path = attrs.field(converter=Path)
    stdout: Path = attrs.field(converter=Path)
    stderr: Path = attrs.field(converter=Path)

    @argv.validator
    def _check_argv(self, _attr: object, value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError("argv must not be empty")


def build_command(job: Job, workdir: Path, settings: PayloadSettings,
                  stop: StopSignal | None = None, *, in_container: bool = False) -> PayloadCommand:
    """Build the payload command of a job.

    The transformation is resolved to an executable (downloaded into ``workdir`` when it is a URL); ``jobPars`` are
    split into arguments as :func:`shlex.split` splits them (in linear time: a long ``jobPars`` can not hold the
    pilot), after checking their length against ``settings.max_job_pars``. An empty transformation means
    ``jobPars`` hold the whole command.

    Args:
        job: the job.
        workdir: the job's work directory (exists).
        settings: environment and download settings.
        stop: the job's stop: it ends a transformation download at once.
        in_container: the command runs in a container: a transformation that is not in the work directory is
            looked up where it will run, inside the image (a missing one is then the runtime's failure).

    Returns:
        The command, to be run by a :class:`~pilotlib.payload.PayloadRunner`.

    Raises:
        TrfDownloadError: the transformation URL could not be fetched (1149).
        TrfChmodError: the downloaded transformation could not be made executable (1143).
        TransformNotFoundError: the transformation is missing, or ``jobPars``/the name are unusable (1346).
        JobDefinitionError: ``jobPars`` are longer than ``settings.max_job_pars`` bytes, or one argument (the whole
            script with ``settings.shell``) is longer than :data:`MAX_ARG_BYTES` less its NUL (1302).
    """
    workdir = Path(workdir)
    _check_length(job.job_pars, settings.max_job_pars)
    args = _split_pars(job.job_pars)
    if not job.transformation.strip() and not args:
        raise TransformNotFoundError(f"job {job.panda_id} has neither a transformation nor jobPars")
    trf = job.transformation.strip()
    program = resolve_transformation(trf, workdir, settings, stop, in_container=in_container) if trf else ""
    if settings.shell:
        script = f"{shlex.quote(program)} {job.job_pars}" if program else job.job_pars
        argv: tuple[str, ...] = ("/bin/bash", "-c", script)
    else:
        argv = (program, *args) if program else tuple(args)
    if settings.setup:
        argv = ("/bin/bash", "-c", "\n".join((*settings.setup, 'exec "$@"')), "pilot-setup", *argv)
    _check_arguments(argv)
    env = payload_env(job, workdir, settings)
    log.info("payload command built panda_id=%s program=%s nargs=%d", job.panda_id, argv[0], len(argv) - 1)
    return PayloadCommand(
        argv=argv,
        env=env,
        workdir=workdir,
        stdout=workdir / settings.stdout_name,
        stderr=workdir / settings.stderr_name,
    )


def _check_length(job_pars: str, limit: int) -> None:
    size = len(job_pars.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise JobDefinitionError("jobPars", f"<{size} bytes>",
                                 f"longer than {limit} bytes, the most a payload command line may hold")


def _check_arguments(argv: Sequence[str]) -> None:
    longest = max(len(arg.encode("utf-8", errors="surrogatepass")) + 1 for arg in argv)
    if longest > MAX_ARG_BYTES:
        raise JobDefinitionError("jobPars", f"<an argument of {longest - 1} bytes>",
                                 f"an argument longer than {MAX_ARG_BYTES - 1} bytes, the most the kernel passes to a "
                                 "program (MAX_ARG_STRLEN)")


def _split_pars(job_pars: str) -> list[str]:
    try:
        return split_args(job_pars)
    except ValueError as exc:
        raise TransformNotFoundError(f"cannot split jobPars into arguments: {exc}") from exc


def payload_env(job: Job, workdir: Path, settings: PayloadSettings) -> dict[str, str]:
    """The payload's environment: :func:`~pilotlib.payload.payload_environment` of the settings' base environment
    and identity, plus ``settings.extra_env``.

    Args:
        job: the job.
        workdir: the job's work directory.
        settings: base environment, credential paths and extra variables.

    Returns:
        A new dictionary (credentials as paths only, never their contents).
    """
    identity = PayloadIdentity(panda_resource=settings.panda_resource, proxy_path=settings.proxy_path,
                               token_path=settings.token_path, ca_path=settings.ca_path)
    env = payload_environment(job, settings.base_env, identity, workdir, settings.queue_environ)
    env.update(settings.extra_env)
    return env


def resolve_transformation(trf: str, workdir: Path, settings: PayloadSettings,
                           stop: StopSignal | None = None, *, in_container: bool = False) -> str:
    """Turn the job's ``transformation`` into the path of an executable.

    Args:
        trf: a URL (downloaded into ``workdir``), an absolute path, a name in ``workdir``, or a name on ``PATH``.
        workdir: the job's work directory.
        settings: download settings and the base environment's ``PATH``.
        stop: ends a download at once.
        in_container: an absolute path or a name on ``PATH`` is the image's: kept as it is, not looked up here.

    Returns:
        The executable's path (or the name found on ``PATH``, as an absolute path).

    Raises:
        TrfDownloadError: download failed (1149).
        TrfChmodError: chmod failed (1143).
        TransformNotFoundError: not found, or a relative path leaving the work directory (1346).
    """
    if trf.startswith(_URL_SCHEMES):
        return str(download_transformation(trf, workdir, settings, stop))
    if os.path.isabs(trf) and in_container:
        return trf
    if os.path.isabs(trf):
        if not os.access(trf, os.X_OK):
            raise TransformNotFoundError(f"transformation {trf} does not exist or is not executable")
        return trf
    local = (workdir / trf).resolve()
    if not local.is_relative_to(workdir.resolve()):
        raise TransformNotFoundError(f"transformation {trf!r} points outside the work directory")
    if local.is_file():
        return str(local)
    if in_container and "/" not in trf:
        return trf
    found = None if "/" in trf else shutil.which(trf, path=settings.base_env.get("PATH", ""))
    if found is None:
        raise TransformNotFoundError(f"transformation {trf!r} is neither in {workdir} nor on PATH")
    return os.path.abspath(found)


def _trf_file_name(url: str) -> str:
    try:
        name = os.path.basename(urllib.parse.urlsplit(url).path)
    except ValueError:  # "[" in the host: not a URL
        name = ""
    if not name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise TrfDownloadError(f"cannot derive a file name from transformation URL {redact_url(url)}")
    return name


def _copy_body(
    resp: requests.Response, out: BinaryIO, deadline: float, settings: PayloadSettings, shown: str
) -> None:
    """Copy the body as it arrives (``read1``: a trickling server can not hold a read past the deadline)."""
    size = 0
    while chunk := resp.raw.read1(1 << 16, decode_content=True):
        size += len(chunk)
        if size > settings.download_max_bytes:
            raise TrfDownloadError(f"transformation {shown} is larger than {settings.download_max_bytes} B")
        if time.monotonic() > deadline:
            raise TrfDownloadError(f"download of transformation {shown} took longer than {settings.download_timeout} s")
        out.write(chunk)


def download_transformation(url: str, workdir: Path, settings: PayloadSettings,
                            stop: StopSignal | None = None) -> Path:
    """Download a transformation into the work directory and make it executable.

    The whole download (connect, a server that trickles its answer, the body) ends within
    ``settings.download_timeout`` seconds, and at once when ``stop`` is set (:func:`pilotlib._bounded.bounded_call`).

    Args:
        url: an ``http(s)://`` URL.
        workdir: the job's work directory.
        settings: timeout and TLS verification.
        stop: the job's stop (the pilot's signal, the server's kill), or None.

    Returns:
        The downloaded file's path.

    Raises:
        TrfDownloadError: HTTP error, timeout (of the whole download), connection failure, a body larger than
            ``settings.download_max_bytes`` or an empty one (1149).
        TrfChmodError: chmod failed (1143).
        CaPathError: ``settings.verify_tls`` names a CA path that does not exist (1103).
    """
    import requests  # noqa: PLC0415 - lazy, see the module imports
    import urllib3  # noqa: PLC0415

    shown = redact_url(url)
    target = workdir / _trf_file_name(url)
    deadline = time.monotonic() + settings.download_timeout
    verify = tls_verify(settings.verify_tls, what=f"the transformation download {shown}")
    session = tracked_session()

    def fetch() -> None:
        with session.get(url, timeout=settings.download_timeout, verify=verify, stream=True) as resp:
            resp.raise_for_status()
            with target.open("wb") as out:
                _copy_body(resp, out, deadline, settings, shown)

    try:
        bounded_call(fetch, settings.download_timeout, stop, "trf-download")
    except Cancelled as exc:
        target.unlink(missing_ok=True)
        why = "stopped: the job is stopping" if exc.stopped else f"took longer than {settings.download_timeout} s"
        raise TrfDownloadError(f"download of transformation {shown} {why}") from exc
    except TrfDownloadError:
        target.unlink(missing_ok=True)
        raise
    except requests.HTTPError as exc:
        target.unlink(missing_ok=True)
        status = exc.response.status_code if exc.response is not None else "?"
        raise TrfDownloadError(f"download of transformation {shown} failed: HTTP {status}") from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise TrfDownloadError(f"download of transformation {shown} failed: {type(exc).__name__}") from exc
    if target.stat().st_size == 0:
        target.unlink()
        raise TrfDownloadError(f"transformation {shown} is empty")
    try:
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as exc:
        raise TrfChmodError(f"cannot make {target} executable: {exc}") from exc
    log.info("transformation downloaded url=%s path=%s bytes=%d", shown, target, target.stat().st_size)
    return target
