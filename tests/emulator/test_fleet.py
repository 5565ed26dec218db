"""Fleet files: the built-in demo fleet and the checks on user-supplied ones."""

import json

import pytest

from thingspace_emulator.fleet import load_fleet
from thingspace_emulator.rules import valid_identifier

ACCOUNT = "0000123456-00001"


def test_demo_fleet():
    fleet = load_fleet()
    account = fleet.accounts[ACCOUNT]
    devices = account.devices
    assert len(devices) >= 24
    assert len(account.groups) >= 2 and len(account.plans) == 2
    assert {"CustomField1", "CustomField2"} <= {key for device in devices for key in device.custom}
    assert any(device.state == "suspend" for device in devices)
    assert {kind for device in devices for kind, _id in device.ids} == {"esn", "iccid", "imei", "imsi", "mdn", "meid", "msisdn", "eid"}
    for device in devices:
        assert device.ids[0][0] == "iccid"
        assert {"iccid", "imei", "mdn", "msisdn"} <= {kind for kind, _id in device.ids}
        assert all(valid_identifier(kind, ident) for kind, ident in device.ids)
        assert all(fleet.lookup(kind, ident) is device for kind, ident in device.ids)
    assert fleet.clients == {"emulator-client": "emulator-secret"}
    assert fleet.users["emulator-user"].password == "emulator-pass"


def test_json_fleet(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"accounts": [{"name": "A-1", "devices": [{"deviceIds": [{"kind": "MEID", "id": "a1000000000001"}]}]}]}))
    fleet = load_fleet(str(path))
    device = fleet.lookup("meid", "A1000000000001")
    assert device is not None and device.state == "active" and device.reachable


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "groupNames": ["g"]}]}]}, "device group 'g'"),
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "servicePlan": "p"}]}]}, "service plan 'p'"),
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "mdn", "id": "555"}]}]}]}, "not a valid mdn"),
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "pin", "id": "1"}]}]}]}, "unknown device kind"),
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "customFields": {"Region": "x"}}]}]}, "custom field"),
        ({"accounts": [{"name": "A"}], "users": [{"username": "u", "password": "p", "accounts": ["B"]}]}, "account 'B'"),
        ({"accounts": []}, "at least 1 item"),
        ({"accounts": [{"name": "A", "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}] * 2}]}, "listed twice"),
    ],
)
def test_fleet_errors(tmp_path, fleet, message):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    with pytest.raises(ValueError, match=message):
        load_fleet(str(path))
