# Quick start: `make demo` (the whole pipeline on a generated sample) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := -q -c constraints.txt $(if $(WHEELS),--find-links $(WHEELS))
PLUGINS := -e plugins/local -e plugins/aws -e plugins/csv -e plugins/huggingface
# A third-party-style plugin used by the plugin API tests (tests/plugins/zipstore).
TEST_PLUGINS := -e tests/plugins/zipstore
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml tests/plugins/*/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/dependency_group.py dev > $(VENV)/dev-requirements.txt
	$(BIN)/pip install $(PIP_FLAGS) -r $(VENV)/dev-requirements.txt -e . $(PLUGINS) $(TEST_PLUGINS)
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
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/video_probe.py
	$(BIN)/python benchmarks/audio_probe.py

clean:
	rm -rf $(VENV) .demo .databackend_output

# Headless Chromium + chromedriver for the HTML report's rendering test (tests/test_monitor_report.py
# skips it, saying why, where they cannot be installed). Debian packages; needs root or sudo.
.PHONY: browser
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || { (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) \
	       || echo "chromium could not be installed: the report rendering test will be skipped"; }
