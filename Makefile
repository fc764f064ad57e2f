# One entry point for people and CI. Everything installs into ./.venv and ./node_modules.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install native test unit lint typecheck demo bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

# Azurite (storage emulator) for the storage-backed tests and the demo: installed wherever npm exists.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(if $(shell command -v npm),$(NODE_STAMP))

# The compiled core (shared/native.py): rebuilt when a compiled module's source changes. NATIVE=0 skips it (no C
# compiler): the sources then run as they are, only slower.
# A failed build (no compiler) does not stop the demo or the bench: the sources run, and say so. make test still
# notices: its compiled run asserts that the compiled modules are in use (tests/unit/test_native.py).
NATIVE ?= 1
native: install
ifeq ($(NATIVE),1)
	@$(BIN)/python -m twinbridge native build --if-needed || \
	  echo "== no compiled core: the pure-Python sources run (NATIVE=0 skips the build)" >&2
endif

# The README's test command: lint, type-check, then the whole suite (unit, property, contract, integration) on the
# compiled core, then the fast tier again on the pure-Python sources (the fallback where no build is deployed).
# pytest's exit code 5 (no test collected) means a broken suite here: say so, and fail.
PYTEST_OR_SAY = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; fi; exit $$rc
test: native
	$(BIN)/ruff check .
	$(BIN)/mypy
	@test -x .venv-checkov/bin/checkov || ($(PY) -m venv .venv-checkov && .venv-checkov/bin/pip install -q -r requirements-checkov.txt)
	.venv-checkov/bin/checkov -d infra --framework arm --compact --quiet  # skips carry their reasons: docs/deploy.md
	@TWINBRIDGE_EXPECT_NATIVE=$(NATIVE) $(BIN)/python -m pytest -q; $(PYTEST_OR_SAY)
	@echo "== again on the pure-Python core (TWINBRIDGE_PURE_PYTHON=1), fast tier"
	@TWINBRIDGE_PURE_PYTHON=1 $(BIN)/python -m pytest -q -m "not integration"; $(PYTEST_OR_SAY)

unit: install
	$(BIN)/python -m pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

demo: native
	$(BIN)/python -m twinbridge demo

bench: native
	$(BIN)/python -m twinbridge bench

clean:
	rm -rf $(VENV) node_modules .build .pytest_cache .mypy_cache .ruff_cache .hypothesis .run
