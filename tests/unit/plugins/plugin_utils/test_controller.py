"""Where the action plugin runs vz_sms_send: in the controller's worker only when the module would run on the controller,
as this user, in this environment, with the libraries here; as the module otherwise (delegation, become, async, a task
environment). The results of both ways are compared in tests/unit/plugins/modules/test_vz_sms_send.py (every test runs
both ways) and tests/reliability/test_in_controller.py (ansible-playbook)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ansible_collections.thingspace.m2m.plugins.action.vz_sms_send import ActionModule

from fake_api import API, CREDENTIALS


def action(transport="local", become=False, async_val=0, environment=None, args=None):
    """The action as the task executor makes it, reduced to what the choice reads."""
    plugin = object.__new__(ActionModule)
    plugin._connection = SimpleNamespace(transport=transport, _shell=SimpleNamespace(env_prefix=lambda **env: ""))
    plugin._play_context = SimpleNamespace(become=become)
    plugin._task = SimpleNamespace(async_val=async_val, environment=environment or [], args=args or {})
    plugin._templar = SimpleNamespace(template=lambda value: value)
    return plugin


def test_a_local_task_runs_in_the_controller():
    assert action()._in_controller()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transport": "ssh"},  # delegate_to another host, or a play on one
        {"become": True},  # another user, another HOME and state_dir
        {"async_val": 30},
        {"environment": [{"THINGSPACE_PASSWORD": "from the task"}]},
    ],
    ids=["other-host", "become", "async", "environment"],
)
def test_anything_else_runs_the_module(kwargs):
    assert not action(**kwargs)._in_controller()


def test_an_empty_environment_keeps_the_task_in_the_controller():
    assert action(environment=[{}, None])._in_controller()


def test_without_a_library_here_the_module_runs(monkeypatch):
    from ansible_collections.thingspace.m2m.plugins.plugin_utils import controller

    monkeypatch.setattr(controller, "find_spec", lambda name: None if name == "psycopg" else object())
    assert action()._in_controller()
    assert not action(args={"ledger_url": "postgresql://ledger@db.example/ops"})._in_controller()
    monkeypatch.setenv("THINGSPACE_LEDGER_URL", "postgresql://ledger@db.example/ops")
    assert not action()._in_controller()


def test_check_mode_of_a_module_without_it_is_skipped_as_ansible_skips_it():
    from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerModule, TaskExit

    with pytest.raises(TaskExit) as done:
        ControllerModule({}, True, "thingspace.m2m.example", {}, inject_invocation=True, supports_check_mode=False)
    assert done.value.result["skipped"] and done.value.result["msg"] == "remote module (thingspace.m2m.example) does not support check mode"


@pytest.mark.parametrize("inject", [True, False])
def test_the_result_carries_invocation_only_when_ansible_asks_for_it(inject):
    """ansible-core 2.21 has a module add ``invocation`` only with the setting INJECT_INVOCATION (its default: off)."""
    from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerModule, TaskExit

    with pytest.raises(TaskExit) as done:
        ControllerModule({"colour": "red"}, False, "thingspace.m2m.example", {}, inject_invocation=inject)
    assert done.value.result["msg"].startswith("Unsupported parameters for (thingspace.m2m.example) module: colour")
    invocation = done.value.result.get("invocation")
    assert (invocation["module_args"]["colour"] == "red") if inject else invocation is None


def test_invocation_follows_the_setting_of_this_ansible_core():
    """With INJECT_INVOCATION (ansible-core 2.21 and later) off by default and on by the variable; always before it."""
    from ansible.module_utils.ansible_release import __version__

    from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import _inject_invocation

    if tuple(int(part) for part in __version__.split(".")[:2]) < (2, 21):
        assert _inject_invocation({}) and _inject_invocation({"ansible_inject_invocation": False})
    else:
        assert not _inject_invocation({}) and _inject_invocation({"ansible_inject_invocation": True})


WORKER = """
import json, sys
from functools import partial
sys.path[:0] = sys.argv[1:3]
# What ansible-playbook's main process imports before it forks a task's worker: the action plugin.
from ansible_collections.thingspace.m2m.plugins.action import vz_sms_send
from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerModule, TaskExit
import requests
from fake_api import FakeThingSpace
api = FakeThingSpace()
requests.Session.get_adapter = lambda self, url: api
loaded = set(sys.modules)
try:
    vz_sms_send.vz_sms_send.main(partial(ControllerModule, json.loads(sys.argv[3]), False, "thingspace.m2m.vz_sms_send", inject_invocation=True))
except TaskExit as done:
    print(json.dumps({"changed": done.result["changed"], "imported": sorted(set(sys.modules) - loaded)}))
"""


def test_a_send_in_the_worker_imports_nothing_the_action_plugin_did_not(state_dir):
    """The worker of every task is forked from the process that imported the action plugin: what a send imports beyond
    that, each task's worker imports again."""
    unit = Path(__file__).resolve().parents[2]
    args = dict(CREDENTIALS, api_url=API, state_dir=str(state_dir), devices=[{"kind": "mdn", "id": "5551234567"}], sms_message="hello")
    run = subprocess.run([sys.executable, "-c", WORKER, str(unit.parents[1] / ".collections"), str(unit), json.dumps(args)],
                         capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == {"changed": True, "imported": []}
