"""The event sources' arguments: converted from what a templated rulebook gives, refused naming the argument."""

from __future__ import annotations

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils._event_source import REQUIRED, source_options

SPEC = {
    "port": (int, REQUIRED),
    "interval": (float, 60.0),
    "check": (bool, True),
    "networks": (list, None),
    "name": (str, None),
    "secret": (str, None),
}
ENV = {"secret": "TEST_SOURCE_SECRET", "port": "TEST_SOURCE_PORT"}


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("TEST_SOURCE_SECRET", raising=False)
    monkeypatch.delenv("TEST_SOURCE_PORT", raising=False)


def test_defaults_and_templated_values():
    assert source_options("src", {"port": 9001}, SPEC, ENV) == {"port": 9001, "interval": 60.0, "check": True, "networks": None, "name": None,
                                                                "secret": None}
    options = source_options("src", {"port": "9002", "interval": "0.5", "check": "False", "networks": "10.0.0.0/8, 192.0.2.1", "name": 42,
                                     "secret": None, "eda_feedback_queue": object()}, SPEC, ENV)
    assert options == {"port": 9002, "interval": 0.5, "check": False, "networks": ["10.0.0.0/8", "192.0.2.1"], "name": "42", "secret": None}
    assert source_options("src", {"port": 9001.0, "check": "yes", "networks": ["a", "b"]}, SPEC, ENV)["check"] is True


def test_the_environment_fills_what_the_arguments_leave_out(monkeypatch):
    monkeypatch.setenv("TEST_SOURCE_SECRET", "from-env")
    monkeypatch.setenv("TEST_SOURCE_PORT", "9003")
    assert source_options("src", {}, SPEC, ENV)["secret"] == "from-env"
    assert source_options("src", {"secret": "given", "port": 9004}, SPEC, ENV) == dict(source_options("src", {}, SPEC, ENV), secret="given", port=9004)


@pytest.mark.parametrize("args, message", [
    ({}, "src: the argument port is required (or the environment variable TEST_SOURCE_PORT)"),
    ({"port": 9001, "prot": 1}, "src: unknown argument(s) prot; the arguments are port, interval, check, networks, name, secret"),
    ({"port": 9001, "prot": 1, "intervall": 2}, "src: unknown argument(s) intervall, prot; the arguments are port, interval, check, networks, "),
    ({"port": "nine"}, "src: the argument port has the wrong type: expected a whole number"),
    ({"port": 9001.5}, "src: the argument port has the wrong type: expected a whole number"),
    ({"port": True}, "src: the argument port has the wrong type: expected a number"),
    ({"port": 9001, "interval": "soon"}, "src: the argument interval has the wrong type: expected a number"),
    ({"port": 9001, "check": "maybe"}, "src: the argument check has the wrong type: expected true or false"),
    ({"port": 9001, "networks": {"a": 1}}, "src: the argument networks has the wrong type: expected a list of strings"),
    ({"port": 9001, "secret": ["hunter2"]}, "src: the argument secret has the wrong type: expected a string"),
])
def test_wrong_arguments_are_named_and_their_values_not_shown(args, message):
    with pytest.raises(ValueError) as caught:
        source_options("src", args, SPEC, ENV)
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


def test_a_required_argument_without_an_environment_variable_is_named_alone():
    with pytest.raises(ValueError) as caught:
        source_options("src", {}, SPEC, {})
    assert str(caught.value) == "src: the argument port is required"
