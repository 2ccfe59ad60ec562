"""Build ``grid-pilot.pyz`` and ``hpc-pilot.pyz``: single-file pilots that run with only a Python 3.11 interpreter.

Run: ``.venv/bin/python scripts/build_single_file.py [--out dist]`` (``make single-file``). See
``docs/single-file.rst``.

Each archive (a zip with a ``#!/usr/bin/env python3`` line, built by :mod:`zipapp`) holds:

- the wheel's own packages ``pilotlib`` and ``apps`` (without ``apps/devserver`` and ``apps/grid_pilot/demo.py``,
  which need the local PanDA server, ``panda_devserver``, that is not shipped);
- the pure-Python runtime dependencies copied from this interpreter's site-packages: attrs (``attr``, ``attrs``),
  requests, urllib3, idna, charset_normalizer (without its optional compiled speed-ups: it falls back to the same
  code in pure Python), certifi, each with its licence files;
- ``pilotlib-<version>.dist-info`` with ``METADATA`` and ``entry_points.txt`` generated from ``pyproject.toml``, so
  that :func:`importlib.metadata.entry_points` finds the copytools, container runtimes and HPC site profiles;
- beside every ``x.py`` its byte code ``x.pyc`` (unchecked-hash, compiled by this interpreter): :mod:`zipimport`
  prefers ``x.pyc`` and never writes byte code, so without it every module is compiled at every start;
- ``__main__.py`` (and ``__main__.pyc``) calling the app's ``main``.

The heavy backends (gfal2, the Rucio clients, XRootD, mpi4py) are not inside: the node's interpreter imports them
from its own site-packages when it has them. The byte code matches the building interpreter's minor version (the
magic number); an archive run by another minor version still works, compiling as it imports.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import py_compile
import shutil
import sys
import tempfile
import tomllib
import zipapp
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The app of each archive: the module whose ``main()`` the archive's ``__main__`` calls.
APPS = {"grid-pilot": "apps.grid_pilot.__main__", "hpc-pilot": "apps.hpc_pilot.__main__"}

#: Our packages (the wheel's, without the local PanDA server) and what is left out of them.
OWN = ("pilotlib", "apps")
OWN_EXCLUDED = ("apps/devserver", "apps/grid_pilot/demo.py")

#: Runtime dependencies: distribution name -> its top-level packages (all pure Python).
DEPENDENCIES = {
    "attrs": ("attr", "attrs"),
    "requests": ("requests",),
    "urllib3": ("urllib3",),
    "idna": ("idna",),
    "charset-normalizer": ("charset_normalizer",),
    "certifi": ("certifi",),
}

#: Never copied: compiled extensions (the archive is pure Python), stubs, byte code of the venv.
SKIPPED_SUFFIXES = (".so", ".pyd", ".pyi", ".pyc", ".c", ".h")

MAIN = '''"""{program}: the single-file pilot's entry point."""
import sys

from {module} import main

sys.exit(main())
'''


def _skipped(path: Path) -> bool:
    """Caches, compiled code, stubs, and a dependency's own tests (certifi ships some)."""
    return bool({"__pycache__", "tests", "test"} & set(path.parts)) or path.name.endswith(SKIPPED_SUFFIXES)


def _copy_tree(source: Path, target: Path, excluded: tuple[Path, ...] = ()) -> None:
    for path in sorted(source.rglob("*")):
        if not path.is_file() or _skipped(path) or any(path.is_relative_to(e) for e in excluded):
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def _copy_own(stage: Path) -> None:
    excluded = tuple(REPO / e for e in OWN_EXCLUDED)
    for package in OWN:
        _copy_tree(REPO / package, stage / package, excluded)


def _copy_dependencies(stage: Path) -> None:
    for dist_name, packages in DEPENDENCIES.items():
        dist = importlib.metadata.distribution(dist_name)
        for package in packages:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise SystemExit(f"build: {package} ({dist_name}) is not installed in {sys.prefix}")
            _copy_tree(Path(next(iter(spec.submodule_search_locations))), stage / package)
        # its metadata and licences (importlib.metadata.version() works; RECORD/INSTALLER describe the venv)
        info = Path(str(dist.locate_file(f"{dist.metadata['Name']}-{dist.version}.dist-info")))
        if not info.is_dir():
            info = next(Path(str(dist.locate_file(""))).glob(f"{dist_name.replace('-', '_')}-*.dist-info"))
        target = stage / info.name
        _copy_tree(info, target)
        for name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            (target / name).unlink(missing_ok=True)


def _own_dist_info(stage: Path) -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name, version = str(project["name"]), str(project["version"])
    info = stage / f"{name}-{version}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {req}\n" for req in project["dependencies"])
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {project['description']}\n"
        f"Requires-Python: {project['requires-python']}\n{requires}")
    lines: list[str] = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in points.items()]
        lines.append("")
    lines.append("[console_scripts]")
    lines += [f"{key} = {value}" for key, value in project["scripts"].items() if key in APPS]
    info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n")
    return version


def _compile(stage: Path, label: str) -> int:
    """Byte-compile every module as ``x.pyc`` beside ``x.py`` (where zipimport looks); return how many."""
    count = 0
    for source in sorted(stage.rglob("*.py")):
        relative = source.relative_to(stage).as_posix()
        py_compile.compile(str(source), cfile=str(source.with_suffix(".pyc")), dfile=f"{label}/{relative}",
                           doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        count += 1
    return count


def build(out: Path) -> list[Path]:
    """Build both archives into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="pilotlib-pyz-") as tmp:
        common = Path(tmp) / "common"
        _copy_own(common)
        _copy_dependencies(common)
        version = _own_dist_info(common)
        for program, module in APPS.items():
            stage = Path(tmp) / program
            shutil.copytree(common, stage)
            (stage / "__main__.py").write_text(MAIN.format(program=program, module=module))
            modules = _compile(stage, f"{program}.pyz")
            target = out / f"{program}.pyz"
            partial = target.with_name(f".{target.name}.partial")
            zipapp.create_archive(stage, partial, interpreter="/usr/bin/env python3", compressed=True)
            partial.chmod(0o755)  # zipapp makes it executable by its owner only
            partial.replace(target)
            print(f"built {target} ({target.stat().st_size / 1024:.0f} KiB, {modules} modules, pilotlib {version}, "
                  f"byte code for Python {sys.version_info.major}.{sys.version_info.minor})")
            built.append(target)
    return built


def main() -> None:
    """Build the archives (``--out``, default ``dist/``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where to write them (default dist/)")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
