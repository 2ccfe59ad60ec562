"""Splitting ``jobPars`` into arguments: :func:`pilotlib.payload.split_args` against baselines of the same size.

Run: ``.venv/bin/python benchmarks/split.py`` (prints the figures; takes a few seconds).

For 1 MB and 10 MB of ``jobPars`` in four shapes (one long token, one double-quoted string, many short options,
backslash escapes), prints the time of ``split_args`` and, measured in the same run on the same text, the time of
``str.split`` (the floor: a C loop that knows no quoting) and the ratio between the two. ``shlex.split`` (what the
pilot used before, and what pilot3's ``pilot/info/jobdata.py`` uses) is timed on the one-token shape at 64 KiB and
128 KiB only: it is quadratic there (twice the size, four times the time; 1 MB took 52 s on the issue's machine and
10 MB never ends). A ``jobPars`` longer than ``MAX_JOB_PARS_BYTES`` (2 MiB) is refused before splitting; the 10 MB
figures show that the splitter itself would not hold the pilot either.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pilotlib.payload import split_args  # noqa: E402

MB = 1024 * 1024


def _shapes(size: int) -> dict[str, str]:
    return {
        "one token": "--data=" + "x" * (size - 7),
        "quoted": '"' + "a b " * ((size - 2) // 4) + '"',
        "many options": "--opt=1 " * (size // 8),
        "escapes": "a\\ b" * (size // 4),
    }


def _seconds(func: Callable[[str], object], text: str) -> float:
    began = time.perf_counter()
    func(text)
    return time.perf_counter() - began


def main() -> None:
    """Print the split times and the ratios."""
    print(f"{'size':>6} {'shape':<13} {'split_args s':>13} {'str.split s':>12} {'ratio':>7}")
    for size in (MB, 10 * MB):
        for shape, text in _shapes(size).items():
            ours, floor = _seconds(split_args, text), _seconds(str.split, text)
            print(f"{size // MB:>4}MB {shape:<13} {ours:>13.3f} {floor:>12.3f} {ours / floor:>7.1f}")
    print("shlex.split, one token (quadratic):")
    for size in (64 * 1024, 128 * 1024):
        text = _shapes(size)["one token"]
        print(f"{size // 1024:>4}KiB shlex.split {_seconds(shlex.split, text):.3f} s, "
              f"split_args {_seconds(split_args, text):.4f} s")


if __name__ == "__main__":
    main()
