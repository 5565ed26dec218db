"""Each source's DOCUMENTATION and EXAMPLES are YAML, and the documented options are those the source takes, with
their types, defaults and environment variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks, sms_history
from ansible_collections.thingspace.m2m.plugins.module_utils._event_source import REQUIRED, STORE_DOCUMENTATION, STORE_OPTIONS

SOURCES = [callbacks, sms_history]
TYPES = {str: "str", int: "int", float: "float", bool: "bool", list: "list"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.SOURCE)
def test_the_documented_options_are_the_options(source):
    documented = yaml.safe_load(source.DOCUMENTATION)["options"]
    assert list(documented) == list(source.OPTIONS)
    for name, (kind, default) in source.OPTIONS.items():
        doc = documented[name]
        assert doc["type"] == TYPES[kind], name
        assert doc.get("required", False) is (default is REQUIRED), name
        if default not in (None, REQUIRED):
            assert doc["default"] == default, name
        else:
            assert "default" not in doc, name
        text = " ".join(doc["description"]) if isinstance(doc["description"], list) else doc["description"]
        if name in source.ENV:
            assert "E(%s)" % source.ENV[name] in text, name


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.SOURCE)
def test_the_store_options_are_documented_with_the_text_of_their_owner(source):
    """Event sources have no doc fragments: each DOCUMENTATION copies _event_source.STORE_DOCUMENTATION."""
    shared = yaml.safe_load(STORE_DOCUMENTATION)["options"]
    assert set(shared) == set(STORE_OPTIONS) - {"state_dir"}
    documented = yaml.safe_load(source.DOCUMENTATION)["options"]
    for name, doc in shared.items():
        assert documented[name] == doc, "%s: copy the text of %s from _event_source.STORE_DOCUMENTATION" % (source.SOURCE, name)


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.SOURCE)
def test_the_examples_are_rulebooks_of_the_source(source):
    (ruleset,) = yaml.safe_load(source.EXAMPLES)
    (used,) = ruleset["sources"]
    assert list(used) == [source.SOURCE]
    credentials = {"client_id": "c", "client_secret": "s", "username": "u", "password": "p"} if source is sms_history else {}
    source._settings(dict(used[source.SOURCE], **credentials))


RULEBOOK = Path(__file__).resolve().parents[6] / "extensions" / "eda" / "rulebooks" / "sms_callbacks.yml"
# Secrets come from the environment only, never from a rulebook variable.
SECRETS = {"username", "password", "client_id", "client_secret", "access_token", "session_token", "ledger_password"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.SOURCE)
def test_the_rulebook_sets_every_option_but_secrets_from_a_variable_its_header_documents(source):
    text = RULEBOOK.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    (ruleset,) = yaml.safe_load(text)
    (args,) = [used[source.SOURCE] for used in ruleset["sources"] if source.SOURCE in used]
    assert set(args) == set(source.OPTIONS) - SECRETS
    for name, value in args.items():
        (variable,) = re.findall(r"^\{\{ (\w+)(?: \| default\(none\))? \}\}$", value)
        assert re.search(r"^#   %s\s" % variable, header, re.MULTILINE), variable
        assert variable.split("_", 1)[1] in (name, "account"), (name, variable)
