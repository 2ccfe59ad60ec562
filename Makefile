# The project's own commands. Both install what they need (apt + .venv), idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint typecheck unit docs bench clean single-file monitor-screenshot

setup:
	bash scripts/setup.sh --rucio-server --panda-server

## run: a grid pilot runs the shipped example job end to end (no outside service needed)
run: setup
	$(PY) -m apps.grid_pilot.demo

## test: ruff, mypy (strict), the whole pytest suite (real services started by the tests), then the reliability table
test: setup
	$(PY) -m ruff check pilotlib apps panda_devserver tests benchmarks examples scripts
	$(PY) -m mypy
	rm -f .reliability/ledger.json
	$(PY) -m pytest -q
	$(PY) scripts/reliability_report.py

## single-file: dist/grid-pilot.pyz and dist/hpc-pilot.pyz, run by a node's python3 alone (docs/single-file.rst)
single-file: setup
	$(PY) scripts/build_single_file.py --out dist

docs: setup
	$(PY) -m sphinx -W -q -b html docs docs/_build/html

## monitor-screenshot: demo jobs run by the real pilot against a dev server, its monitor page shot by headless
## Chromium into docs/_static/monitor.png (committed, so the docs build without chromium)
monitor-screenshot: setup
	PYTHONPATH=$(CURDIR) $(PY) scripts/monitor_screenshot.py docs/_static/monitor.png

clean:
	rm -rf docs/_build .pytest_cache .mypy_cache .ruff_cache dist
