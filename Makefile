# disparo: `make up` runs the whole system locally, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system up down status check unit integration test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@bash deploy/local/ensure-system.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

system:
	@bash deploy/local/ensure-system.sh

up: install
	$(BIN)/disparo up

down:
	@if [ -x $(BIN)/disparo ]; then $(BIN)/disparo down; else echo "nothing to stop"; fi

status: install
	$(BIN)/disparo status

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	@bash deploy/local/ensure-system.sh prometheus
	$(BIN)/pytest tests/unit -q

integration: install
	@bash deploy/local/ensure-system.sh clickhouse chromium
	$(BIN)/pytest tests/integration -q

test: check
	@bash deploy/local/ensure-system.sh prometheus clickhouse chromium
	$(BIN)/pytest tests -q --durations=10

bench: install
	@bash deploy/local/ensure-system.sh nginx
	$(BIN)/python -m bench.e2e

clean: down
	rm -rf .local $(VENV) .mypy_cache .ruff_cache .pytest_cache
