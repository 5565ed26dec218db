"""POST /api/m2m/v1/devices/actions/list: shape, filters, paging with 202 and lastSeenDeviceId."""

import pytest
from vendor_client import ACCOUNT, error_code

LIST = "/devices/actions/list"


def test_device_shape(api):
    response = api.call("POST", LIST, {"accountName": ACCOUNT})
    assert response.status_code == 200
    body = response.json()
    assert body["hasMoreData"] is False
    assert len(body["devices"]) == 24
    first = body["devices"][0]
    assert set(first) == {"accountName", "deviceIds", "groupNames", "customFields", "carrierInformations", "connected", "createdAt", "ipAddress"}
    assert first["deviceIds"][0] == {"kind": "iccid", "id": "89148000000000000019"}
    assert first["customFields"] == [{"key": "CustomField1", "value": "East"}, {"key": "CustomField2", "value": "fw-1.1"}]
    assert first["carrierInformations"] == [{"carrierName": "Verizon Wireless", "servicePlan": "m2m-4g-basic", "state": "active"}]
    assert first["groupNames"] == ["east-wave"]


def test_paging(emu, api):
    emu.admin.config(devicePageSize=5)
    seen, statuses, cursor = [], [], None
    while True:
        body = {"accountName": ACCOUNT} if cursor is None else {"accountName": ACCOUNT, "lastSeenDeviceId": cursor}
        response = api.call("POST", LIST, body)
        statuses.append(response.status_code)
        page = response.json()
        seen += [device["deviceIds"][0]["id"] for device in page["devices"]]
        if not page["hasMoreData"]:
            assert "lastSeenDeviceId" not in page
            break
        cursor = page["lastSeenDeviceId"]
    assert statuses == [202, 202, 202, 202, 200]
    assert len(seen) == len(set(seen)) == 24


def test_paging_of_a_filtered_list_ends_exactly(emu, api):
    emu.admin.config(devicePageSize=6)
    first = api.call("POST", LIST, {"accountName": ACCOUNT, "groupName": "east-wave"})
    assert (first.status_code, len(first.json()["devices"])) == (202, 6)
    second = api.call("POST", LIST, {"accountName": ACCOUNT, "groupName": "east-wave", "lastSeenDeviceId": first.json()["lastSeenDeviceId"]})
    assert (second.status_code, len(second.json()["devices"]), second.json()["hasMoreData"]) == (200, 6, False)


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
        ({"accountName": ACCOUNT, "lastSeenDeviceId": "zz"}, "UnifiedWebService.INPUT_INVALID.LastSeenDeviceId.Invalid"),
        ({"accountName": ACCOUNT, "lastSeenDeviceId": "999"}, "UnifiedWebService.INPUT_INVALID.LastSeenDeviceId.Invalid"),
    ],
)
def test_refusals(api, body, code):
    assert error_code(api.call("POST", LIST, body)) == code
