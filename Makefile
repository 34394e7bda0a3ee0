# One entry point per job. Each target sets itself up on a fresh machine (Python 3.11 + make).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint browser demo bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	# torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check autolr client server cli tests benchmarks
	$(BIN)/ruff format --check autolr client server cli tests benchmarks
	# mypy and import-linter walk folders: assemble the installed layout (autolr/{client,server,cli}).
	rm -rf build/lint && mkdir -p build/lint
	cp -r autolr build/lint/autolr && cp -r client build/lint/autolr/client && cp -r server build/lint/autolr/server && cp -r cli build/lint/autolr/cli
	find build/lint -name __pycache__ -prune -exec rm -rf {} +
	cd build/lint && ../../$(BIN)/mypy --config-file ../../pyproject.toml --cache-dir ../../.mypy_cache autolr
	cd build/lint && PYTHONPATH=. ../../$(BIN)/lint-imports --config ../../pyproject.toml

# Headless Chromium for the dashboard's browser test: installed from the distribution's packages
# when possible, else .ci/browser says exactly what is missing (AUTOLR_SKIP_BROWSER=1 skips it).
browser:
	@bash .ci/browser

test: lint browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/python -m autolr.client.demo --out demo_schedule.png

bench: $(STAMP)
	$(BIN)/python benchmarks/decision_latency.py
	$(BIN)/python benchmarks/client_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info
