"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read (sanity checks them in
depth, more slowly)."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.thingspace.m2m.plugins.modules import vz_callback, vz_sms_receive, vz_sms_send, vz_sms_start_callbacks

MODULES = [vz_callback, vz_sms_receive, vz_sms_send, vz_sms_start_callbacks]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".", maxsplit=1)[-1])
@pytest.mark.parametrize("block", ["DOCUMENTATION", "EXAMPLES", "RETURN"])
def test_the_documentation_is_yaml(module, block):
    assert yaml.safe_load(getattr(module, block))
