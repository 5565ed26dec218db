"""extensions/awx/credential_type.yml, the AWX credential type: it injects each field as the THINGSPACE_* variable of
the option of the same name (module_utils/env.py), its secret fields are the options that are no_log, and a module
given only the environment it injects sends, with the ledger in PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jinja2
import yaml

from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send

from fake_api import API, CREDENTIALS

CREDENTIAL_TYPE = yaml.safe_load((Path(__file__).resolve().parents[2] / "extensions" / "awx" / "credential_type.yml").read_text())
FIELDS = {field["id"]: field for field in CREDENTIAL_TYPE["inputs"]["fields"]}


def test_each_field_is_injected_as_the_variable_of_its_option():
    assert CREDENTIAL_TYPE["injectors"]["env"] == {ENV_VARS[name]: "{{ %s }}" % name for name in FIELDS}
    spec = dict(COMMON_ARGUMENT_SPEC, **LEDGER_ARGUMENT_SPEC)
    assert {name for name, field in FIELDS.items() if field.get("secret")} == {name for name in FIELDS if spec[name].get("no_log")}
    assert set(CREDENTIAL_TYPE["inputs"]["required"]) <= set(FIELDS)


def test_a_module_runs_with_only_what_the_credential_injects(fake, run_module, postgresql, monkeypatch):
    inputs = dict(CREDENTIALS, api_url=API, ledger_url=postgresql.url(), ledger_password=postgresql.password, ledger_schema=postgresql.new_schema())
    for name, template in CREDENTIAL_TYPE["injectors"]["env"].items():
        monkeypatch.setenv(name, jinja2.Template(template).render(inputs))
    no_options = dict.fromkeys([*CREDENTIALS, "api_url"])
    devices = [{"kind": "mdn", "id": "5550000001"}]
    result, failed = run_module(vz_sms_send.main, devices=devices, sms_message="hello", **no_options)
    assert not failed and result["devices_sent"] == 1
    result, failed = run_module(vz_sms_send.main, devices=devices, sms_message="hello", **no_options)
    assert not failed and result["devices_skipped"] == 1
    assert postgresql.execute('SELECT state FROM "%s".sends' % inputs["ledger_schema"]) == [("sent",)]


def test_the_awx_guide_shows_the_credential_type_as_shipped():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "docsite" / "rst" / "guide_awx.rst").read_text()
    block = guide.split("The credential type\n", 1)[1].split(".. code-block:: yaml+jinja\n", 1)[1].split("\n\n", 1)[0]
    shown = yaml.safe_load(textwrap.dedent(block))
    shipped = {"inputs": dict(CREDENTIAL_TYPE["inputs"], fields=[{k: v for k, v in field.items() if k != "help_text"} for field in FIELDS.values()]),
               "injectors": CREDENTIAL_TYPE["injectors"]}
    assert shown == shipped
