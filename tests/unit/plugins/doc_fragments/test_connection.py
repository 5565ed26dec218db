"""The environment variables the doc fragments name are those of module_utils/env.py, which the modules use."""

from __future__ import annotations

import re

import yaml

from ansible_collections.thingspace.m2m.plugins.doc_fragments import connection, ledger
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS


def _documented_env(fragment):
    options = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    named = {}
    for option, doc in options.items():
        found = re.findall(r"E\((THINGSPACE_\w+)\)", " ".join(doc["description"]))
        if found:
            named[option] = found
    return named


def test_every_environment_variable_is_documented_with_its_option():
    documented = {**_documented_env(connection), **_documented_env(ledger)}
    assert documented == {option: [name] for option, name in ENV_VARS.items()}
