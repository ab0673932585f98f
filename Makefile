# Quick start: `make demo` (the whole pipeline on a generated sample) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := -q -c constraints.txt $(if $(WHEELS),--find-links $(WHEELS))
PLUGINS := -e plugins/local -e plugins/aws -e plugins/csv -e plugins/huggingface
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev,ray]" $(PLUGINS)
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/databackend demo --dir .demo

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python scripts/check_limits.py core plugins

bench: venv
	$(BIN)/python benchmarks/scan.py --n 5000
	$(BIN)/python benchmarks/cache_read.py
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/s3.py
	$(BIN)/python benchmarks/csv_download.py
	$(BIN)/python benchmarks/hf.py

clean:
	rm -rf $(VENV) .demo .databackend_output
