# thingspace.m2m: `make demo` and `make test` do all set-up on a fresh machine (Python 3 and make).
PYTHON ?= python3
# One virtualenv per interpreter: PYTHON=/path/to/python3.12 gets .venv-python3.12 next to .venv.
ifeq ($(PYTHON),python3)
VENV ?= .venv
else
VENV ?= .venv-$(notdir $(PYTHON))
endif
BIN := $(CURDIR)/$(VENV)/bin
PYVER = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# Playbooks and pytest find the collection through this link to the checkout.
COLLECTIONS := $(CURDIR)/.collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/thingspace/m2m
# ansible-test runs on a copy outside the checkout (tests/utils/collection_tree.py says why).
TEST_TREE ?= $(HOME)/.cache/thingspace-m2m/$(shell printf %s "$(CURDIR)" | cksum | cut -d' ' -f1)
TEST_COLLECTION := $(TEST_TREE)/ansible_collections/thingspace/m2m
WITH_EMULATOR := $(BIN)/python tests/utils/with_emulator.py

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.ansible/tmp
export ANSIBLE_REMOTE_TMP := $(CURDIR)/.ansible/tmp

.PHONY: venv demo test lint unit emulator-test reliability sanity integration molecule build docs bench
venv: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt requirements-dev.txt emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python tests/utils/install_get_pip.py
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

demo: venv
	rm -rf $(CURDIR)/.ansible/demo
	THINGSPACE_STATE_DIR=$(CURDIR)/.ansible/demo ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
		$(WITH_EMULATOR) --emulator-arg=--allow-any-callback-port -- $(BIN)/ansible-playbook playbooks/demo.yml

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ansible-lint

unit: venv
	$(BIN)/pytest -q tests/unit

emulator-test: venv
	$(BIN)/pytest -q tests/emulator

reliability: venv
	$(BIN)/pytest -q tests/reliability

sanity: venv
	$(BIN)/python tests/utils/collection_tree.py $(TEST_TREE)
	cd $(TEST_COLLECTION) && $(BIN)/ansible-test sanity --venv --python $(PYVER)

integration: venv
	$(BIN)/python tests/utils/collection_tree.py $(TEST_TREE)
	$(WITH_EMULATOR) --config $(TEST_COLLECTION)/tests/integration/integration_config.yml --emulator-arg=--allow-any-callback-port -- \
		sh -c 'cd $(TEST_COLLECTION) && $(BIN)/ansible-test integration --local --python $(PYVER)'

molecule: venv
	$(BIN)/molecule test --all

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build

docs: venv
	sh docs/build.sh

bench: venv
	$(BIN)/pip install -q --disable-pip-version-check matplotlib
	$(BIN)/python benchmarks/run.py --report docs/performance.md

test: lint unit emulator-test reliability sanity integration molecule build docs
