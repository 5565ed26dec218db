# Set-up and checks for thingspace.m2m. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# ansible-core and ansible-test want the collection under ansible_collections/<namespace>/<name>.
COLLECTIONS := $(CURDIR)/.collections
COLLECTION := $(COLLECTIONS)/ansible_collections/thingspace/m2m
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_REMOTE_TMP := $(CURDIR)/.ansible/tmp
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.ansible/tmp
export PATH := $(BIN):$(PATH)

.PHONY: venv demo test lint unit emulator-test
venv: $(VENV)/.installed $(COLLECTION)

$(VENV)/.installed: requirements.txt requirements-dev.txt emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(COLLECTION):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

lint: venv
	$(BIN)/ruff check .

unit: venv
	$(BIN)/pytest -q tests/unit

emulator-test: venv
	$(BIN)/pytest -q tests/emulator

test: lint unit emulator-test
