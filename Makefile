# pedclip: the documented way in. `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOME_DIR ?= data
PORT ?= 8501

.DEFAULT_GOAL := help
.PHONY: help install test lint demo dashboard bench clean browser

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Reinstalls when pyproject.toml changes (the stamp is older) or the venv is missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,dashboard,dicom,ray]'
	touch $(STAMP)

install: $(STAMP) browser  ## create .venv with pedclip, its extras and the test browser

# Debian's Chromium drives the browser tests; Playwright's own download is not reachable here.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: install  ## install if needed, then run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff over the package, tests and benchmarks
	$(BIN)/ruff check pedclip tests bench
	$(BIN)/ruff format --check pedclip tests bench

demo: $(STAMP)  ## run the whole study offline on synthetic data, then open the dashboard (DASHBOARD=0 skips it)
	$(BIN)/pedclip --home $(HOME_DIR) demo
	@if [ "$(DASHBOARD)" != "0" ]; then $(BIN)/pedclip --home $(HOME_DIR) dashboard --port $(PORT); fi

dashboard: $(STAMP)  ## open the dashboard on the working store
	$(BIN)/pedclip --home $(HOME_DIR) dashboard --port $(PORT)

bench: $(STAMP)  ## run the benchmarks and print their figures
	$(BIN)/python bench/run_all.py

clean:  ## remove the venv and caches (keeps data/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
