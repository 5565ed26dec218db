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


def _descriptions(node, where):
    """(where, description) of every ``description`` under ``node`` (options, suboptions, return values, attributes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description":
                yield where, value
            else:
                yield from _descriptions(value, "%s.%s" % (where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _descriptions(value, "%s[%d]" % (where, index))


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".", maxsplit=1)[-1])
def test_every_description_is_text(module):
    """A description is a string or a list of strings: an item with a colon and a space in plain YAML becomes a mapping,
    which ansible-doc and antsibull-docs refuse (make docs failed on vz_sms_campaign's wave_timeout)."""
    for block in ("DOCUMENTATION", "RETURN"):
        for where, description in _descriptions(yaml.safe_load(getattr(module, block)), block):
            items = description if isinstance(description, list) else [description]
            assert all(isinstance(item, str) for item in items), "%s: %r" % (where, description)
