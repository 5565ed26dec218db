"""POST /api/m2m/v1/sms: validation in the service's order, device resolution, what gets recorded."""

import json
import os
import uuid

import pytest
from vendor_client import ACCOUNT, DATA, error_code

TWO_ACCOUNTS = os.path.join(DATA, "two_accounts.yml")
ACCOUNT_A, ACCOUNT_B = "0000111111-00001", "0000222222-00001"


def mdn(n: int) -> dict:
    """Device n of the demo fleet, by MDN."""
    return {"kind": "mdn", "id": f"555010{n:04d}"}


def accepted(response) -> str:
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"requestId"}
    return str(uuid.UUID(response.json()["requestId"]))


def test_send_to_one_device(emu, api):
    request_id = accepted(api.send(accountName=ACCOUNT, deviceIds=[mdn(1)], smsMessage="Can you hear me now?"))
    [record] = emu.admin.sms()
    assert record["requestId"] == request_id
    assert record["accountName"] == ACCOUNT
    assert record["smsMessage"] == "Can you hear me now?"
    assert record["dataEncoding"] == "7-bit"
    assert record["devices"] == [{"kind": "iccid", "id": "89148000000000000019"}]
    assert record["deviceCount"] == 1
    device = next(d for d in emu.admin.devices(ACCOUNT) if {"kind": "mdn", "id": "5550100001"} in d["deviceIds"])
    assert device["smsReceived"] == 1


