"""Container start-up cost per runtime, run for real: the wall time of ``true`` wrapped by each runtime
(:meth:`~pilotlib.containers.ContainerRuntime.wrap`, as the payload runner starts it) against bare ``true``.

Run: ``.venv/bin/python benchmarks/containers.py [--repeat N]`` (default 20; prints the median and the best of each,
and their ratio to bare ``true``). The image is the tests' busybox root file system: a directory for bubblewrap,
imported into a Podman storage of the benchmark's own for Podman (``tests/fixtures/podman.py``: this node's Podman
needs a ``containers.conf``, see there). Podman's figure includes its guard (a Python start) and, after the run, is
measured up to the end of ``podman run``, not the guard's ``podman rm`` (which runs outside the payload's time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures.podman import make_podman_node  # noqa: E402
from fixtures.rootfs import make_busybox_rootfs  # noqa: E402

from pilotlib.containers import BubblewrapRuntime, ContainerRuntime, ContainerSpec, PodmanRuntime  # noqa: E402


def _times(command: Callable[[], tuple[tuple[str, ...], Mapping[str, str]]], cwd: Path, repeat: int) -> list[float]:
    """Wall times of ``repeat`` runs of the command (made anew for each run: a container name is used once)."""
    times = []
    for _ in range(repeat):
        argv, env = command()
        began = time.perf_counter()
        subprocess.run(argv, env=dict(env), cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return times


def _wrapped(runtime: ContainerRuntime, image: str, workdir: Path, env: Mapping[str, str],
             repeat: int) -> list[float]:
    runtime.check()
    return _times(lambda: runtime.wrap(("true",), env, ContainerSpec(image, workdir)), workdir, repeat)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmp:
        base = Path(tmp)
        workdir = base / "work" / "1"
        workdir.mkdir(parents=True)
        rootfs = make_busybox_rootfs(base / "busybox")
        (base / "podman").mkdir()
        node = make_podman_node(base / "podman")
        env = {**os.environ, **node.environ}
        bare = _times(lambda: (("true",), env), workdir, repeat)
        rows = [("bare true", bare),
                ("bubblewrap", _wrapped(BubblewrapRuntime(), str(rootfs), workdir, env, repeat)),
                ("podman", _wrapped(PodmanRuntime(storage=node.storage), node.image, workdir, env, repeat))]
        node.remove()
    print(f"{repeat} runs each (seconds)")
    print(f"{'':12} {'median':>9} {'best':>9} {'median/bare':>12} {'best/bare':>10}")
    for name, times in rows:
        median, best = statistics.median(times), min(times)
        print(f"{name:12} {median:9.4f} {best:9.4f} {median / statistics.median(bare):12.1f} "
              f"{best / min(bare):10.1f}")


if __name__ == "__main__":
    main()
