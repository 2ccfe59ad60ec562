"""Splitting ``jobPars``: the arguments :func:`shlex.split` gives, in linear time, and a length limit.

The peer's behaviour: pilot3 hands ``jobPars`` to ``bash -c`` (``pilot/user/generic/common.py``
``get_payload_command``) after parsing them with :func:`shlex.split` (``pilot/info/jobdata.py:828``,
``get_opts_pargs`` called from ``clean__jobparams``), so a long ``jobPars`` hangs pilot3 in the same quadratic loop;
this pilot splits with :func:`pilotlib.payload.split_args` and refuses what no ``execve`` could start.
"""

from __future__ import annotations

import errno
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotlib.errors import ErrorCode, JobDefinitionError
from pilotlib.job import Job
from pilotlib.payload import MAX_ARG_BYTES, MAX_JOB_PARS_BYTES, PayloadSettings, build_command, split_args

_ALPHABET = st.sampled_from(["a", "b", "=", "$", "#", " ", "\t", "\n", "\r", "\\", '"', "'", "\x0b", "\xa0", "\x00"])


def _shlex(text: str) -> tuple[list[str] | None, str | None]:
    try:
        return shlex.split(text), None
    except ValueError as exc:
        return None, str(exc)


def _ours(text: str) -> tuple[list[str] | None, str | None]:
    try:
        return split_args(text), None
    except ValueError as exc:
        return None, str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_split_args_gives_what_shlex_split_gives(text: str) -> None:
    """Quotes, escapes, empty quoted strings, shlex's four whitespace characters, other spaces and NUL as word
    characters: the same arguments as shlex.split, or the same ValueError message."""
    assert _ours(text) == _shlex(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("  a  b ", ["a", "b"]),
    ("a '' b", ["a", "", "b"]),
    ("--x='two words'\"and\"more", ["--x=two wordsandmore"]),
    (r'"a\"b\\c\d"', ['a"b\\c\\d']),
    (r"\'x\ y", ["'x y"]),
    ("#not a comment", ["#not", "a", "comment"]),
])
def test_split_args_examples(text: str, expected: list[str]) -> None:
    """Examples of the POSIX rules (and that they agree with shlex.split)."""
    assert split_args(text) == expected == shlex.split(text)


@pytest.mark.parametrize("shape", ["one token", "quoted", "many words", "escapes"])
def test_split_args_is_linear_on_megabytes(shape: str) -> None:
    """2 MB of jobPars (the most accepted) split in well under a second per shape; shlex.split needs tens of
    seconds for one 1 MB token (its token grows one character at a time)."""
    size = 2 * 1024 * 1024
    text = {"one token": "a" * size, "quoted": '"' + "a b " * (size // 4) + '"',
            "many words": "--ab=1 " * (size // 7), "escapes": "\\ x" * (size // 3)}[shape]
    began = time.monotonic()
    args = split_args(text)
    assert time.monotonic() - began < 3.0
    assert args


def test_long_token_command_is_built_at_once(tmp_path: Path) -> None:
    """A job whose jobPars hold 1 MB of long arguments (each just under the kernel's limit for one) gets its command
    in well under a second (one 1 MB token took 52 s)."""
    token = "--data=" + "x" * (MAX_ARG_BYTES - 100)
    pars = " ".join([token] * 8)
    began = time.monotonic()
    cmd = build_command(Job(panda_id=1, transformation="/bin/true", job_pars=pars), tmp_path, PayloadSettings())
    assert time.monotonic() - began < 2.0
    assert cmd.argv == ("/bin/true", *([token] * 8))


def test_the_kernel_refuses_an_argument_past_max_arg_bytes(tmp_path: Path) -> None:
    """MAX_ARG_BYTES is the kernel's own limit for one argument (MAX_ARG_STRLEN): execve takes an argument of
    MAX_ARG_BYTES - 1 bytes with its NUL and fails with E2BIG one byte longer, however small the total."""
    assert subprocess.run(["/bin/true", "x" * (MAX_ARG_BYTES - 1)], check=False).returncode == 0
    with pytest.raises(OSError) as info:
        subprocess.run(["/bin/true", "x" * MAX_ARG_BYTES], check=False)
    assert info.value.errno == errno.E2BIG


@pytest.mark.parametrize("shell", [False, True], ids=["argv", "shell-script"])
def test_an_argument_past_the_kernels_limit_is_refused(tmp_path: Path, shell: bool) -> None:
    """One argument longer than the kernel passes (200 KiB, far below the 2 MiB total) is refused at once with
    CONVERSIONFAILURE (1302) naming jobPars, instead of a payload that can never start (1305); with ``shell`` the
    whole script is one argument, so 200 KiB of short arguments is refused too."""
    pars = "x" * (200 * 1024) if not shell else " ".join(["ab"] * (70 * 1024))
    with pytest.raises(JobDefinitionError) as info:
        build_command(Job(panda_id=1, transformation="/bin/true", job_pars=pars), tmp_path,
                      PayloadSettings(shell=shell))
    assert info.value.code == ErrorCode.CONVERSIONFAILURE and info.value.field == "jobPars"
    assert "MAX_ARG_STRLEN" in str(info.value)


def test_jobpars_past_the_limit_are_refused_at_once(tmp_path: Path) -> None:
    """10 MB of jobPars (more than MAX_JOB_PARS_BYTES, 2 MiB: Linux's ARG_MAX) are refused with
    JobDefinitionError CONVERSIONFAILURE (1302) naming the field and the size, without splitting."""
    pars = "y" * (10 * 1024 * 1024)
    began = time.monotonic()
    with pytest.raises(JobDefinitionError) as info:
        build_command(Job(panda_id=1, transformation="/bin/true", job_pars=pars), tmp_path, PayloadSettings())
    assert time.monotonic() - began < 1.0
    assert info.value.code == ErrorCode.CONVERSIONFAILURE == 1302
    assert info.value.field == "jobPars"
    assert f"{10 * 1024 * 1024} bytes" in str(info.value) and str(MAX_JOB_PARS_BYTES) in str(info.value)


def test_jobpars_limit_counts_utf8_bytes(tmp_path: Path) -> None:
    """The limit is in UTF-8 bytes (what execve passes): 3 characters of 2 bytes pass a limit of 6 and fail one
    of 5."""
    job = Job(panda_id=1, transformation="/bin/true", job_pars="ééé")
    assert build_command(job, tmp_path, PayloadSettings(max_job_pars=6)).argv == ("/bin/true", "ééé")
    with pytest.raises(JobDefinitionError):
        build_command(job, tmp_path, PayloadSettings(max_job_pars=5))
