"""A runtime's program on the pilot's ``PATH``, and the check that it answers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from pilotlib.containers.errors import RuntimeNotInstalledError
from pilotlib.errors import ErrorCode

__all__ = ["check_answers", "find_program"]


def find_program(executable: str, path: str | None) -> str:
    """``executable`` as found on ``path`` (None: the process's ``PATH``); its name when it is not there."""
    return shutil.which(executable, path=path) or executable


def check_answers(executable: str, path: str | None, args: Sequence[str], *, name: str, code: ErrorCode,
                  timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``executable args`` (found on ``path``) and return what it said.

    Raises:
        RuntimeNotInstalledError: it is not there, does not end within ``timeout`` or exits non-zero (``code``; the
            message names ``name`` and the program's last line).
    """
    found = shutil.which(executable, path=path)
    try:
        if found is None:
            raise OSError(f"{executable} not found on PATH")
        done = subprocess.run([found, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeNotInstalledError(code, f"{name} is not usable: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeNotInstalledError(code, f"{name} is not usable: {said}")
    return done
