"""Callback service names: one list in module_utils (callbacks.SERVICE_NAMES); the literal copies that
ansible-doc and the role's argument validation read must agree with it."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import SERVICE_NAMES, SMS_SERVICE
from ansible_collections.thingspace.m2m.plugins.modules import vz_callback

ROOT = Path(__file__).resolve().parents[4]


def test_vz_callback_documents_exactly_the_service_names():
    choices = yaml.safe_load(vz_callback.DOCUMENTATION)["options"]["service_name"]["choices"]
    assert choices == list(SERVICE_NAMES)


def test_the_sms_callbacks_role_accepts_the_service_names_but_the_sms_one():
    spec = yaml.safe_load((ROOT / "roles" / "sms_callbacks" / "meta" / "argument_specs.yml").read_text())
    services = spec["argument_specs"]["main"]["options"]["sms_callbacks_accounts"]["options"]["services"]
    choices = services["options"]["name"]["choices"]
    assert choices == [name for name in SERVICE_NAMES if name != SMS_SERVICE]
