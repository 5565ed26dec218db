"""Unit-test harness: the collection on sys.path, and as fixtures (made of module_harness.py) the fake ThingSpace
(fake_api.py) mounted under `requests`, a runner that executes a module's main() with arguments and returns its result,
and a PostgreSQL server of the session for the ledger (tests/utils/postgresql.py)."""

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

from hypothesis import settings  # noqa: E402
from module_harness import clean_state_dir, ledger_location, module_params, module_runner, mount_fake, recorded  # noqa: E402

# The fixture: one PostgreSQL server per session, started by the first test that needs it.
from postgresql import postgresql  # noqa: E402, F401  # pylint: disable=unused-import
from time_limit import time_limit  # noqa: E402

# Generous: the slowest tests take under 10 s (the time limit's own tests, which run pytest).
pytest_collection_modifyitems = time_limit(__file__, 120)

# Hypothesis: no example database in the checkout; with CI set, the same examples on every run.
settings.register_profile("dev", database=None)
settings.register_profile("ci", database=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """A new ledger's location, for the tests that run on both stores."""
    return ledger_location(request, tmp_path)


@pytest.fixture
def fake(monkeypatch):
    """The fake ThingSpace under every requests.Session; a test that leaves a scripted answer unused fails."""
    api = mount_fake(monkeypatch)
    yield api
    api.check_scripts_used()


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    return clean_state_dir(tmp_path, monkeypatch)


@pytest.fixture
def run_module(monkeypatch, state_dir):
    """run_module(main, **args) → (result, failed), the module's warnings in result["warnings"].
    Auth options and api_url default to the fake's."""
    return module_runner(monkeypatch, state_dir)


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
