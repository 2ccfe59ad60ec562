"""Apptainer and Singularity (``apptainer exec`` / ``singularity exec``): the payload in a ``.sif`` image, an unpacked
image directory (``/cvmfs/unpacked.cern.ch/...``) or a registry image (``docker://...``).

The command is an argument list, no shell in between::

    apptainer exec [--contain] -B WORKDIR[,/cvmfs][,SECRET:SECRET:ro...] <queue options> --pwd WORKDIR IMAGE ARGV...

Why this form, against pilot3's (``pilot/user/atlas/container.py:740-760``, ``container_wrapper``:
``export workdir=...; apptainer --verbose exec -B <queue options>,/cvmfs,${workdir},/home IMAGE /bin/bash -c
'cd $workdir;pwd;CMD'``):

- ``--pwd WORKDIR`` (Apptainer's documented ``exec`` option: the working directory inside) replaces pilot3's
  ``/bin/bash -c 'cd $workdir;...'``: the payload's argument list is passed as it is, no shell and no quoting, and
  an image needs no ``/bin/bash``.
- the work directory is bound read-write at its own path as pilot3 binds ``${workdir}``; ``/cvmfs`` only when the
  host has it (pilot3 always asks for it, ``container.py:746``, and a node without CVMFS then fails the bind); the
  proxy and token files read-only at their own paths (``SRC:DEST:ro``), so the payload reads them at the paths its
  environment names (``X509_USER_PROXY``, ``BEARER_TOKEN_FILE``). pilot3's ``/home`` is not bound: Apptainer binds
  the user's home directory itself (a queue that needs more adds it to its ``container_options``).
- the queue's ``container_options`` (pilot3 ``pilot/info/queuedata.py``, from ``catchall``) are split with shell
  quoting rules into separate arguments after pilotlib's ``-B`` (pilot3 appends its binds to the queue's string,
  ``container.py:742-746``, which works only when that string ends with a ``-B`` list; two ``-B`` options are
  equally valid to Apptainer). ``${workdir}`` (or ``$workdir``) in them is the work directory, as pilot3's shell
  expands it (``container.py:759`` exports ``workdir``; ``pilot/info/queuedata.py:224-241`` expects options such as
  ``-B /etc/grid-security/certificates,/cvmfs,${workdir} --contain``); options that bind it so leave it out of
  pilotlib's ``-B`` (a destination bound twice is refused).
- no ``--verbose`` (pilot3 has it, ``container.py:759``): its lines would go into the payload's stderr. No
  ``--silent`` or ``--quiet`` either: those hide Apptainer's warnings, and a warning such as ``Not mounting
  requested bind point`` is one of the failures recognised (:meth:`ApptainerRuntime.failure`).
- ``--contain`` (minimal ``/dev``, empty ``/tmp`` and home instead of the host's) only when asked for
  (``contain=True``): pilot3 does not use it.

The payload's environment is the ``apptainer`` process's environment: Apptainer passes the host's variables into
the container by default except ``PATH``, ``LD_LIBRARY_PATH`` and ``HOME``, which are the image's (Apptainer user
guide, *Environment and metadata*). So no variable goes on the command line (``--env``) and none needs an
``APPTAINERENV_`` copy; the payload's environment carries no secret anyway, only the paths of the bound files.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from pilotlib.containers._program import check_answers, find_program
from pilotlib.containers.base import ContainerSpec
from pilotlib.containers.errors import ContainerError, ImageNotFoundError
from pilotlib.errors import ErrorCode, PilotError

__all__ = ["APPTAINER_FAILURES", "ApptainerRuntime", "SingularityRuntime"]

#: The exit status of Apptainer and Singularity when they fail themselves (a ``FATAL`` message, Singularity 2's
#: ``ABORT``); any other status is the payload's.
RUNTIME_EXIT = 255

#: What Apptainer/Singularity write on stderr for their own failures, and the code of each, as pilot3 recognises
#: them (``pilot/common/errorcodes.py:465-477``, ``resolve_transform_error``; ``pilot/control/payload.py:842-847``,
#: ``set_error_code_from_stderr``), matched without case in lines carrying Apptainer's level prefix; the first
#: that matches wins.
APPTAINER_FAILURES: tuple[tuple[str, ErrorCode], ...] = (
    ("not mounting requested bind point", ErrorCode.SINGULARITYBINDPOINTFAILURE),
    ("no more available loop devices", ErrorCode.SINGULARITYNOLOOPDEVICES),
    ("failed to mount image", ErrorCode.SINGULARITYIMAGEMOUNTFAILURE),
    ("error: while mounting", ErrorCode.SINGULARITYIMAGEMOUNTFAILURE),
    ("failed invoking the newuser namespace runtime", ErrorCode.SINGULARITYNEWUSERNAMESPACE),
    ("failed to create user namespace", ErrorCode.SINGULARITYFAILEDUSERNAMESPACE),
    ("resource temporarily unavailable", ErrorCode.SINGULARITYRESOURCEUNAVAILABLE),
    ("could not open image", ErrorCode.IMAGENOTFOUND),
    ("while making image from oci registry", ErrorCode.IMAGENOTFOUND),
    ("singularity is not installed", ErrorCode.SINGULARITYNOTINSTALLED),
    ("apptainer is not installed", ErrorCode.APPTAINERNOTINSTALLED),
    ("operation not permitted", ErrorCode.SINGULARITYGENERALFAILURE),
)

#: A line of Apptainer's own log: ``FATAL:   ...``, ``ERROR  : ...``, ``WARNING: ...``, Singularity 2's ``ABORT  :``.
_LOG_LINE = re.compile(r"^\s*(FATAL|ABORT|ERROR|WARNING)\s*:", re.IGNORECASE)
#: The levels that end Apptainer: such a line matching no pattern is a general failure (1306).
_FATAL_LEVELS = ("FATAL", "ABORT")
#: An image reference that is not a local path (``docker://``, ``oras://``, ``library://``, ``https://``...).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: How the queue's options name the work directory (pilot3's shell variable).
_WORKDIR_NAMES = ("${workdir}", "$workdir")
#: Characters that end a path in a ``-B`` list (``SRC[:DEST[:OPTS]]``, comma separated).
_BIND_SEPARATORS = (",", ":")


class ApptainerRuntime:
    """The ``apptainer`` runtime (entry point ``apptainer``); :class:`SingularityRuntime` is the same for
    ``singularity``.

    Args:
        executable: the program (a name looked up on the ``PATH`` of ``base_env``, or a path).
        cvmfs: the host's CVMFS mount, bound when it exists.
        base_env: the pilot's environment (the app's, :attr:`~pilotlib.payload.PayloadSettings.base_env`): its
            ``PATH`` is where ``executable`` is looked up (None: the process's ``PATH``).
        contain: add ``--contain`` (no host ``/tmp``, home or ``/dev``).
    """

    name = "apptainer"
    #: The code of this runtime missing or not answering.
    not_installed = ErrorCode.APPTAINERNOTINSTALLED

    def __init__(self, executable: str = "", cvmfs: Path = Path("/cvmfs"), base_env: Mapping[str, str] | None = None,
                 contain: bool = False) -> None:
        self.executable = executable or self.name
        self.cvmfs = cvmfs
        self.contain = contain
        self._path = None if base_env is None else base_env.get("PATH", os.defpath)

    @property
    def program(self) -> str:
        """The executable found on the pilot's ``PATH`` (its name as given when it is not there)."""
        return find_program(self.executable, self._path)

    def check(self) -> None:
        """``<executable> --version`` answers.

        Raises:
            RuntimeNotInstalledError: it is not on the pilot's ``PATH`` or does not answer (Apptainer 1372,
                Singularity 1325).
        """
        check_answers(self.executable, self._path, ["--version"], name=self.name, code=self.not_installed)

    def command(self, argv: tuple[str, ...], spec: ContainerSpec) -> tuple[str, ...]:
        """The arguments after the program: ``exec [--contain] -B BINDS <options> --pwd WORKDIR IMAGE ARGV...``.

        Raises:
            ImageNotFoundError: the image is a local path that does not exist (1360; pilot3 checks an image path
                the same way, ``pilot/user/atlas/common.py:168-174``).
            ContainerError: a path that a ``-B`` list cannot hold (a ``,`` or ``:`` in it, 1308); queue options that
                do not split (an unclosed quote, QUEUEDATANOTOK).
        """
        if not _URI.match(spec.image) and not Path(spec.image).exists():
            raise ImageNotFoundError(f"container image {spec.image} does not exist")
        options = spec.options
        for name in _WORKDIR_NAMES:
            options = options.replace(name, str(spec.workdir))
        binds = [] if options != spec.options else [_bind(spec.workdir)]
        if self.cvmfs.is_dir():
            binds.append(_bind(self.cvmfs))
        binds += [_bind(bind.source, bind.inside, "ro" if bind.read_only else "") for bind in spec.binds]
        binds += [_bind(secret, secret, "ro") for secret in spec.secrets]
        args = ["exec", *(["--contain"] if self.contain else [])]
        args += ["-B", ",".join(binds)] if binds else []
        try:
            args += shlex.split(options)
        except ValueError as exc:
            raise ContainerError(ErrorCode.QUEUEDATANOTOK, f"container_options {spec.options!r}: {exc}") from exc
        return (*args, "--pwd", str(spec.workdir), spec.image, *argv)

    def wrap(self, argv: tuple[str, ...], env: Mapping[str, str],
             spec: ContainerSpec) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """``<program> exec ... IMAGE ARGV`` (:meth:`command`), the environment unchanged (Apptainer passes it in).

        Raises:
            ImageNotFoundError: the image is a local path that does not exist (1360).
            ContainerError: a path that a ``-B`` list cannot hold (1308), queue options that do not split.
        """
        return (self.program, *self.command(argv, spec)), env

    def outside_sessions(self, spec: ContainerSpec) -> tuple[int, ...]:
        """None: the container's processes are the wrapped command's children, in its session."""
        return ()

    def failure(self, exit_code: int, stderr: str) -> PilotError | None:
        """The runtime's own failure: exit status 255 and a line of Apptainer's log (``FATAL:``, ``ERROR:``,
        ``WARNING:``, ``ABORT:``) holding one of :data:`APPTAINER_FAILURES`, else a ``FATAL``/``ABORT`` line
        (SINGULARITYGENERALFAILURE 1306). None when the status is the payload's (any other status, or 255 without
        such a line).

        Unlike pilot3, which takes these patterns anywhere in the payload's stderr (and overrides only a zero
        exit code, ``pilot/common/errorcodes.py:495-500``), only Apptainer's own lines count: a payload that
        prints ``Operation not permitted`` and exits 255 keeps its own failure.
        """
        if exit_code != RUNTIME_EXIT:
            return None
        fatal = ""
        for line in stderr.splitlines():
            level = _LOG_LINE.match(line)
            if level is None:
                continue
            lowered = line.lower()
            for pattern, code in APPTAINER_FAILURES:
                if pattern in lowered:
                    return ContainerError(code, line.strip())
            if not fatal and level.group(1).upper() in _FATAL_LEVELS:
                fatal = line.strip()
        return ContainerError(ErrorCode.SINGULARITYGENERALFAILURE, fatal) if fatal else None


class SingularityRuntime(ApptainerRuntime):
    """The ``singularity`` runtime (entry point ``singularity``): Apptainer's command line, options and messages
    (Apptainer is Singularity renamed; SingularityCE keeps the same ``exec`` options), its own NOTINSTALLED code."""

    name = "singularity"
    not_installed = ErrorCode.SINGULARITYNOTINSTALLED


def _bind(source: Path, target: Path | None = None, options: str = "") -> str:
    """One entry of a ``-B`` list: ``SRC``, ``SRC:DEST`` or ``SRC:DEST:OPTS``."""
    paths = [str(source)] if target is None or (target == source and not options) else [str(source), str(target)]
    for path in paths:
        if any(sep in path for sep in _BIND_SEPARATORS):
            raise ContainerError(ErrorCode.SINGULARITYBINDPOINTFAILURE,
                                 f"cannot bind {path}: a -B list cannot hold a path with ',' or ':'")
    return ":".join([*paths, options] if options else paths)
