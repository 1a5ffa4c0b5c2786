# Two commands matter: `make demo` and `make test`. Both install what they need.
# Go binaries are cached in ~/.cache/healthflow-devcluster/<pinned versions>/ (outside the clone),
# so a fresh clone reuses them; the first build takes a few minutes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ENV ?= dev
LISTEN ?= 127.0.0.1:8080
PYTEST_ARGS ?=
# Parallel test workers sharing one control plane (a namespace and environment per test); 0 runs them in this process.
TEST_WORKERS ?= 4
TOOLS := $(HOME)/.cache/healthflow-devcluster/tools
KUSTOMIZE_VERSION := v5.5.0
export PATH := $(TOOLS):$(PATH)
DEMO_KUBECONFIG = $${KUBECONFIG:-$(CURDIR)/.devcluster/kubeconfig}

UI_VENDOR := reconciler/daemon/static/vendor

.PHONY: help venv bytecode tools ui system-deps build cluster-up cluster-down cluster-status test bench demo daemon clean

help:
	@echo "make demo          start the local control plane (unless KUBECONFIG is set) and sync the $(ENV) platform"
	@echo "make test          run the whole test suite against a real API server"
	@echo "make bench         the side-by-side benchmarks (kubectl, Flux, a bare client; long: not part of make test)"
	@echo "make daemon        run the reconciler daemon on $(LISTEN) (status page, API, webhooks)"
	@echo "make cluster-up    start the devcluster (.devcluster/kubeconfig); cluster-down stops it"

# The virtualenv, made and filled by uv (pinned, installed once outside the clone; its package cache is
# ~/.cache/uv): 2.4 s from a fresh clone where pip took 31 s. `--seed` keeps pip in it for `python -m pip`.
UV_VERSION := 0.13.9
UV_HOME := $(HOME)/.cache/healthflow-devcluster/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv

$(UV):
	@echo "installing uv $(UV_VERSION) into $(UV_HOME) (once)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(UV_HOME) uv==$(UV_VERSION)

# Bytecode is compiled here, once, because nothing else writes it where PYTHONDONTWRITEBYTECODE is set
# (as on this machine): every `python` start then compiled its imports from source, 1.3 s of CPU for
# `reconciler --help` and 2.0 s for a `reconciler plan` (0.5 s and 0.8 s compiled).
$(INSTALLED): pyproject.toml | $(UV)
	$(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e '.[test]'
	touch $@

# Our own sources change with every commit: compileall rewrites only what changed (0.3 s when nothing did).
bytecode: $(INSTALLED)
	@$(PY) -m compileall -q -j 0 reconciler devcluster tests bench >/dev/null

venv: $(INSTALLED) bytecode

# The status page's front-end packages (ui/package.json, pinned by ui/package-lock.json), from the npm
# registry into the Python package's static/vendor; the npm cache lives outside the clone.
$(UI_VENDOR)/.installed: ui/package.json ui/package-lock.json
	cd ui && npm ci --ignore-scripts --no-audit --no-fund --cache $(HOME)/.cache/healthflow-devcluster/npm >/dev/null
	mkdir -p $(UI_VENDOR)
	cp ui/node_modules/diff2html/bundles/js/diff2html.min.js ui/node_modules/diff2html/bundles/css/diff2html.min.css $(UI_VENDOR)/
	touch $@

ui: $(UI_VENDOR)/.installed

# kustomize: the pinned CLI, built once into $(TOOLS) (on PATH for every target). The render prefers it
# to `kubectl kustomize` (same kustomize library), whose much larger binary takes 5x the CPU to start:
# 63 ms against 12 ms a build, which a push fanned out to a fleet's stacks pays per stack.
# `make build` also builds kustomize-worker (devcluster/gotools/kustomize-worker): this kustomize's build
# command in a long-lived process, 3.7 ms a build; its go.mod pins the same version (a test checks).
KUSTOMIZE_STAMP := $(TOOLS)/.kustomize-$(KUSTOMIZE_VERSION)
tools: $(KUSTOMIZE_STAMP)

$(KUSTOMIZE_STAMP):
	@echo "building kustomize $(KUSTOMIZE_VERSION) into $(TOOLS) (once)"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	touch $@

# Chromium for the status-page screenshot test, gpg and ssh-keygen for signed commits, faketime for the
# clock-skew lease tests (Debian packages;
# skipped quietly where apt is absent).
system-deps:
	@command -v gpg >/dev/null && command -v ssh-keygen >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
		command -v apt-get >/dev/null && $$SUDO apt-get install -y -qq gnupg openssh-client >/dev/null \
		  || echo "warning: could not install gnupg/openssh-client; signed-commit tests will fail"; }
	@command -v faketime >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
		command -v apt-get >/dev/null && { $$SUDO apt-get install -y -qq faketime >/dev/null 2>&1 || \
		  { $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq faketime >/dev/null; }; } \
		  || echo "warning: could not install faketime; the clock-skew lease tests will fail"; }
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
		command -v apt-get >/dev/null && $$SUDO apt-get install -y -qq chromium >/dev/null \
		  || echo "warning: could not install chromium; the status-page browser test will be skipped"; }

