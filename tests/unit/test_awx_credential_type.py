"""The AWX credential types of extensions/awx/: credential_type.yml (the connection) and credential_type_ledger.yml
(the PostgreSQL ledger). Each field is injected as the THINGSPACE_* variable that the modules (the fallback of their
argument spec) and the inventory plugin (its options' env entries, as ansible-doc merges them from the doc fragments)
read for the option of the same name, so a renamed variable fails here. A credential of the connection type alone,
with only its required inputs, runs a module with the SQLite ledger; with a credential of the ledger type too, the
ledger is in PostgreSQL. The guide shows both types as shipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.basic import env_fallback
from jinja2.sandbox import SandboxedEnvironment

from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send

from fake_api import API, CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
CONNECTION = yaml.safe_load((ROOT / "extensions" / "awx" / "credential_type.yml").read_text())
LEDGER = yaml.safe_load((ROOT / "extensions" / "awx" / "credential_type_ledger.yml").read_text())
TYPES = {"credential_type.yml": CONNECTION, "credential_type_ledger.yml": LEDGER}
SPEC = dict(COMMON_ARGUMENT_SPEC, **LEDGER_ARGUMENT_SPEC)
# The variable each option falls back to in the modules (module_utils/module.py).
MODULE_ENV = {option: spec["fallback"][1][0] for option, spec in SPEC.items() if spec.get("fallback", (None,))[0] is env_fallback}


def fields(credential_type):
    return {field["id"]: field for field in credential_type["inputs"]["fields"]}


def injected_env(credential_type, inputs):
    """What AWX puts in the job's environment for a credential with ``inputs``: each env template rendered in a
    sandbox; a field the credential leaves out renders empty."""
    render = SandboxedEnvironment()
    return {name: render.from_string(template).render(inputs) for name, template in credential_type["injectors"]["env"].items()}


@pytest.fixture(scope="module")
def inventory_env():
    """{option: [variable]} of the inventory plugin thingspace.m2m.devices, as ansible-doc merges its documentation."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"))
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "inventory", "--json", "thingspace.m2m.devices"],
                         env=env, capture_output=True, text=True, check=True).stdout
    options = json.loads(out)["thingspace.m2m.devices"]["doc"]["options"]
    return {option: [entry["name"] for entry in doc.get("env", ())] for option, doc in options.items()}


@pytest.mark.parametrize("name", TYPES)
def test_each_field_is_injected_as_the_variable_the_modules_and_the_inventory_plugin_read(name, inventory_env):
    credential_type = TYPES[name]
    injected = credential_type["injectors"]["env"]
    assert injected == {MODULE_ENV[field]: "{{ %s }}" % field for field in fields(credential_type)}
    for field in fields(credential_type):
        assert MODULE_ENV[field] in inventory_env[field], "%s: the inventory plugin reads %s from %s" % (name, field, inventory_env[field])
    assert {field for field, doc in fields(credential_type).items() if doc.get("secret")} == {
        field for field in fields(credential_type) if SPEC[field].get("no_log")}
    assert set(credential_type["inputs"]["required"]) <= set(fields(credential_type))
    assert credential_type["kind"] == "cloud"


def test_the_two_types_combine_in_one_job_template():
    """AWX injects every credential of a job template into one environment: the types share no field and no variable."""
    assert not set(fields(CONNECTION)) & set(fields(LEDGER))
    assert not set(CONNECTION["injectors"]["env"]) & set(LEDGER["injectors"]["env"])
    assert CONNECTION["name"] != LEDGER["name"]
    assert {MODULE_ENV["ledger_url"], MODULE_ENV["ledger_password"], MODULE_ENV["ledger_schema"]} == set(LEDGER["injectors"]["env"])


def _required_inputs(credential_type, inputs):
    required = set(credential_type["inputs"]["required"])
    assert required <= set(inputs), "AWX refuses a credential of %s without %s" % (credential_type["name"], sorted(required - set(inputs)))
    return {field: value for field, value in inputs.items() if field in required}


def _send_twice(run_module, monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    no_options = dict.fromkeys([*CREDENTIALS, "api_url"])
    devices = [{"kind": "mdn", "id": "5550000001"}]
    result, failed = run_module(vz_sms_send.main, devices=devices, sms_message="hello", **no_options)
    assert not failed and result["devices_sent"] == 1
    result, failed = run_module(vz_sms_send.main, devices=devices, sms_message="hello", **no_options)
    assert not failed and result["devices_skipped"] == 1


def test_the_connection_type_alone_keeps_the_ledger_in_a_file(fake, run_module, state_dir, monkeypatch):
    connection = _required_inputs(CONNECTION, dict(CREDENTIALS, api_url=API))
    _send_twice(run_module, monkeypatch, injected_env(CONNECTION, connection))
    assert (state_dir / "ledger.sqlite3").is_file()


def test_both_types_keep_the_ledger_in_postgresql(fake, run_module, state_dir, postgresql, monkeypatch):
    connection = _required_inputs(CONNECTION, dict(CREDENTIALS, api_url=API))
    ledger = dict(_required_inputs(LEDGER, {"ledger_url": postgresql.url(), "ledger_schema": postgresql.new_schema()}),
                  ledger_password=postgresql.password)
    _send_twice(run_module, monkeypatch, {**injected_env(CONNECTION, connection), **injected_env(LEDGER, ledger)})
    assert postgresql.execute('SELECT state FROM "%s".sends' % ledger["ledger_schema"]) == [("sent",)]
    assert not (state_dir / "ledger.sqlite3").exists()


def test_the_awx_guide_shows_the_credential_types_as_shipped():
    guide = (ROOT / "docs" / "docsite" / "rst" / "guide_awx.rst").read_text()
    shown = []
    for block in guide.split(".. code-block:: yaml+jinja\n")[1:]:
        data = yaml.safe_load(textwrap.dedent(block.split("\n\n", 1)[0]))
        if isinstance(data, dict) and "injectors" in data:
            shown.append(data)
    shipped = [{"inputs": dict(t["inputs"], fields=[{k: v for k, v in field.items() if k != "help_text"} for field in fields(t).values()]),
                "injectors": t["injectors"]} for t in TYPES.values()]
    assert shown == shipped


def test_the_authentication_guide_shows_the_connection_type_as_shipped():
    guide = (ROOT / "docs" / "docsite" / "rst" / "guide_authentication.rst").read_text().split("In AWX or Automation Controller\n", 1)[1]
    inputs, injectors = (yaml.safe_load(textwrap.dedent(part.split("\n", 1)[1].split("\n\n", 1)[0])) for part in guide.split(".. code-block:: ")[1:3])
    assert inputs == CONNECTION["inputs"]
    assert {"env": injectors["env"]} == CONNECTION["injectors"]
