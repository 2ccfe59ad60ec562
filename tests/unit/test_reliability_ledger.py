"""The reliability ledger (tests/fixtures/ledger.py) and its report (scripts/reliability_report.py), on an inner
pytest run: what a marked case records, and when the report says the suite did not hold."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from fixtures.ledger import FIGURES

REPO = Path(__file__).resolve().parents[2]
REPORT = runpy.run_path(str(REPO / "scripts" / "reliability_report.py"))

_CASES = '''
import pytest

@pytest.mark.reliability("faults", "server", "answers 500")
def test_held(ledger):
    ledger.add(faults_injected=2, jobs_lost=0)
    ledger.add(faults_injected=1)

@pytest.mark.reliability("faults", "server", "hangs")
def test_broken():
    assert False

@pytest.mark.reliability("security", "secrets", "server mode")
def test_leak(ledger):
    ledger.add(secrets_leaked=1)

@pytest.mark.xfail(strict=True, reason="the storage never answers")
@pytest.mark.reliability("faults", "storage", "hangs")
def test_known():
    assert False

def test_not_in_the_suite():
    pass
'''


@pytest.fixture
def inner_ledger(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    path = pytester.path / "ledger.json"
    monkeypatch.setenv("PILOTLIB_LEDGER", str(path))
    pytester.makepyfile(test_cases=_CASES)
    pytester.runpytest("-p", "fixtures.ledger").assert_outcomes(passed=3, failed=1, xfailed=1)
    return json.loads(path.read_text())


def test_each_marked_case_is_recorded_with_its_outcome_and_figures(inner_ledger: dict[str, object]) -> None:
    """Only marked tests are cases; figures added twice are summed; an xfail is recorded as known."""
    cases = {case["nodeid"].split("::")[1]: case for case in inner_ledger["cases"]}  # type: ignore[attr-defined]
    assert sorted(cases) == ["test_broken", "test_held", "test_known", "test_leak"]
    assert cases["test_held"]["outcome"] == "passed"
    assert cases["test_held"]["figures"] == {"faults_injected": 3, "jobs_lost": 0}
    assert (cases["test_held"]["section"], cases["test_held"]["area"]) == ("faults", "server")
    assert cases["test_broken"]["outcome"] == "failed"
    assert cases["test_known"]["outcome"] == "xfailed"
    assert cases["test_known"]["reason"] == "the storage never answers"


def test_the_report_fails_on_a_broken_case_and_on_a_leak(inner_ledger: dict[str, object]) -> None:
    """The table sums a row's figures; a failed case and a non-zero must-be-zero figure make it not hold."""
    lines, held = REPORT["report"](inner_ledger)
    text = "\n".join(lines)
    assert not held
    server_row = next(line for line in lines if line.startswith("| faults") and "server" in line)
    assert [cell.strip() for cell in server_row.strip("|").split("|")][2:5] == ["2", "1", "4"]  # test_broken: 1
    assert "Known not to hold:" in text and "the storage never answers" in text
    assert "test_broken: failed" in text
    assert "test_leak: secrets_leaked=1" in text
    assert lines[-1] == "reliability suite: NOT everything held"


def test_the_report_holds_when_every_case_passed_with_zero_losses() -> None:
    """A ledger of passed cases with zero losses (and a known failure) holds."""
    document = {"written": "now", "cases": [
        {"nodeid": "t::a", "section": "load", "area": "50 pilots", "what": "x", "outcome": "passed", "reason": "",
         "figures": dict.fromkeys(FIGURES, 0), "seconds": 1.0},
        {"nodeid": "t::b", "section": "faults", "area": "storage", "what": "y", "outcome": "xfailed",
         "reason": "why", "figures": {}, "seconds": 1.0},
    ]}
    lines, held = REPORT["report"](document)
    assert held and lines[-1] == "reliability suite: everything held"


def test_the_ledger_fixture_needs_the_marker(pytester: pytest.Pytester) -> None:
    """A test that asks for the ledger without saying which row it is errors at set-up."""
    pytester.makepyfile(test_unmarked="def test_x(ledger):\n    pass\n")
    result = pytester.runpytest("-p", "fixtures.ledger")
    result.assert_outcomes(errors=1)
