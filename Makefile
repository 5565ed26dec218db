# thingspace.m2m: `make demo` and `make test` do all set-up on a fresh machine (Python 3 and make); `make help` lists the targets.
PYTHON ?= python3
# One virtualenv per interpreter: PYTHON=/path/to/python3.12 gets .venv-python3.12 next to .venv.
ifeq ($(PYTHON),python3)
VENV ?= .venv
else
VENV ?= .venv-$(notdir $(PYTHON))
endif
BIN := $(CURDIR)/$(VENV)/bin
# "X.Y /path/to/python" of $(PYTHON), looked up before the venv's bin is put first on PATH.
PYINFO := $(shell $(PYTHON) -c 'import sys; print("%d.%d %s" % (sys.version_info[:2] + (sys.executable,)))' 2>/dev/null)
PYVER := $(word 1,$(PYINFO))
PYTHON_EXE := $(word 2,$(PYINFO))
# The versions of the tools in requirements-dev.txt, one file per interpreter (pip picks another ansible-core on 3.12).
CONSTRAINTS := requirements/constraints-py$(PYVER).txt
LOCK_VENV := $(CURDIR)/.venv-lock
PIP := pip install -q --disable-pip-version-check
# Playbooks and pytest find the collection through this link to the checkout.
COLLECTIONS := $(CURDIR)/.collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/thingspace/m2m
# ansible-test runs on a copy outside the checkout (tests/utils/collection_tree.py says why).
TEST_TREE ?= $(HOME)/.cache/thingspace-m2m/$(shell printf %s "$(CURDIR)" | cksum | cut -d' ' -f1)
TEST_COLLECTION := $(TEST_TREE)/ansible_collections/thingspace/m2m
WITH_EMULATOR := $(BIN)/python tests/utils/with_emulator.py
# Where make unit and make integration record the keys each module run returns (tests/utils/returned_keys.py).
RETURNED_KEYS := $(CURDIR)/tests/output/returned_keys
# The files `make mutation` mutates.
MUTATION_FILES ?= plugins/module_utils/auth.py plugins/module_utils/client.py plugins/module_utils/transport.py plugins/module_utils/ledger.py \
	plugins/module_utils/_store_sqlite.py plugins/module_utils/_store_postgresql.py \
	plugins/module_utils/send.py plugins/module_utils/sms.py plugins/module_utils/deliveries.py plugins/module_utils/_event_source.py \
	plugins/module_utils/campaign.py plugins/module_utils/campaign_report.py plugins/module_utils/devices.py

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.ansible/tmp
export ANSIBLE_REMOTE_TMP := $(CURDIR)/.ansible/tmp

.PHONY: venv demo-venv help lock clean demo test lint chromium unit emulator-test reliability eda doctest sanity integration returns molecule build release release-test docs bench mutation
venv: $(VENV)/.installed $(COLLECTION_LINK) ## Create .venv (.venv-<python> for another PYTHON) with the pinned tools; link .collections/ansible_collections/thingspace/m2m

demo-venv: $(VENV)/.demo-installed $(COLLECTION_LINK) ## Only what make demo needs in .venv (requirements-demo.txt); make venv adds the rest

help: ## List the targets
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "  Variables: PYTHON=/path/to/python3.12 (another interpreter, its own venv), MUTATION_FILES=\"...\", MUTATION_MINUTES=N (make mutation stops after N minutes; the next run goes on), MUTATION_SURVIVORS=1 (only the last run's undetected mutants, again), CALLBACKS_SUSTAINED=600 and BENCH_DEVICES=1000000 (make bench)"

# Installed packages that $(CONSTRAINTS) does not pin fail the step that installed them.
define CHECK_PINNED
	@unpinned=$$($(BIN)/pip freeze --all --exclude-editable --disable-pip-version-check | grep -vxF -f $(CONSTRAINTS)); \
	if [ -n "$$unpinned" ]; then echo "make: installed but not pinned in $(CONSTRAINTS) (run make lock):" $$unpinned >&2; exit 1; fi
endef

