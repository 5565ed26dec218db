"""What the unit tests' fixtures (conftest.py) are made of, for a fixture of a wider scope to use too: the fake
ThingSpace mounted under `requests`, a runner of a module's main(), a ledger's location on either store."""

from __future__ import annotations

import os

import pytest
import requests
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from returned_keys import record

from fake_api import API, CREDENTIALS, FakeThingSpace

# Where each module run's result keys are recorded (make unit sets it; tests/utils/returned_keys.py compares them with RETURN).
RETURNED_KEYS = os.environ.get("RETURNED_KEYS")


def recorded(main, result, failed):
    if RETURNED_KEYS:
        record(RETURNED_KEYS, main.__module__.rsplit(".", 1)[-1], result, failed)
    return result, failed


def ledger_location(request, directory):
    """A new ledger's location on the store ``request.param`` names: an SQLite file in ``directory``, or a schema of the
    session's PostgreSQL server no test used yet."""
    if request.param == "sqlite":
        return str(directory / "l.sqlite3")
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

    server = request.getfixturevalue("postgresql")
    return Database(server.url(), server.password, server.new_schema())


def mount_fake(monkeypatch):
    """A new fake ThingSpace, mounted under every requests.Session."""
    api = FakeThingSpace()
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: api)
    return api


def clean_state_dir(directory, monkeypatch):
    """``directory``/state, with no THINGSPACE_ variable of the environment in the way."""
    for name in list(os.environ):
        if name.startswith("THINGSPACE_"):
            monkeypatch.delenv(name)
    return directory / "state"


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


def module_runner(monkeypatch, state_dir):
    """What the run_module fixture gives, with the patches on ``monkeypatch``."""
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
