"""The ``pilot-devserver`` command: bad input files are refused with a message and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "must be a JSON object"),
    ("{not json", "Expecting property name"),
])
def test_bad_queue_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    """A --queue file that is not a JSON object stops the command before serving, naming the problem."""
    queue = tmp_path / "queue.json"
    queue.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "apps.devserver", "--port", "0", "--workdir", str(tmp_path / "w"), "--queue",
         str(queue)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
