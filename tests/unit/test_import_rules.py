"""The import rules of the kit (issue 11, docs/STYLE R1): read from the source with :mod:`ast`, every import counts,
also one inside a function (a lazy import is still a dependency).

- the library never imports an app;
- the job model and the errors import no mechanism: only each other and the ground-floor text helpers;
- the copytools know no PanDA (nothing under ``pilotlib.panda``, nor the pipeline or its stages);
- the payload package knows no PanDA client either;
- the containers know no PanDA either;
- the library never imports the development server (:mod:`panda_devserver`, a package of its own);
- the grid pilot app holds no part another pilot would need: its classes are its settings and their errors only,
  everything it runs comes from :mod:`pilotlib.workflow`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PILOTLIB = ROOT / "pilotlib"
GRID_PILOT = ROOT / "apps" / "grid_pilot"

#: The only classes the grid pilot app may define: its settings, their mode and the error of a bad setting.
APP_CLASSES = {"Settings", "Mode", "ConfigError"}

#: What the job model and the errors may import of pilotlib: each other and pure text helpers.
GROUND_FLOOR = {"pilotlib._jobmodel", "pilotlib._jobwire", "pilotlib._jsontext", "pilotlib._redact",
                "pilotlib.errors", "pilotlib.job"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PILOTLIB.parent).with_suffix("").parts[:-1])
    return _imports_of(path.read_text(encoding="utf-8"), package)


def _imports_of(source: str, package: str) -> set[str]:
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(PILOTLIB), ids=lambda p: str(p.relative_to(PILOTLIB)))
def test_the_library_never_imports_an_app(path: Path) -> None:
    """No module of pilotlib imports ``apps`` (the apps compose the library, never the other way round)."""
    assert not [name for name in _imports(path) if name == "apps" or name.startswith("apps.")]


@pytest.mark.parametrize("name", ["job.py", "_jobmodel.py", "_jobwire.py", "errors.py", "_jsontext.py", "_redact.py"])
def test_the_job_model_and_the_errors_import_no_mechanism(name: str) -> None:
    """The job model, the errors and their text helpers import nothing of pilotlib beyond each other."""
    ours = {n for n in _imports(PILOTLIB / name) if n == "pilotlib" or n.startswith("pilotlib.")}
    assert {n for n in ours if not any(n == g or n.startswith(g + ".") for g in GROUND_FLOOR)} == set()


@pytest.mark.parametrize("path", _modules(PILOTLIB / "transfer"), ids=lambda p: str(p.relative_to(PILOTLIB)))
def test_the_transfers_know_no_panda(path: Path) -> None:
    """Copytools and staging import nothing of ``pilotlib.panda``, the pipeline or its stages."""
    banned = ("pilotlib.panda", "pilotlib.pipeline", "pilotlib.stages", "panda_devserver")
    assert not [n for n in _imports(path) if n.startswith(banned)]


@pytest.mark.parametrize("path", _modules(PILOTLIB / "payload"), ids=lambda p: str(p.relative_to(PILOTLIB)))
def test_the_payload_knows_no_panda_client(path: Path) -> None:
    """The payload package imports nothing of ``pilotlib.panda`` or the devserver."""
    assert not [n for n in _imports(path) if n.startswith(("pilotlib.panda", "panda_devserver"))]


def test_the_rule_reader_sees_lazy_and_relative_imports() -> None:
    """The reader itself: an import inside a function and a relative import are both seen (a rule that could not
    fail would be worthless)."""
    source = "def f():\n    from apps.grid_pilot import compose\n\nfrom ..panda import client\nimport pilotlib.stages\n"
    found = _imports_of(source, "pilotlib.transfer")
    assert "apps.grid_pilot" in found and "pilotlib.panda.client" in found and "pilotlib.stages" in found


@pytest.mark.parametrize("path", _modules(PILOTLIB), ids=lambda p: str(p.relative_to(PILOTLIB)))
def test_the_library_never_imports_the_development_server(path: Path) -> None:
    """No module of pilotlib imports :mod:`panda_devserver`: the test server is never on a pilot's run path."""
    assert not [n for n in _imports(path) if n == "panda_devserver" or n.startswith("panda_devserver.")]


def test_the_grid_pilot_app_defines_no_part_of_a_pilot() -> None:
    """``apps/grid_pilot`` defines no class beyond its settings (``Settings``, ``Mode``, ``ConfigError``): the job
    retriever, the per-job set-up, the stagers, the payload executor and the mode parts are pilotlib's."""
    defined = {node.name for path in _modules(GRID_PILOT)
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.ClassDef)}
    assert defined == APP_CLASSES


def test_the_grid_pilot_app_runs_the_librarys_workflow() -> None:
    """The app's run goes through :func:`pilotlib.workflow.run_pilot` (its composition imports it), and the app's
    modules are a few hundred lines: settings, command line, composition, entry point and the demo."""
    assert "pilotlib.workflow.run_pilot" in _imports(GRID_PILOT / "compose.py")
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in _modules(GRID_PILOT))
    assert lines < 800


@pytest.mark.parametrize("path", _modules(PILOTLIB / "containers"), ids=lambda p: str(p.relative_to(PILOTLIB)))
def test_the_containers_know_no_panda(path: Path) -> None:
    """The container runtimes and the image choice import nothing of ``pilotlib.panda``, the pipeline, the stages or
    the workflow: a runtime is a command in, a command out."""
    banned = ("pilotlib.panda", "pilotlib.pipeline", "pilotlib.stages", "pilotlib.workflow", "panda_devserver")
    assert not [n for n in _imports(path) if n.startswith(banned)]
