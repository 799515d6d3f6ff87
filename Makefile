# kubeadm_ec2.cluster - developer entry points.
#   make demo   set up and run the story on the embedded default (local EC2 emulator + network lab)
#   make test   set up and run every test (unit, sanity, lint, integration, molecule, end-to-end)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
PY      := $(CURDIR)/$(VENV)/bin/python
BIN     := $(CURDIR)/$(VENV)/bin
COLL_LINK := .collections/ansible_collections/kubeadm_ec2/cluster
SANITY_ROOT := .build/ansible_collections/kubeadm_ec2/cluster
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PYTEST  := $(PY) -m pytest -p no:cacheprovider

.PHONY: help setup sysdeps venv collection demo test unit sanity lint integration molecule e2e bench clean

help:
	@echo "make demo   - run the seeds' story against the local EC2 emulator and network lab"
	@echo "make test   - install what the tests need and run all of them"
	@echo "make bench  - run the benchmarks under bench/ and print the figures"

sysdeps:
	@bash scripts/sysdeps.sh

$(VENV)/.stamp: requirements.txt requirements-test.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@$(VENV)/bin/pip install -q -r requirements.txt -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(VENV)/bin/python -c "import ansible, boto3, moto, kubernetes, pytest" \
	  || { echo "venv: dependency install failed"; exit 1; }
	@touch $@

venv: $(VENV)/.stamp

$(COLL_LINK):
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn ../../.. $(COLL_LINK)

collection: $(COLL_LINK)

setup: sysdeps venv collection

demo: setup
	@$(PY) -m tests.demo.run

# molecule runs beside the other suites (scripts/test.sh says why); each suite's time is printed
test: setup
	@MAKE="$(MAKE)" bash scripts/test.sh

unit: setup
	$(PYTEST) -q tests/unit

lint: setup
	$(BIN)/ansible-lint --offline -q

# ansible-test runs from its own venv (its pinned linters must not fight ansible-lint's deps).
# It bootstraps pip in per-test venvs with a script from a host we cannot reach; we give it an
# offline stand-in (scripts/ansible_test_get_pip.py) in its cache.
SANITY_VENV := .venv-sanity
ANSIBLE_TEST_REQS := $(VENV)/lib/python3.11/site-packages/ansible_test/_data/requirements
$(SANITY_VENV)/.stamp: requirements.txt
	@test -x $(SANITY_VENV)/bin/python || $(PYTHON) -m venv $(SANITY_VENV)
	@$(SANITY_VENV)/bin/pip install -q ansible-core==2.19.14 $$(for f in $(ANSIBLE_TEST_REQS)/sanity.*.txt; do echo -r $$f; done) 2>&1 | grep -v "^WARNING: Location" || true
	@touch $@

sanity: setup $(SANITY_VENV)/.stamp
	@mkdir -p $$HOME/.ansible/test/cache && cp scripts/ansible_test_get_pip.py $$HOME/.ansible/test/cache/get_pip_24_2.py
	@rm -rf .build && mkdir -p $(SANITY_ROOT)
	@git ls-files -co --exclude-standard | grep -v '^\.collections' | rsync -a --files-from=- ./ $(SANITY_ROOT)/
	@# dependencies the modules import (amazon.aws module_utils), from the ansible package
	@mkdir -p .build/ansible_collections/amazon && \
	  ln -sfn $(CURDIR)/$(VENV)/lib/python3.11/site-packages/ansible_collections/amazon/aws .build/ansible_collections/amazon/aws
	@set -o pipefail; cd $(SANITY_ROOT) && git init -q && git add -A >/dev/null && \
	  $(CURDIR)/$(SANITY_VENV)/bin/ansible-test sanity --local --python 3.11 --color no 2>&1 | grep -v "^WARNING: Location"

integration: setup
	$(PYTEST) -q -x --timeout 900 tests/integration

molecule: setup
	@bash molecule/run.sh

e2e: setup
	$(PYTEST) -q --timeout 900 tests/e2e

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .build .collections .cache bench/results
