"""The guard of one Podman container: removes it once the ``podman run`` that started it is gone, however that ended
(private: used by :class:`~pilotlib.containers.podman.PodmanRuntime`).

``podman run`` does not hold its container: the container is a child of ``conmon``, in a session of its own, so
ending the payload's session (the runner's kill, the lifeline after a SIGKILLed pilot) ends only ``podman`` and
leaves the container running. This program, run as ``python -I -S _guard.py CLEANUP_JSON PODMAN_ARGV...``, forks a
guard that leaves the session (a kill of the session does not reach it) and watches its parent through a pidfd;
the parent, once the guard is ready, becomes ``podman run`` (``exec``: the same pid, the payload's session leader,
so the runner's signals reach ``podman``, which passes them to the container). When that process has exited, the
guard runs the clean-up command (``podman rm --force --ignore --time 0 NAME``: the container and its ``conmon`` are
removed; nothing is done when ``--rm`` already removed it) and exits.

It imports nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

__all__ = ["main"]

#: The longest the clean-up command may take (seconds).
CLEANUP_SECONDS = 60.0


def _guard(leader: int, cleanup: list[str], ready: int) -> None:
    """In the forked child: leave the session, let go of the payload's files (its stdout and stderr must close when
    podman ends, not when the clean-up does), say ready, wait for ``leader``'s exit, run ``cleanup``."""
    os.setsid()
    pidfd = os.pidfd_open(leader)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.write(ready, b"r")
    os.close(ready)
    select.select([pidfd], [], [])
    try:
        subprocess.run(cleanup, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=CLEANUP_SECONDS,
                       check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        del exc  # stderr is closed: nothing to tell; the next pilot's podman rm --all is the site's


def main(argv: list[str]) -> None:
    """``argv``: this program, the clean-up command as a JSON list, then the command to become."""
    cleanup, command = json.loads(argv[1]), argv[2:]
    leader = os.getpid()
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        try:
            _guard(leader, cleanup, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    ready = os.read(read_fd, 1)  # the guard is out of the session before podman starts the container
    os.close(read_fd)
    if ready != b"r":  # no guard (setsid or pidfd_open failed): a container nobody removes is not started
        sys.exit("pilotlib container guard: not ready, the container is not started")
    os.execvp(command[0], command)  # noqa: S606 - becomes podman, the argument list given


if __name__ == "__main__":
    main(sys.argv)
