# Two commands do all the set-up: `make demo` and `make test`. Each creates
# .venv when it is missing and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test browser lint typecheck unit release-check bench notebook notebooks readme-cli clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PIP) -e '.[dev,notebook]'
	$(PY) -m ipykernel install --sys-prefix --name esms-analytics --display-name "esms-analytics (.venv)" >/dev/null
	touch $(RUNTIME_STAMP) $@

## demo: sync ~90 days from the embedded simulator into data/lake, print and plot the reports
demo: $(RUNTIME_STAMP)
	$(PY) -m esms_analytics demo

## test: lint, type-check, run the whole suite and the release check (what CI runs)
test: browser lint typecheck unit release-check

## browser: Chromium and chromedriver from Debian's packages, for tests/test_browser.py
## (installed only when missing; needs root, as CI has)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)

lint: $(DEV_STAMP)
	$(PY) -m ruff check esms_analytics tests benchmarks scripts
	$(PY) -m ruff format --check esms_analytics tests benchmarks scripts

typecheck: $(DEV_STAMP)
	$(PY) -m mypy

unit: $(DEV_STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

## release-check: build the sdist and wheel, install the wheel in a fresh venv outside the
## checkout and run --version, demo, sync and report there against the simulator
release-check: $(DEV_STAMP)
	PY=$(PY) bash scripts/release_check.sh

## bench: run benchmarks/ and write BENCHMARKS.md
bench: $(DEV_STAMP)
	$(PY) -m benchmarks.run

## notebook: open Jupyter Lab with the project's kernel
notebook: $(DEV_STAMP)
	$(VENV)/bin/jupyter lab notebooks/

## notebooks: rebuild the notebooks from scripts/build_notebooks.py and execute them in place
notebooks: $(DEV_STAMP)
	$(PY) scripts/build_notebooks.py

clean:
	rm -rf $(VENV) data/lake data/reports .pytest_cache .mypy_cache .ruff_cache

## readme-cli: regenerate the README's CLI reference from --help
readme-cli: $(RUNTIME_STAMP)
	$(PY) scripts/update_readme_cli.py
