"""Print the reliability and security suite's table from the ledger the last pytest run wrote.

Usage: ``python scripts/reliability_report.py [LEDGER]`` (default: ``$PILOTLIB_LEDGER`` or
``.reliability/ledger.json``). ``make test`` runs it after pytest.

Each row is an area of a section (faults, bad input, security, load): how many cases were tried and held, the faults
injected, bad inputs tried and fuzzing executions, and what must stay zero: jobs lost, final states duplicated,
processes left and secrets leaked. Cases known not to hold (``xfail``) are listed with their reason.

Exit status: 0 when every case held (or is listed as known not to hold) and every must-be-zero figure is zero; 1
otherwise; 2 when there is no ledger.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("faults", "bad input", "security", "load")
ZERO = ("jobs_lost", "finals_duplicated", "processes_left", "secrets_leaked")
#: A case of these sections that measured nothing more injected one fault, or tried one bad input.
_AT_LEAST_ONE = {"faults": {"faults_injected": 1}, "bad input": {"inputs_tried": 1}}
COLUMNS = (
    ("cases", "cases"),
    ("held", "held"),
    ("faults_injected", "faults injected"),
    ("inputs_tried", "bad inputs"),
    ("fuzz_executions", "fuzz execs"),
    ("jobs_lost", "jobs lost"),
    ("finals_duplicated", "finals dup."),
    ("processes_left", "procs left"),
    ("secrets_leaked", "secrets leaked"),
)


def _rows(cases: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in cases:
        row = rows[(case["section"], case["area"])]
        row["cases"] += 1
        row["held"] += case["outcome"] == "passed"
        figures = {**_AT_LEAST_ONE.get(case["section"], {}), **case["figures"]}
        for name, value in figures.items():
            row[name] += value
    return rows


def _table(rows: dict[tuple[str, str], dict[str, int]]) -> list[str]:
    header = ["section", "area", *(title for _, title in COLUMNS)]
    lines = [header]
    total: dict[str, int] = defaultdict(int)
    for (section, area), row in sorted(rows.items(), key=lambda kv: (SECTIONS.index(kv[0][0]), kv[0][1])):
        lines.append([section, area, *(f"{row[key]:,}" for key, _ in COLUMNS)])
        for key, _ in COLUMNS:
            total[key] += row[key]
    lines.append(["all", "", *(f"{total[key]:,}" for key, _ in COLUMNS)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def show(line: list[str]) -> str:
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in pairs]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return [show(lines[0]), rule, *(show(line) for line in lines[1:])]


def report(document: dict[str, Any]) -> tuple[list[str], bool]:
    """The report's lines and whether the suite held."""
    cases = document["cases"]
    lines = [f"Reliability and security suite ({len(cases)} cases, ledger written {document['written']})", ""]
    lines += _table(_rows(cases))
    known = [case for case in cases if case["outcome"] == "xfailed"]
    broken = [case for case in cases if case["outcome"] not in ("passed", "xfailed")]
    leaks = [case for case in cases if case["outcome"] != "xfailed" and any(case["figures"].get(n, 0) for n in ZERO)]
    if known:
        lines += ["", "Known not to hold:"]
        lines += [f"- {c['area']}: {c['what']} ({c['nodeid']}): {c['reason']}" for c in known]
    if broken:
        lines += ["", "Did not hold:"] + [f"- {c['nodeid']}: {c['outcome']} {c['reason']}".rstrip() for c in broken]
    if leaks:
        lines += ["", "Must be zero but was not:"]
        lines += [f"- {c['nodeid']}: " + ", ".join(f"{n}={c['figures'][n]}" for n in ZERO if c["figures"].get(n))
                  for c in leaks]
    held = not broken and not leaks
    lines += ["", "reliability suite: " + ("everything held" if held else "NOT everything held")]
    return lines, held


def main(argv: list[str]) -> int:
    """Print the table; the exit status says whether everything held."""
    path = Path(argv[1] if len(argv) > 1 else os.environ.get("PILOTLIB_LEDGER") or ROOT / ".reliability/ledger.json")
    if not path.is_file():
        print(f"reliability report: no ledger at {path} (run pytest first)", file=sys.stderr)
        return 2
    lines, held = report(json.loads(path.read_text()))
    print("\n".join(lines))
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