VALIDATION = [
    ({"deviceIds": [mdn(1)], "smsMessage": 123}, "UnifiedWebService.INPUT_INVALID.Body.Invalid"),
    ({"deviceIds": "all", "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.Body.Invalid"),
    ({"deviceIds": [{"kind": "bogus", "id": "1"}]}, "UnifiedWebService.INPUT_INVALID.SmsMessage.Null"),
    ({"deviceIds": [mdn(1)], "smsMessage": ""}, "UnifiedWebService.INPUT_INVALID.SmsMessage.Null"),
    ({"deviceIds": [mdn(1)], "smsMessage": "hi", "dataEncoding": "9-bit"}, "UnifiedWebService.INPUT_INVALID.DataEncoding.Invalid"),
    ({"deviceIds": [mdn(1)], "smsMessage": "a" * 161}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "{" * 81}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "a" * 150 + "€" * 6}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "a" * 141, "dataEncoding": "8-bit-ASCII"}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "é" * 71, "dataEncoding": "8-bit-UTF-8"}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "é" * 71, "dataEncoding": "8-bit-DATA"}, "UnifiedWebService.INPUT_INVALID.SmsMessage.TooLong"),
    ({"deviceIds": [mdn(1)], "smsMessage": "zażółć"}, "UnifiedWebService.INPUT_INVALID.SmsMessage.InvalidCharacter"),
    ({"deviceIds": [mdn(1)], "smsMessage": "café", "dataEncoding": "8-bit-ASCII"}, "UnifiedWebService.INPUT_INVALID.SmsMessage.InvalidCharacter"),
    ({"deviceIds": [mdn(1)], "groupName": "east-wave", "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.DeviceIds.Conflict"),
    (
        {"deviceIds": [mdn(1)], "customFields": [{"key": "CustomField1", "value": "East"}], "smsMessage": "hi"},
        "UnifiedWebService.INPUT_INVALID.DeviceIds.Conflict",
    ),
    ({"smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.DeviceIds.Null"),
    ({"deviceIds": [], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.DeviceIds.Null"),
    ({"deviceIds": [{"kind": "phone", "id": "5550100001"}], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.Device.Kind.Invalid"),
    ({"deviceIds": [{"id": "5550100001"}], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.Device.Kind.Invalid"),
    ({"deviceIds": [{"kind": "mdn"}], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.Device.Identifier.Invalid"),
    ({"deviceIds": [mdn(1), {"kind": "iccid", "id": "12345678901234567"}], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.Device.Identifier.Invalid"),
    ({"customFields": [{"key": "CustomField6", "value": "x"}], "smsMessage": "hi"}, "UnifiedWebService.INPUT_INVALID.CustomField.InvalidName"),
    ({"accountName": "9999999999-00001", "groupName": "east-wave", "smsMessage": "hi"}, "UnifiedWebService.REQUEST_FAILED.AccountNotFound"),
    ({"accountName": "9999999999-00001", "deviceIds": [mdn(1)], "smsMessage": "hi"}, "UnifiedWebService.REQUEST_FAILED.AccountNotFound"),
    ({"accountName": ACCOUNT, "groupName": "nope", "smsMessage": "hi"}, "UnifiedWebService.REQUEST_FAILED.DeviceGroupNotFound"),
    ({"accountName": ACCOUNT, "servicePlan": "nope", "smsMessage": "hi"}, "UnifiedWebService.REQUEST_FAILED.ServicePlanNotFound"),
    (
        {"accountName": ACCOUNT, "deviceIds": [mdn(1), {"kind": "mdn", "id": "5559999999"}], "smsMessage": "hi"},
        "UnifiedWebService.REQUEST_FAILED.DeviceNotFound",
    ),
]


@pytest.mark.parametrize(("body", "code"), VALIDATION, ids=[code.rsplit(".", 2)[-2] + "-" + str(n) for n, (_body, code) in enumerate(VALIDATION)])
def test_validation(emu, api, body, code):
    assert error_code(api.send(**body)) == code
    assert emu.admin.sms() == []


BAD_IDENTIFIERS = [
    ("esn", "2700000000"),
    ("esn", "27000000G2"),
    ("esn", "8F3A21B0"),  # hexadecimal: the vendor takes ESNs in decimal
    ("iccid", "89148000000000000019123"),
    ("imei", "35123456000001"),
    ("imsi", "31148"),
    ("mdn", "555010000"),
    ("mdn", "555010000\u0661"),  # a non-ASCII decimal digit
    ("meid", "A100000000000"),
    ("msisdn", "5550100001"),
    ("eid", "8904903200000000000000000000004"),
]


@pytest.mark.parametrize(("kind", "identifier"), BAD_IDENTIFIERS)
def test_identifier_rules(api, kind, identifier):
    response = api.send(deviceIds=[{"kind": kind, "id": identifier}], smsMessage="hi")
    assert error_code(response) == "UnifiedWebService.INPUT_INVALID.Device.Identifier.Invalid"


def test_more_than_ten_thousand_devices_refused(api):
    devices = [{"kind": "mdn", "id": f"{5550000000 + n}"} for n in range(10_001)]
    assert error_code(api.send(deviceIds=devices, smsMessage="hi")) == "UnifiedWebService.INPUT_INVALID.MaxRequestsExceeded"


def test_invalid_json_refused(api):
    response = api.http.post(f"{api.base}/api/m2m/v1/sms", data="{", headers=api.headers())
    assert error_code(response) == "UnifiedWebService.INPUT_INVALID.Body.Invalid"


@pytest.mark.parametrize(
    ("message", "encoding"),
    [
        ("a" * 160, None),
        ("{" * 80, "7-bit"),
        ("é@£$¥" * 32, "7-bit"),
        ("a" * 140, "8-bit-ASCII"),
        ("é" * 70, "8-bit-UTF-8"),
        ("\u00ff" * 70, "8-bit-DATA"),
        ("hi", "8-BIT-ascii"),
    ],
)
def test_message_limits_accepted(api, message, encoding):
    body = {"deviceIds": [mdn(1)], "smsMessage": message}
    if encoding:
        body["dataEncoding"] = encoding
    accepted(api.send(**body))


@pytest.mark.parametrize(
    "device_id",
    [
        {"kind": "ICCID", "id": "89148000000000000019"},
        {"kind": "imei", "id": "351234560000010"},
        {"kind": "Msisdn", "id": "15550100001"},
        {"kind": "imsi", "id": "311480000000001"},
        {"kind": "esn", "id": "27000000002"},
        {"kind": "meid", "id": "a1000000000003"},
        {"kind": "eid", "id": "89049032000000000000000000000004"},
    ],
)
def test_every_kind_resolves(emu, api, device_id):
    accepted(api.send(deviceIds=[device_id], smsMessage="hi"))
    assert emu.admin.sms()[0]["deviceCount"] == 1


def test_duplicate_devices_counted_once(emu, api):
    accepted(api.send(deviceIds=[mdn(1), {"kind": "iccid", "id": "89148000000000000019"}, mdn(2)], smsMessage="hi"))
    assert emu.admin.sms()[0]["deviceCount"] == 2


@pytest.mark.parametrize(
    ("selection", "count"),
    [
        ({"groupName": "east-wave"}, 12),
        ({"servicePlan": "m2m-4g-plus"}, 12),
        ({"customFields": [{"key": "CustomField2", "value": "FW-1.0"}]}, 8),
        ({"groupName": "east-wave", "customFields": [{"key": "CustomField2", "value": "fw-1.0"}]}, 4),
        ({"groupName": "west-wave", "servicePlan": "m2m-4g-basic"}, 6),
        ({"customFields": [{"key": "CustomField1", "value": "Eas"}]}, 0),
        ({"customFields": [{"key": "CustomField3", "value": "x"}]}, 0),
    ],
)
def test_filters_select_devices_with_all_criteria(emu, api, selection, count):
    request_id = accepted(api.send(smsMessage="hi", **selection))
    [record] = emu.admin.sms(account=ACCOUNT)
    assert (record["requestId"], record["deviceCount"]) == (request_id, count)


def test_filter_without_account_needs_a_single_account(make_emulator):
    emu = make_emulator(TWO_ACCOUNTS)
    assert error_code(emu.client().authenticate().send(groupName="alpha", smsMessage="hi")) == "UnifiedWebService.INPUT_INVALID.Account.NotDefined"
    limited = emu.client().authenticate("limited-user", "limited-pass")
    accepted(limited.send(groupName="alpha", smsMessage="hi"))
    assert emu.admin.sms()[0]["accountName"] == ACCOUNT_A


def test_device_ids_across_accounts(make_emulator):
    emu = make_emulator(TWO_ACCOUNTS)
    client = emu.client().authenticate()
    devices = [{"kind": "mdn", "id": "5551110001"}, {"kind": "mdn", "id": "5552220001"}]
    request_id = accepted(client.send(deviceIds=devices, smsMessage="hi"))
    records = emu.admin.sms()
    assert {(r["requestId"], r["accountName"], r["deviceCount"]) for r in records} == {(request_id, ACCOUNT_A, 1), (request_id, ACCOUNT_B, 1)}
    assert error_code(client.send(accountName=ACCOUNT_A, deviceIds=devices, smsMessage="hi")) == "UnifiedWebService.REQUEST_FAILED.DeviceNotFound"


def test_user_sees_only_its_accounts(make_emulator):
    emu = make_emulator(TWO_ACCOUNTS)
    limited = emu.client().authenticate("limited-user", "limited-pass")
    assert error_code(limited.send(accountName=ACCOUNT_B, groupName="alpha", smsMessage="hi")) == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"
    assert error_code(limited.send(deviceIds=[{"kind": "mdn", "id": "5552220001"}], smsMessage="hi")) == "UnifiedWebService.REQUEST_FAILED.DeviceNotFound"


JSON_BODIES = [
    ("/sms", {"deviceIds": [mdn(1)], "smsMessage": "hi"}),
    (f"/callbacks/{ACCOUNT}", {"name": "EnhancedConnectivityService", "url": "http://127.0.0.1:9001/"}),
    ("/devices/actions/list", {"accountName": ACCOUNT}),
    ("/session/login", {"username": "emulator-user", "password": "emulator-pass"}),
]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"])
@pytest.mark.parametrize(("path", "body"), JSON_BODIES, ids=[path for path, _body in JSON_BODIES])
def test_json_body_needs_the_json_content_type(emu, api, path, body, content_type):
    headers = {name: value for name, value in api.headers().items() if name != "Content-Type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = api.http.post(f"{api.base}/api/m2m/v1{path}", data=json.dumps(body), headers=headers)
    assert error_code(response) == "UnifiedWebService.INPUT_INVALID.ContentType.Invalid"
    assert emu.admin.sms() == []


def test_json_content_type_parameters_and_case(emu, api):
    headers = {**api.headers(), "Content-Type": "Application/JSON; charset=utf-8"}
    response = api.http.post(f"{api.base}/api/m2m/v1/sms", data=json.dumps({"deviceIds": [mdn(1)], "smsMessage": "hi"}), headers=headers)
    accepted(response)