# Two steps into one venv: make demo installs requirements-demo.txt only; make venv (every other target) adds the
# rest of requirements-dev.txt. Both with the pins of $(CONSTRAINTS).
$(VENV)/.demo-installed: requirements.txt requirements-demo.txt emulator/pyproject.toml $(CONSTRAINTS)
	@echo "==> Creating $(VENV) (Python $(PYVER)) with what the demo needs: ansible-core, ansible-rulebook, the emulator and the"
	@echo "    collection's Python requirements, pinned by $(CONSTRAINTS) (about a minute)"
	$(PYTHON_EXE) -m venv --clear $(VENV)
	$(BIN)/$(PIP) -c $(CONSTRAINTS) pip
	$(BIN)/$(PIP) -c $(CONSTRAINTS) -r requirements-demo.txt
	$(CHECK_PINNED)
	touch $@

$(VENV)/.installed: $(VENV)/.demo-installed requirements-dev.txt
	@echo "==> Adding the development tools of requirements-dev.txt to $(VENV): linters, test runners, molecule, docs, benchmarks"
	$(BIN)/$(PIP) -c $(CONSTRAINTS) -r requirements-dev.txt
	$(CHECK_PINNED)
	$(BIN)/python tests/utils/install_get_pip.py
	touch $@

# Only reached when the interpreter has no pinned versions (`make lock` writes the file).
$(CONSTRAINTS):
	@if [ -z "$(PYVER)" ]; then echo "make: cannot run PYTHON=$(PYTHON)" >&2; \
	else echo "make: no pinned tool versions for Python $(PYVER) ($(CONSTRAINTS) is missing); pinned:" \
		"$(patsubst requirements/constraints-py%.txt,%,$(wildcard requirements/constraints-py*.txt))." \
		"Run with PYTHON set to one of those, or pin this one: make lock PYTHON=$(PYTHON)" >&2; fi; exit 1