build: venv tools
	$(PY) -m devcluster build

cluster-up: build
	$(PY) -m devcluster up

cluster-down: venv
	$(PY) -m devcluster down

cluster-status: venv
	$(PY) -m devcluster status

test: build ui system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The side-by-side benchmarks, each on devclusters of its own, printing ratios: ours against kubectl and Flux's
# kustomize-controller (compare.py), against a bare client (bench_cold_path.py), and a fleet of 1,000 stacks over
# 3 clusters and 3 replicas against the same as 1,000 Flux Kustomizations (bench_fleet.py). bench/soak.py and the
# others the README names are run on their own.
bench: build ui
	$(PY) bench/compare.py --objects 1000 --flux
	$(PY) bench/bench_cold_path.py --objects 1000 5000 --stacks 1 5
	$(PY) bench/bench_fleet.py

demo: build ui
	@if [ -z "$$KUBECONFIG" ]; then $(PY) -m devcluster up; fi
	@# staging's Secrets are SOPS-encrypted in Git; its key (a DEMO key, deploy/demo-sops-age.agekey) goes in the cluster
	@if [ "$(ENV)" = staging ]; then \
		kubectl --kubeconfig $(DEMO_KUBECONFIG) create namespace healthflow-system --dry-run=client -o yaml | kubectl --kubeconfig $(DEMO_KUBECONFIG) apply -f - >/dev/null; \
		kubectl --kubeconfig $(DEMO_KUBECONFIG) -n healthflow-system create secret generic sops-age \
		  --from-file=identity.agekey=deploy/demo-sops-age.agekey --dry-run=client -o yaml | kubectl --kubeconfig $(DEMO_KUBECONFIG) apply -f - >/dev/null; \
	fi
	KUBECONFIG=$(DEMO_KUBECONFIG) $(PY) -m reconciler policy check --env $(ENV)
	@# exit code 1 means "changes were applied" (2 would be an error)
	KUBECONFIG=$(DEMO_KUBECONFIG) $(PY) -m reconciler sync --env $(ENV) || [ $$? -eq 1 ]
	KUBECONFIG=$(DEMO_KUBECONFIG) $(PY) -m reconciler status --env $(ENV)
	KUBECONFIG=$(DEMO_KUBECONFIG) $(PY) -m reconciler drift --env $(ENV) || [ $$? -eq 1 ]
	@echo
	@echo "The $(ENV) platform is synced from this repository's main branch. Next:"
	@echo "  kubectl --kubeconfig $(DEMO_KUBECONFIG) get pods -A"
	@echo "  make daemon        # keep it in sync; status page on http://$(LISTEN)/"
	@echo "  make cluster-down  # stop the local control plane"

daemon: venv ui
	KUBECONFIG=$(DEMO_KUBECONFIG) $(PY) -m reconciler run --env $(ENV) --listen $(LISTEN)

clean: cluster-down
	rm -rf $(VENV) *.egg-info .pytest_cache .reconciler-cache ui/node_modules $(UI_VENDOR)
