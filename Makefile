# The two commands: `make demo` (set up, then run the whole graph on generated data) and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: setup demo test test-fast lint ui mlflow-ui serve

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/whisper-assets demo

test: setup lint
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check whisper_assets whisper_assets_tests bench
	$(VENV)/bin/ruff format --check whisper_assets whisper_assets_tests bench

serve: setup
	$(VENV)/bin/whisper-assets serve

ui: setup
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(abspath $(or $(MLFLOW_DATA_ROOT),.))/mlflow/mlflow.db" \
		--default-artifact-root "$(abspath $(or $(MLFLOW_DATA_ROOT),.))/mlflow/artifacts" --host 127.0.0.1 --port 5000 --workers 1
