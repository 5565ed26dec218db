"""Unit-test harness: the collection on sys.path, the fake ThingSpace (fake_api.py) mounted under `requests`,
a runner that executes a module's main() with arguments and returns its result, and a PostgreSQL server of the
session for the ledger (tests/utils/postgresql.py)."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# `make` links the checkout as .collections/ansible_collections/thingspace/m2m.
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "tests" / "utils"))

import requests  # noqa: E402
from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from hypothesis import settings  # noqa: E402

# The fixture: one PostgreSQL server per session, started by the first test that needs it.
from postgresql import postgresql  # noqa: E402, F401  # pylint: disable=unused-import
from returned_keys import record  # noqa: E402
from time_limit import time_limit  # noqa: E402

from fake_api import API, CREDENTIALS, FakeThingSpace  # noqa: E402

# Generous: the slowest tests take under 10 s (the time limit's own tests, which run pytest).
pytest_collection_modifyitems = time_limit(__file__, 120)

# Hypothesis: no example database in the checkout; with CI set, the same examples on every run.
settings.register_profile("dev", database=None)
settings.register_profile("ci", database=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Where each module run's result keys are recorded (make unit sets it; tests/utils/returned_keys.py compares them with RETURN).
RETURNED_KEYS = os.environ.get("RETURNED_KEYS")


def recorded(main, result, failed):
    if RETURNED_KEYS:
        record(RETURNED_KEYS, main.__module__.rsplit(".", 1)[-1], result, failed)
    return result, failed


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """A new ledger's location, for the tests that run on both stores: an SQLite file, or a schema of the session's
    PostgreSQL server no test used yet."""
    if request.param == "sqlite":
        return str(tmp_path / "l.sqlite3")
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

    server = request.getfixturevalue("postgresql")
    return Database(server.url(), server.password, server.new_schema())


@pytest.fixture
def fake(monkeypatch):
    """The fake ThingSpace under every requests.Session; a test that leaves a scripted answer unused fails."""
    api = FakeThingSpace()
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: api)
    yield api
    api.check_scripts_used()


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("THINGSPACE_"):
            monkeypatch.delenv(name)
    return tmp_path / "state"


def module_params(state_dir, args):
    """A task's arguments: the fake's auth options and api_url, then ``args`` (None leaves an option out)."""
    params = dict(CREDENTIALS, api_url=API, state_dir=str(state_dir), retries=2)
    params.update(args)
    return {k: v for k, v in params.items() if v is not None}


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module(monkeypatch, state_dir):
    """run_module(main, **args) → (result, failed), the module's warnings in result["warnings"].
    Auth options and api_url default to the fake's."""
    warnings = []

    def exit_json(self, **result):
        raise ModuleExit(dict(result, warnings=list(warnings)), False)

    def fail_json(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, warnings=list(warnings)), True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning: warnings.append(warning))

    def run(main, check_mode=False, **args):
        warnings.clear()
        params = module_params(state_dir, args)
        if check_mode:
            params["_ansible_check_mode"] = True
        with patch_module_args(params), pytest.raises(ModuleExit) as caught:
            main()
        return recorded(main, caught.value.result, caught.value.failed)

    return run


@pytest.fixture
def run_in_controller(state_dir):
    """run_in_controller(main, **args) → (result, failed), as run_module, with the task run as the action plugin runs it in
    the controller (ControllerModule): the result as Ansible gets it, warnings in result["warnings"]."""
    from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerModule, TaskExit

    def run(main, check_mode=False, **args):
        with pytest.raises(TaskExit) as caught:
            main(partial(ControllerModule, module_params(state_dir, args), check_mode, "thingspace.m2m.vz_sms_send", inject_invocation=True))
        result = dict(caught.value.result)
        failed = result.pop("failed", False)
        result.setdefault("warnings", [])
        return recorded(main, result, failed)

    return run
