# Two commands matter: `make demo` and `make test`. Both install what they need.
# Go binaries are cached in ~/.cache/healthflow-devcluster/<pinned versions>/ (outside the clone).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ENV ?= dev
PYTEST_ARGS ?=

.PHONY: help venv build cluster-up cluster-down cluster-status test demo clean

help:
	@echo "make demo          bring up the local control plane (or use KUBECONFIG) and sync the platform"
	@echo "make test          run the whole test suite against a real API server"
	@echo "make cluster-up    start the devcluster (.devcluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(INSTALLED)

build: venv
	$(PY) -m devcluster build

cluster-up: build
	$(PY) -m devcluster up

cluster-down: venv
	$(PY) -m devcluster down

cluster-status: venv
	$(PY) -m devcluster status

test: build
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	@if [ -z "$$KUBECONFIG" ]; then $(MAKE) --no-print-directory cluster-up; fi
	@echo "The control plane is up. Reach it with:"
	@echo "  kubectl --kubeconfig $${KUBECONFIG:-.devcluster/kubeconfig} get nodes"

clean: cluster-down
	rm -rf $(VENV) *.egg-info .pytest_cache
