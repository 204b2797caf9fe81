# The two commands of the README: `make run` (the quick sweep) and `make test` (the test suite).
# Both first run tools/setup.sh, which installs what is missing and is quick when nothing is.
SHELL := /bin/bash
VENV := .venv
CORES ?= 2
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=

.PHONY: setup setup-k8s setup-browser run test test-unit test-privileged test-workflow test-docker test-kubernetes test-browser clean figures report bench
setup:
	@bash tools/setup.sh

# The local Kubernetes cluster's binaries, built once from Debian's source package (~5-10 min on a
# fresh machine, cached under /var/cache/seconetbench/k8s; a no-op afterwards). Only the tests and
# config/kubernetes.yaml on this machine need them.
setup-k8s: setup
	@bash tools/build-k8s.sh >/dev/null

run: setup
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

figures: setup
	$(VENV)/bin/snakemake figures --cores $(CORES) --configfile $(CONFIG)

# The report goes into the config's own results directory (results/quick for config/config.yaml).
RESULTS_DIR = $(shell $(VENV)/bin/python -c "from seconetbench import config; print(config.load_files('$(CONFIG)')['results_dir'])")

report: setup
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG) --report $(RESULTS_DIR)/report.html

# Debian's chromium, for the browser tier (tests/browser): only the tests need it.
setup-browser:
	@bash tools/setup.sh browser

test: setup setup-k8s setup-browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Quicker subsets for daily work.
test-unit: setup
	$(VENV)/bin/python -m pytest -m unit $(PYTEST_ARGS)
test-privileged: setup
	$(VENV)/bin/python -m pytest -m privileged $(PYTEST_ARGS)
test-workflow: setup
	$(VENV)/bin/python -m pytest -m workflow $(PYTEST_ARGS)
test-docker: setup
	$(VENV)/bin/python -m pytest -m docker $(PYTEST_ARGS)
test-kubernetes: setup-k8s
	$(VENV)/bin/python -m pytest -m kubernetes $(PYTEST_ARGS)
test-vm: setup
	$(VENV)/bin/python -m pytest -m vm $(PYTEST_ARGS)
test-browser: setup-browser
	$(VENV)/bin/python -m pytest -m browser $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/framework_overhead.py

clean: setup
	$(VENV)/bin/seconetbench clean
