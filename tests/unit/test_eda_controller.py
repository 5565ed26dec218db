"""EDA controller: the credential type of extensions/eda/credential_type.yml and the rulebook
extensions/eda/rulebooks/sms_campaign_controller.yml.

The rulebook is read by ansible-rulebook's own schema and parser. Its source arguments, rendered by ansible-rulebook
with an activation's variables, and the environment the credential type injects, are checked by the callbacks
source's own option reading: each field reaches the source option it is meant for, so a renamed variable fails here.
The job template it launches gets the variables the playbook it runs (thingspace.m2m.campaign_step) needs. The
guide shows the credential type as shipped."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_rulebook.rules_parser import parse_rule_sets
from ansible_rulebook.util import substitute_variables
from ansible_rulebook.validators import Validate
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_TYPE = yaml.safe_load((ROOT / "extensions" / "eda" / "credential_type.yml").read_text())
FIELDS = {field["id"]: field for field in CREDENTIAL_TYPE["inputs"]["fields"]}
RULEBOOK = yaml.safe_load((ROOT / "extensions" / "eda" / "rulebooks" / "sms_campaign_controller.yml").read_text())
# The source option each field is for.
OPTION = {"callback_username": "username", "callback_password": "password", "ledger_url": "ledger_url", "ledger_password": "ledger_password",
          "ledger_schema": "ledger_schema"}
# An activation's variables, as the guide sets them.
ACTIVATION_VARS = {"campaign_name": "apn-v1", "campaign_message": "APN=iot.example;MODE=2", "callbacks_port": 9002, "callbacks_host": "0.0.0.0",
                   "callbacks_check_port": False, "callbacks_path": "/thingspace", "callbacks_allow_insecure_http": True}
INPUTS = {"callback_username": "thingspace", "callback_password": "listener-pw", "ledger_url": "postgresql://thingspace_ledger@db.example.com:5432/ops",
          "ledger_password": "ledger-pw", "ledger_schema": "campaigns"}


@pytest.fixture
def rule_sets(monkeypatch):
    """The rulebook as ansible-rulebook parses it (it finds the collection's source through ansible-galaxy)."""
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".collections"))
    Validate.rulebook(RULEBOOK)
    return parse_rule_sets(RULEBOOK, ACTIVATION_VARS)


def injected_env(inputs):
    """What EDA controller puts in the activation's environment: each env template rendered with the credential's inputs."""
    render = SandboxedEnvironment()
    return {name: render.from_string(template).render(inputs) for name, template in CREDENTIAL_TYPE["injectors"]["env"].items()}


def test_each_field_is_injected_as_the_variable_the_callbacks_source_reads():
    assert set(FIELDS) == set(OPTION)
    assert CREDENTIAL_TYPE["injectors"] == {"env": {callbacks.ENV[OPTION[field]]: "{{ %s }}" % field for field in FIELDS}}
    assert {field for field, doc in FIELDS.items() if doc.get("secret")} == {"callback_password", "ledger_url", "ledger_password"}
    assert set(CREDENTIAL_TYPE["inputs"]["required"]) == {"callback_username", "callback_password", "ledger_url", "ledger_schema"}
    assert FIELDS["ledger_schema"]["default"] == LEDGER_ARGUMENT_SPEC["ledger_schema"]["default"]


def test_an_activation_with_the_credential_listens_with_its_credentials_and_ledger(rule_sets, monkeypatch):
    (source,) = rule_sets[0].sources
    assert source.source_name == "thingspace.m2m.callbacks"
    for name, value in injected_env(INPUTS).items():
        monkeypatch.setenv(name, value)
    settings = callbacks._settings(substitute_variables(source.source_args, ACTIVATION_VARS))
    assert {field: settings[OPTION[field]] for field in FIELDS} == INPUTS
    assert (settings["host"], settings["port"], settings["path"], settings["store"]) == ("0.0.0.0", 9002, "/thingspace", "ledger")


def test_an_empty_ledger_password_leaves_the_password_to_the_url(rule_sets, monkeypatch):
    (source,) = rule_sets[0].sources
    for name, value in injected_env({field: value for field, value in INPUTS.items() if field != "ledger_password"}).items():
        monkeypatch.setenv(name, value)
    assert callbacks._settings(substitute_variables(source.source_args, ACTIVATION_VARS))["ledger_password"] is None


def test_each_step_is_the_job_template_of_campaign_step_with_its_variables(rule_sets):
    (rule,) = rule_sets[0].rules
    (action,) = rule.actions
    assert action.action == "run_job_template"
    args = substitute_variables(action.action_args, ACTIVATION_VARS)
    assert (args["name"], args["organization"], args["include_events"]) == ("Campaign step", "Default", False)
    (play,) = yaml.safe_load((ROOT / "playbooks" / "campaign_step.yml").read_text())
    step = play["tasks"][0]["thingspace.m2m.vz_sms_campaign"]
    needed = set().union(*(meta.find_undeclared_variables(jinja2.Environment().parse(value)) for value in step.values() if isinstance(value, str)))
    assert set(args["job_args"]["extra_vars"]) == needed == {"campaign_name", "campaign_message"}
    assert args["job_args"]["extra_vars"] == {"campaign_name": "apn-v1", "campaign_message": "APN=iot.example;MODE=2"}
    assert rule_sets[0].execution_strategy.name == "SEQUENTIAL"


def test_the_guide_shows_the_credential_type_as_shipped():
    guide = (ROOT / "docs" / "docsite" / "rst" / "guide_eda_controller.rst").read_text()
    block = guide.split("The credential type\n", 1)[1].split(".. code-block:: yaml+jinja\n", 1)[1].split("\n\n", 1)[0]
    shown = yaml.safe_load(textwrap.dedent(block))
    assert shown == {"inputs": dict(CREDENTIAL_TYPE["inputs"], fields=[{k: v for k, v in field.items() if k != "help_text"} for field in FIELDS.values()]),
                     "injectors": CREDENTIAL_TYPE["injectors"]}
