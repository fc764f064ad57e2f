# One entry point for people and CI. Everything installs into ./.venv and ./node_modules.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test unit lint typecheck demo bench clean runtime-test static-checks suite

# Installs go through uv (pinned in requirements-dev.txt, itself installed by pip from PyPI): it resolves and
# installs the same pins as pip in seconds instead of half a minute per venv, which is most of a clean CI run.
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements-dev.txt)
UV := $(BIN)/uv
UV_INSTALL = $(UV) pip install --quiet --python
$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q uv==$(UV_VERSION)
	$(UV_INSTALL) $(BIN)/python -r requirements-dev.txt
	touch $(STAMP)

# Azurite (storage emulator) for the storage-backed tests and the demo: installed wherever npm exists.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(if $(shell command -v npm),$(NODE_STAMP))

# Python 3.13 for the real-runtime tier and the demo: the newest 3.13 under pyenv, else python3.13 on PATH
# (discovered, never a fixed path; PY313=... overrides).
PY313 ?= $(shell { ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3 | sort -V | tail -n1; \
                   command -v python3.13; } 2>/dev/null | head -n1)
VENV313 := .venv313
STAMP313 := $(VENV313)/.installed
# Built from requirements.txt ALONE first and every app module imported (tests/runtime/import_all.py: a package
# imported but not declared fails here), then the tier's own tooling is added (tests/runtime/requirements.txt).
$(STAMP313): requirements.txt tests/runtime/requirements.txt | $(STAMP)
	@test -n "$(PY313)" || { echo "no Python 3.13 found (pyenv root, python3.13 on PATH)" >&2; exit 1; }
	rm -rf $(VENV313)
	$(PY313) -m venv $(VENV313)
	$(UV_INSTALL) $(VENV313)/bin/python -r requirements.txt
	$(VENV313)/bin/python tests/runtime/import_all.py
	$(UV_INSTALL) $(VENV313)/bin/python -r tests/runtime/requirements.txt
	touch $(STAMP313)

# The real-runtime tier (tests/runtime): every function indexed, loaded and invoked through azure-functions-runtime
# on 3.13. Without a 3.13 it says so and skips — unless REQUIRE_PY313=1 (.ci/run), where that is a failure.
REQUIRE_PY313 ?= 0
runtime-test:
ifeq ($(PY313),)
	@if [ "$(REQUIRE_PY313)" = 1 ]; then \
	  echo "== real-runtime tier cannot run: no Python 3.13 found (pyenv root, python3.13 on PATH)" >&2; exit 1; fi; \
	  echo "== real-runtime tier SKIPPED: no Python 3.13 found (pyenv root, python3.13 on PATH)" >&2
else
	@$(MAKE) --no-print-directory $(STAMP313)
	@echo "== real-runtime tier on $$($(VENV313)/bin/python --version) (azure-functions-runtime)"
	@TWINBRIDGE_REQUIRE_REAL_RUNTIME=1 $(VENV313)/bin/python -m pytest -q -p no:cacheprovider \
	  tests/runtime; $(PYTEST_OR_SAY)
endif

# The suite (`make suite`, part of `make test`): unit, property, contract and integration tests in one run, on
# pytest-xdist workers, one more than the cores: much of the suite waits on sockets, servers and budgets, not the
# CPU (measured on 2 cores: 150 s with 2 workers, 106 s with 3, 107 s with 4).
PYTEST_WORKERS ?= -n $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
# pytest's exit code 5 (no test collected) means a broken suite here: say so, and fail.
PYTEST_OR_SAY = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; fi; exit $$rc
# checkov 3.3.30 pins packaging<24 while pytest 9 needs packaging>=24: a venv of its own.
CHECKOV_STAMP := .venv-checkov/.installed
$(CHECKOV_STAMP): requirements-checkov.txt | $(STAMP)
	rm -rf .venv-checkov
	$(PY) -m venv .venv-checkov
	$(UV_INSTALL) .venv-checkov/bin/python -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# The static checks: lint, types, the infrastructure scan.
static-checks: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# checkov's skips carry their reasons (docs/deploy.md); --skip-download: no call to the vendor's API
	.venv-checkov/bin/checkov -d infra --framework arm --compact --quiet --skip-download

# `make test`: first everything it needs, installed side by side (npm's download of Azurite is the longest: 30-50 s
# on a clean clone; the venvs take seconds); then the static checks, the suite and the real-runtime tier at once
# (the suite mostly waits on servers and budgets; the other two need ~30 s of CPU). Each job's output is printed as
# one block when it ends.
TEST_TOOLS := install $(CHECKOV_STAMP) $(if $(PY313),$(STAMP313))
test:
	@$(MAKE) --no-print-directory -j4 --output-sync=target $(TEST_TOOLS)
	@$(MAKE) --no-print-directory -j3 --output-sync=target static-checks suite runtime-test

suite: install
	@echo "== the suite: pytest $(PYTEST_WORKERS)"
	@$(BIN)/python -m pytest -q $(PYTEST_WORKERS); $(PYTEST_OR_SAY)

unit: install
	$(BIN)/python -m pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# The demo's local host runs on 3.13 through azure-functions-runtime when a 3.13 exists (twinbridge/commands/demo.py
# picks .venv313), else on this venv's Python. EXPLORE=1: the browser explorer stays up on the demo's twins until Ctrl-C.
demo: install $(if $(PY313),$(STAMP313))
	$(BIN)/python -m twinbridge demo $(if $(filter 1,$(EXPLORE)),--explore)

bench: install
	$(BIN)/python -m twinbridge bench

clean:
	rm -rf $(VENV) $(VENV313) .venv-checkov node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis .run
