"""The collection against tests/vendor_rules.yml, the vendor's rules kept once (the emulator's tests check the
emulator against the same table): encodings and limits, identifier kinds, callback service names and ports,
devices per request."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.thingspace.m2m.plugins.module_utils import callbacks, sms

RULES = yaml.safe_load((Path(__file__).resolve().parents[1] / "vendor_rules.yml").read_text())
KINDS = RULES["device_identifiers"]["kinds"]


def test_encodings_and_their_limits():
    encodings = RULES["message_encodings"]["encodings"]
    assert list(sms.ENCODINGS) == [entry["name"] for entry in encodings]
    for entry in encodings:
        assert sms.message_size("x", entry["name"])[1:] == (entry["limit"], entry["unit"])
        with pytest.raises(ValueError, match="over the %d" % entry["limit"]):
            sms.message_size("x" * (entry["limit"] + 1), entry["name"])
    seven_bit = encodings[0]
    for char in seven_bit["two_septet_characters"]:
        assert sms.message_size(char, "7-bit")[0] == 2


def test_identifier_kinds():
    assert sorted(sms.DEVICE_KINDS) == sorted(entry["kind"] for entry in KINDS)


@pytest.mark.parametrize("entry", KINDS, ids=[entry["kind"] for entry in KINDS])
def test_identifier_syntax(entry):
    for ident in entry["valid"]:
        sms.normalize_device({"kind": entry["kind"], "id": ident})
    for ident in entry["invalid"]:
        with pytest.raises(ValueError, match="is not a valid %s" % entry["kind"]):
            sms.normalize_device({"kind": entry["kind"], "id": ident})


def test_devices_per_request():
    assert RULES["max_devices_per_request"]["value"] == sms.MAX_DEVICES_PER_REQUEST


def test_callback_service_names():
    assert sorted(callbacks.SERVICE_NAMES) == sorted(entry["name"] for entry in RULES["callback_services"])


def test_listener_ports():
    rule = RULES["callback_listener_ports"]
    accepted = set(rule["ports"]).union(*(range(low, high + 1) for low, high in rule["ranges"]))
    assert accepted == callbacks.LISTENER_PORTS
