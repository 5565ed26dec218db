"""POST /api/m2m/v1/devices/actions/list: shape, filters, paging with 202 and largestDeviceIdSeen."""

import os

import pytest
from vendor_client import ACCOUNT, DATA, error_code

LIST = "/devices/actions/list"


def device_id(device: dict) -> int:
    """The service's internal id of a listed device: its extended attribute DeviceId."""
    [value] = [entry["value"] for entry in device["extendedAttributes"] if entry["key"] == "DeviceId"]
    return int(value)


def test_device_shape(api):
    response = api.call("POST", LIST, {"accountName": ACCOUNT})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"hasMoreData", "devices"}
    assert body["hasMoreData"] is False
    assert len(body["devices"]) == 24
    first = body["devices"][0]
    assert set(first) == {
        "accountName",
        "deviceIds",
        "groupNames",
        "customFields",
        "carrierInformations",
        "connected",
        "createdAt",
        "ipAddress",
        "extendedAttributes",
    }
    assert first["deviceIds"][0] == {"kind": "iccid", "id": "89148000000000000019"}
    assert first["customFields"] == [{"key": "CustomField1", "value": "East"}, {"key": "CustomField2", "value": "fw-1.1"}]
    assert first["carrierInformations"] == [{"carrierName": "Verizon Wireless", "servicePlan": "m2m-4g-basic", "state": "active"}]
    assert first["groupNames"] == ["east-wave"]
    ids = [device_id(device) for device in body["devices"]]
    assert ids == sorted(set(ids))


def pages(api, body: dict) -> tuple:
    """Every page of the list as the vendor's paging instructions read: send largestDeviceIdSeen, the
    largest DeviceId of the last page, until hasMoreData is false. Returns (statuses, devices)."""
    statuses, devices, cursor = [], [], 0
    while True:
        response = api.call("POST", LIST, {**body, "largestDeviceIdSeen": cursor})
        statuses.append(response.status_code)
        page = response.json()
        assert set(page) == {"hasMoreData", "devices"}
        devices += page["devices"]
        if not page["hasMoreData"]:
            return statuses, devices
        cursor = max(device_id(device) for device in page["devices"])


def test_paging(emu, api):
    emu.admin.config(devicePageSize=5)
    statuses, devices = pages(api, {"accountName": ACCOUNT})
    assert statuses == [202, 202, 202, 202, 200]
    seen = [device["deviceIds"][0]["id"] for device in devices]
    assert len(seen) == len(set(seen)) == 24


def test_paging_of_a_filtered_list_ends_exactly(emu, api):
    emu.admin.config(devicePageSize=6)
    statuses, devices = pages(api, {"accountName": ACCOUNT, "groupName": "east-wave"})
    assert (statuses, len(devices)) == ([202, 200], 12)


def test_invented_cursor_field_is_ignored(emu, api):
    emu.admin.config(devicePageSize=5)
    first = api.call("POST", LIST, {"accountName": ACCOUNT}).json()
    again = api.call("POST", LIST, {"accountName": ACCOUNT, "lastSeenDeviceId": "4"}).json()
    assert again == first


def test_cursor_past_the_last_device(api):
    last = max(device_id(device) for device in api.call("POST", LIST, {"accountName": ACCOUNT}).json()["devices"])
    response = api.call("POST", LIST, {"accountName": ACCOUNT, "largestDeviceIdSeen": last})
    assert (response.status_code, response.json()) == (200, {"hasMoreData": False, "devices": []})


def test_device_ids_are_unique_across_accounts(make_emulator):
    api = make_emulator(os.path.join(DATA, "two_accounts.yml")).client().authenticate()
    ids = [device_id(d) for name in ("0000111111-00001", "0000222222-00001") for d in api.call("POST", LIST, {"accountName": name}).json()["devices"]]
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.parametrize(
    ("criteria", "count"),
    [
        ({"groupName": "west-wave"}, 12),
        ({"servicePlan": "m2m-4g-basic"}, 12),
        ({"customFields": [{"key": "CustomField1", "value": "west"}]}, 12),
        ({"currentState": "suspended"}, 2),
        ({"currentState": "ACTIVE", "groupName": "east-wave"}, 10),
    ],
)
def test_filters(api, criteria, count):
    assert len(api.call("POST", LIST, {"accountName": ACCOUNT, **criteria}).json()["devices"]) == count


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "UnifiedWebService.INPUT_INVALID.Account.NotDefined"),
        ({"accountName": "9999999999-00001"}, "UnifiedWebService.REQUEST_FAILED.AccountNotFound"),
        ({"accountName": ACCOUNT, "groupName": "nope"}, "DeviceService.REQUEST_FAILED.DeviceGroupNotFound"),
        ({"accountName": ACCOUNT, "servicePlan": "nope"}, "DeviceService.REQUEST_FAILED.ServicePlanNotFound"),
        ({"accountName": ACCOUNT, "customFields": [{"key": "Region", "value": "x"}]}, "DeviceService.INPUT_INVALID.CustomField.InvalidName"),
        ({"accountName": ACCOUNT, "largestDeviceIdSeen": "5"}, "UnifiedWebService.INPUT_INVALID.Body.Invalid"),
        ({"accountName": ACCOUNT, "largestDeviceIdSeen": -1}, "UnifiedWebService.INPUT_INVALID.Body.Invalid"),
        ({"accountName": ACCOUNT, "largestDeviceIdSeen": True}, "UnifiedWebService.INPUT_INVALID.Body.Invalid"),
    ],
)
def test_refusals(api, body, code):
    assert error_code(api.call("POST", LIST, body)) == code
