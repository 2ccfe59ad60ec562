"""Run one of pilotlib's stand-alone program modules (the lifeline, the Podman guard) in a new interpreter.

Such a module imports only the standard library and runs as ``python -I -S <file> ARGS...``. When pilotlib is
imported from a zip archive (the single-file pilot, ``docs/single-file.rst``), the module has no file of its own on
disk; its source, read through its loader, is then given with ``-c`` (``sys.argv[1:]`` is the same either way).
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["script_argv"]


def script_argv(python: str, module: ModuleType) -> list[str]:
    """The argument list that runs ``module`` as a program with ``python`` in isolated mode (arguments to add).

    Raises:
        OSError: the module has neither a source file on disk nor a loader that gives its source.
    """
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py") and os.path.isfile(path):
        return [python, "-I", "-S", os.path.abspath(path)]
    loader = getattr(module, "__loader__", None)
    get_source = getattr(loader, "get_source", None)
    source = get_source(module.__name__) if get_source is not None else None
    if not isinstance(source, str):
        raise OSError(f"no source for {module.__name__} (file {path})")
    return [python, "-I", "-S", "-c", source]
