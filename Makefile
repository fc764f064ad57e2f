# One entry point for people and CI. Everything installs into ./.venv and ./node_modules.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test unit lint typecheck demo bench clean

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

# The README's test command: lint, type-check, then the whole suite once (unit, property, contract, integration).
# pytest's exit code 5 (no test collected) means a broken suite here: say so, and fail.
PYTEST_OR_SAY = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; fi; exit $$rc
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	@$(BIN)/python -m pytest -q; $(PYTEST_OR_SAY)

unit: install
	$(BIN)/python -m pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

demo: install
	$(BIN)/python -m twinbridge demo

bench: install
	$(BIN)/python -m twinbridge bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis .run
