"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read (sanity checks them in
depth, more slowly)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import yaml

from ansible_collections.thingspace.m2m.plugins import modules

# Every module of plugins/modules, found rather than listed, so a new one is checked too.
MODULES = [importlib.import_module("%s.%s" % (modules.__name__, info.name)) for info in pkgutil.iter_modules(modules.__path__)]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".", maxsplit=1)[-1])
@pytest.mark.parametrize("block", ["DOCUMENTATION", "EXAMPLES", "RETURN"])
def test_the_documentation_is_yaml(module, block):
    assert yaml.safe_load(getattr(module, block))


def test_every_module_is_checked():
    assert len(MODULES) >= 6 and "vz_sms_delivery_info" in [module.__name__.rsplit(".", 1)[-1] for module in MODULES]
