# The two commands that matter:
#   make up    - deploy the whole stack onto a local lab of containers
#   make test  - run every test (linters, app tests, Molecule scenarios, lab)
# Everything else is a step of those or a companion command.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
INVENTORY ?= inventories/local
ANSIBLE_PLAYBOOK := $(BIN)/ansible-playbook -i $(INVENTORY)
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# make test's container suites, started in this order, TEST_JOBS at a time:
# the longest first, so that the short ones fill in beside it. Each has its
# own containers and network. Side by side they overlap their waits (paced
# load, health polls), but on two cores they mostly share the CPU (Ansible's
# forks, the hosts' Python, the load): what shortens make test is less work
# per suite, not more suites at once.
TEST_SUITES ?= $(addprefix test-molecule-,rolling default $(filter-out rolling default,$(SCENARIOS))) test-lab test-bench
TEST_JOBS ?= 3

export ANSIBLE_FORCE_COLOR ?= 0
# The package archive mirrors image builds use (scripts/package-mirror): unset,
# they are read from this machine's apt sources. `make up DEBIAN_MIRROR=URL`
# and the environment both reach the scripts.
export DEBIAN_MIRROR UBUNTU_MIRROR
# The release the Molecule scenarios' hosts run (scripts/build-image names
# them): unset, Debian 12's image; `make test-molecule-default
# MOLECULE_PLATFORM=trixie` runs the scenario on Debian 13's.
export MOLECULE_PLATFORM
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help
help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/ansible-playbook: requirements.txt
	@echo "==> Creating the virtual environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

.PHONY: venv
venv: $(BIN)/ansible-playbook ## Create the controller's virtual environment

.PHONY: engine
engine: ## Make sure a Docker engine answers and the systemd image exists
	@scripts/ensure-docker
	@scripts/build-image
	@$(if $(MOLECULE_PLATFORM),scripts/build-image $(MOLECULE_PLATFORM),true)

# Debian 12's images are make engine's; the rolling scenario's mixed fleet and
# the CI jobs of the other supported releases need the others too.
.PHONY: images
images: engine ## Build the systemd test images of every supported release (bookworm, trixie, noble)
	@scripts/build-image all

# The rolling scenario's fleet mixes every supported release. make test builds
# every image first, then starts the suites in order with nothing left to wait
# for (-o): a suite waiting on a prerequisite would give its slot to the next.
test-molecule test-molecule-rolling: images

.PHONY: up
up: venv engine ## Deploy the stack onto the local lab (creates it if needed)
	@scripts/lab-up $(INVENTORY)

.PHONY: down
down: venv ## Remove the local lab completely
	@scripts/lab-down $(INVENTORY)

.PHONY: status
status: ## Show the lab's containers and which backend answers
	@scripts/lab-status $(INVENTORY)

.PHONY: releases
releases: venv ## List the releases installed on each backend
	@$(ANSIBLE_PLAYBOOK) playbooks/releases.yml

.PHONY: rollback
rollback: venv ## Roll the backends back to the previous release (RELEASE=id for a named one)
	@$(ANSIBLE_PLAYBOOK) playbooks/rollback.yml $(if $(RELEASE),-e release=$(RELEASE))

.PHONY: maintenance
maintenance: venv ## Turn maintenance mode on or off on the load balancers (MAINTENANCE=on|off)
	@$(ANSIBLE_PLAYBOOK) playbooks/maintenance.yml -e maintenance=$(MAINTENANCE)

.PHONY: logs
logs: venv ## Show the fleet's logs of the last MINUTES (10), merged in time order (REQUEST_ID=id: one request's path)
	@# The values reach the shell as variables, never as recipe text (nor does make expand them): the shell runs
	@# nothing of what they hold; the playbook checks them.
	@$(ANSIBLE_PLAYBOOK) playbooks/logs.yml $(if $(value MINUTES),-e "minutes='$${MINUTES}'") \
		$(if $(value REQUEST_ID),-e "request_id='$${REQUEST_ID}'")

.PHONY: lint
lint: venv ## Run yamllint, ansible-lint and the role README check
	@echo "==> yamllint"
	@$(BIN)/yamllint --strict .
	@echo "==> ansible-lint"
	@$(BIN)/ansible-lint
	@echo "==> role READMEs"
	@scripts/role-docs --check

.PHONY: role-docs
role-docs: venv ## Regenerate the inputs part of each role's README from its meta/ (aar-doc)
	@scripts/role-docs

.PHONY: test-app
test-app: ## Run the service's unit tests in a venv made from its pinned requirements
	@scripts/test-app

.PHONY: test-unit
test-unit: venv ## Run the unit tests of the roles' Python and of the test support (no containers)
	@echo "==> promtool (the alert rules' tests): $$(scripts/ensure-promtool)"
	@echo "==> pytest tests/unit"
	@$(BIN)/pytest -q tests/unit

.PHONY: test-molecule
test-molecule: venv engine ## Run every Molecule scenario, 2 at a time (SCENARIOS="default anyapp", MOLECULE_JOBS=1, MOLECULE_PLATFORM=noble)
	@scripts/test-molecule $(SCENARIOS)

# One scenario: make test-molecule-default.
.PHONY: $(addprefix test-molecule-,$(SCENARIOS))
$(addprefix test-molecule-,$(SCENARIOS)): test-molecule-%: venv engine
	@scripts/test-molecule $*

.PHONY: test-lab
test-lab: venv engine ## Bring the lab up from scratch, re-run, check, tear it down
	@$(BIN)/pytest -p no:cacheprovider tests/lab

.PHONY: bench
bench: venv engine ## Benchmark our stack against the original recipe (see docs/benchmark.md)
	@bench/run

.PHONY: test-bench
test-bench: venv engine ## Run the benchmark harness in its short smoke mode
	@bench/run --smoke

.PHONY: test
# The checks without containers start first, side by side: one at a time they
# would leave a core idle before the suites start.
test: images ## Run every test: linters, unit and app tests, then the container suites (TEST_JOBS at a time)
	@$(MAKE) --no-print-directory -j $(TEST_JOBS) --output-sync=target -o engine -o images lint test-unit test-app \
		$(TEST_SUITES)
	@echo "==> all tests passed"
