"""The emulator against the vendor's rules in tests/vendor_rules.yml, the table the collection is checked
against too: message encodings and limits, identifier kinds, devices per request, listener ports and
callback service names."""

import os

import pytest
import yaml
from vendor_client import ACCOUNT, error_code

from thingspace_emulator import rules

with open(os.path.join(os.path.dirname(__file__), os.pardir, "vendor_rules.yml"), encoding="utf-8") as handle:
    VENDOR = yaml.safe_load(handle)

ENCODINGS = VENDOR["message_encodings"]["encodings"]
KINDS = VENDOR["device_identifiers"]["kinds"]
DEVICE = {"kind": "mdn", "id": "5550100001"}


def refused(response, code: str) -> bool:
    """Whether the answer is the vendor error code (after any service name prefix)."""
    return error_code(response).endswith(code)


def send(api, message: str, encoding: str):
    return api.send(deviceIds=[DEVICE], smsMessage=message, dataEncoding=encoding)


# ---- message encodings --------------------------------------------------------------------------


def test_encoding_names_and_default():
    assert set(rules.DATA_ENCODINGS) == {encoding["name"] for encoding in ENCODINGS}
    assert VENDOR["message_encodings"]["default"] == rules.DEFAULT_ENCODING


@pytest.mark.parametrize("encoding", ENCODINGS, ids=[encoding["name"] for encoding in ENCODINGS])
def test_message_limit(api, encoding):
    name, limit = encoding["name"], encoding["limit"]
    assert send(api, "a" * limit, name).status_code == 200
    assert refused(send(api, "a" * (limit + 1), name), "INPUT_INVALID.SmsMessage.TooLong")


@pytest.mark.parametrize("char", VENDOR["message_encodings"]["encodings"][0]["two_septet_characters"])
def test_extension_characters_take_two_septets(api, char):
    limit = ENCODINGS[0]["limit"]
    assert send(api, "a" * (limit - 2) + char, "7-bit").status_code == 200
    assert refused(send(api, "a" * (limit - 1) + char, "7-bit"), "INPUT_INVALID.SmsMessage.TooLong")


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e["unit"] == "bytes" and e["name"] != "8-bit-ASCII"], ids=lambda e: e["name"])
def test_eight_bit_limits_count_bytes(api, encoding):
    limit = encoding["limit"]
    assert send(api, "é" * (limit // 2), encoding["name"]).status_code == 200
    assert refused(send(api, "é" * (limit // 2) + "a", encoding["name"]), "INPUT_INVALID.SmsMessage.TooLong")


# ---- device identifiers -------------------------------------------------------------------------


def test_identifier_kinds():
    assert set(rules.KINDS) == {entry["kind"] for entry in KINDS}


@pytest.mark.parametrize("entry", KINDS, ids=[entry["kind"] for entry in KINDS])
def test_identifier_syntax(entry):
    assert [i for i in entry["valid"] if not rules.valid_identifier(entry["kind"], i)] == []
    assert [i for i in entry["invalid"] if rules.valid_identifier(entry["kind"], i)] == []


def test_invalid_identifier_refused_over_http(api):
    for entry in KINDS:
        response = api.send(deviceIds=[{"kind": entry["kind"].upper(), "id": entry["invalid"][0]}], smsMessage="hi")
        assert refused(response, "INPUT_INVALID.Device.Identifier.Invalid"), entry["kind"]


# ---- devices per request ------------------------------------------------------------------------


def test_max_devices_per_request(api):
    most = VENDOR["max_devices_per_request"]["value"]
    assert most == rules.MAX_DEVICES
    devices = [{"kind": "mdn", "id": f"{5560000000 + n}"} for n in range(most + 1)]
    assert refused(api.send(deviceIds=devices[:most], smsMessage="hi"), "REQUEST_FAILED.DeviceNotFound")
    assert refused(api.send(deviceIds=devices, smsMessage="hi"), "INPUT_INVALID.MaxRequestsExceeded")


# ---- callback listener ports --------------------------------------------------------------------

PORTS = VENDOR["callback_listener_ports"]
ALLOWED = set(PORTS["ports"]).union(*(range(low, high + 1) for low, high in PORTS["ranges"]))


def test_allowed_ports():
    assert rules.ALLOWED_PORTS == ALLOWED


def test_port_edges_over_http(make_emulator):
    api = make_emulator(allow_any_callback_port=False).client().authenticate()
    for port in sorted(ALLOWED | {port + step for port in ALLOWED for step in (-1, 1)}):
        response = api.register("EnhancedConnectivityService", f"http://127.0.0.1:{port}/")
        if port in ALLOWED:
            assert response.status_code == 200, port
        else:
            assert refused(response, "INPUT_INVALID.Url.PortNotAllowed"), port


# ---- callback service names ---------------------------------------------------------------------

SERVICES = [entry["name"] for entry in VENDOR["callback_services"]]
NOT_KEPT = [entry["name"] for entry in VENDOR["callback_services_not_kept"]]


def test_service_names():
    assert sorted(rules.SERVICE_NAMES) == sorted(SERVICES)


def test_service_names_over_http(api):
    for name in SERVICES:
        assert api.register(name, "http://127.0.0.1:9001/").status_code == 200, name
    for name in NOT_KEPT:
        assert refused(api.register(name, "http://127.0.0.1:9001/"), "INPUT_INVALID.ServiceName.Invalid"), name
    assert sorted(item["serviceName"] for item in api.call("GET", f"/callbacks/{ACCOUNT}").json()) == sorted(SERVICES)