lock: ## Pin the newest tools of requirements-dev.txt for PYTHON, from a fresh venv, in requirements/constraints-pyX.Y.txt
	@test -n "$(PYVER)" || { echo "make: cannot run PYTHON=$(PYTHON)" >&2; exit 1; }
	rm -rf $(LOCK_VENV)
	$(PYTHON_EXE) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/$(PIP) --upgrade pip
	$(LOCK_VENV)/bin/$(PIP) -r requirements-dev.txt
	mkdir -p requirements
	{ echo "# Python $(PYVER): the tools of requirements-dev.txt as \`make lock\` resolved them; \`make venv\` installs with -c this file."; \
	  echo "# Upgrade: make lock PYTHON=python$(PYVER), run the checks, commit the change."; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude-editable --disable-pip-version-check; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

clean: ## Remove the venvs, .collections, build output, tests/output, .ansible, caches and the ansible-test copy (not ~/.ansible, not state_dir)
	rm -rf .venv .venv-* .collections .ansible build dist docs/build tests/output .pytest_cache .ruff_cache emulator/*.egg-info emulator/build emulator/dist $(TEST_TREE)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

demo: demo-venv ## Run playbooks/demo.yml against an emulator, with the callbacks source under ansible-rulebook, on loopback
	@echo "==> A fresh ledger in .ansible/demo; starting the emulator, then ansible-rulebook with the callbacks source, on loopback"
	@rm -rf $(CURDIR)/.ansible/demo
	@mkdir -p $(CURDIR)/.ansible/demo
	@THINGSPACE_STATE_DIR=$(CURDIR)/.ansible/demo $(WITH_EMULATOR) -- \
		$(BIN)/python tests/utils/with_rulebook.py --log $(CURDIR)/.ansible/demo/rulebook.log -- \
		sh -c 'echo "==> Running playbooks/demo.yml (about a minute)"; exec $(BIN)/ansible-playbook playbooks/demo.yml'
	@echo "==> Done: the emulator and ansible-rulebook are stopped; the ledger and rulebook.log are in .ansible/demo"

lint: venv ## ruff and ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ansible-lint

# The campaign report's browser test drives the system's Chromium with Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
chromium: ## Install Chromium (Debian package chromium, through sudo unless root) when $(CHROMIUM) is missing
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null || { echo "make: install Chromium as $(CHROMIUM) (no apt-get here)" >&2; exit 1; }; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

unit: venv chromium ## Unit tests (tests/unit, a fake ThingSpace under requests); records the keys each module run returns for make returns
	rm -rf $(RETURNED_KEYS)/unit
	RETURNED_KEYS=$(RETURNED_KEYS)/unit $(BIN)/pytest -q tests/unit

emulator-test: venv ## The emulator's own tests (tests/emulator)
	$(BIN)/pytest -q tests/emulator

reliability: venv ## Faults, kills, concurrency and secrets against the emulator (tests/reliability, about 2 min)
	$(BIN)/pytest -q tests/reliability

eda: venv ## The rulebook with the event sources under the real ansible-rulebook, against an emulator (tests/eda, about 15 s)
	$(BIN)/pytest -q tests/eda

doctest: venv ## The documentation as written: every callback URL it registers, its shell steps and playbooks, on loopback (tests/docs)
	$(BIN)/pytest -q tests/docs

sanity: venv ## ansible-test sanity on a copy of the collection
	$(BIN)/python tests/utils/collection_tree.py $(TEST_TREE)
	cd $(TEST_COLLECTION) && $(BIN)/ansible-test sanity --venv --python $(PYVER)

# The integration config loads tests/integration/callback_plugins/returned_keys.py, which records what the modules return.
integration: venv ## ansible-test integration targets against an emulator and a PostgreSQL server it starts; records the keys the modules return
	$(BIN)/python tests/utils/collection_tree.py $(TEST_TREE)
	rm -rf $(TEST_COLLECTION)/tests/output/returned_keys $(RETURNED_KEYS)/integration
	printf '[defaults]\ncallback_plugins = %s\n' $(TEST_COLLECTION)/tests/integration/callback_plugins > $(TEST_COLLECTION)/tests/integration/integration.cfg
	$(WITH_EMULATOR) --config $(TEST_COLLECTION)/tests/integration/integration_config.yml --emulator-arg=--allow-any-callback-port -- \
		$(BIN)/python tests/utils/postgresql.py --config $(TEST_COLLECTION)/tests/integration/integration_config.yml -- \
		sh -c 'cd $(TEST_COLLECTION) && $(BIN)/ansible-test integration --local --python $(PYVER)'
	mkdir -p $(RETURNED_KEYS)
	cp -R $(TEST_COLLECTION)/tests/output/returned_keys/integration $(RETURNED_KEYS)/integration

returns: venv ## Each module's RETURN against the keys its runs returned in make unit and make integration (run those first)
	$(BIN)/python tests/utils/returned_keys.py $(RETURNED_KEYS)

molecule: venv ## The roles' molecule scenarios (installs the collection into ~/.ansible/collections)
	$(BIN)/molecule test --all

build: venv ## The collection tarball in build/
	$(BIN)/ansible-galaxy collection build --force --output-path build

release: venv ## VERSION=x.y.z on a clean checkout: galaxy.yml's version, the changelog from the fragments, the tarball, installed and verified (tests/utils/release.py)
	@test -n "$(VERSION)" || { echo "make: give the version: make release VERSION=x.y.z" >&2; exit 1; }
	$(BIN)/python tests/utils/release.py $(VERSION)

release-test: venv ## make release on a throwaway clone, the tarball's members, a Galaxy user's path from the tarball (tests/release: 5 min at a load average of 16-22)
	$(BIN)/pytest -q tests/release

docs: venv ## The HTML docs in docs/build/html (docs/build.sh)
	sh docs/build.sh

# A git ref of the collection to measure side by side in the same rounds (benchmarks/run.py --before); empty: not measured.
BENCH_BEFORE ?=
# Seconds of the callbacks source sustained from the emulator, per ledger (issue 24: 600); empty: not run.
CALLBACKS_SUSTAINED ?=
bench: venv ## Measure against the uri playbook a user would write; rewrites docs/performance.md from benchmarks/performance.json; BENCH_DEVICES=1000000 adds the fleet-scale runs
	$(BIN)/python benchmarks/run.py --report docs/performance.md --json-out benchmarks/performance.json $(if $(BENCH_BEFORE),--before $(BENCH_BEFORE)) $(if $(CALLBACKS_SUSTAINED),--callbacks-sustained $(CALLBACKS_SUSTAINED)) $(if $(BENCH_DEVICES),--scale-devices $(BENCH_DEVICES))

mutation: venv ## Mutation testing of MUTATION_FILES against the unit tests: score per file, survivors (not in make test)
	$(BIN)/python tests/utils/mutation.py $(if $(MUTATION_MINUTES),--minutes $(MUTATION_MINUTES)) $(if $(MUTATION_SURVIVORS),--survivors) $(MUTATION_FILES)

test: lint unit emulator-test reliability eda doctest sanity integration returns molecule build release-test docs ## Every check but mutation (runs molecule)
