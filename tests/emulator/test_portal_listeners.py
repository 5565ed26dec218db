"""Listeners registered through the vendor's portal or SOAP API: the REST API does not list them and
cannot replace or remove them, yet they receive the callbacks."""

import json

import pytest
from vendor_client import ACCOUNT, error_code

from thingspace_emulator.fleet import load_fleet

ECS, SDC = "EnhancedConnectivityService", "SMSDeliveryConfirmation"


def listed(api) -> list:
    return [(item["serviceName"], item["url"]) for item in api.call("GET", f"/callbacks/{ACCOUNT}").json()]


def test_portal_listener_is_hidden_from_rest_and_cannot_be_replaced(emu, api, listener):
    emu.admin.portal_listener(ACCOUNT, ECS, f"{listener.url}/portal", username="p-user", password="p-pass")
    assert listed(api) == []
    assert error_code(api.register(ECS, "http://127.0.0.1:9001/rest")) == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    assert error_code(api.call("DELETE", f"/callbacks/{ACCOUNT}/name/{ECS}")) == "UnifiedWebService.REQUEST_FAILED.CallbackNotRegistered"
    assert api.register(SDC, "http://127.0.0.1:9002/sdc").status_code == 200
    assert listed(api) == [(SDC, "http://127.0.0.1:9002/sdc")]
    assert api.send(deviceIds=[{"kind": "mdn", "id": "5550100001"}], smsMessage="hi").status_code == 200
    received = listener.wait_count(2)
    assert {item.path for item in received} == {"/portal"}
    assert {(item.body["username"], item.body["password"]) for item in received} == {("p-user", "p-pass")}
    assert emu.admin.portal_listeners() == [
        {"accountName": ACCOUNT, "serviceName": ECS, "url": f"{listener.url}/portal", "username": "p-user", "password": "p-pass"}
    ]


def test_portal_listener_takes_the_place_of_a_rest_one(emu, api):
    assert api.register(ECS, "http://127.0.0.1:9001/rest").status_code == 200
    emu.admin.portal_listener(ACCOUNT, ECS, "http://127.0.0.1:9003/portal")
    assert listed(api) == []
    emu.admin.reset()
    api.authenticate()
    assert api.register(ECS, "http://127.0.0.1:9001/rest").status_code == 200


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({"accountName": "9999999999-00001", "serviceName": ECS, "url": "http://127.0.0.1:9001/"}, 404),
        ({"accountName": ACCOUNT, "serviceName": "SmsService", "url": "http://127.0.0.1:9001/"}, 400),
        ({"accountName": ACCOUNT, "serviceName": ECS}, 400),
    ],
)
def test_admin_refuses_bad_portal_listeners(emu, spec, status):
    with pytest.raises(RuntimeError, match=f"HTTP {status}"):
        emu.admin.call("POST", "portal-listeners", spec)
    assert emu.admin.portal_listeners() == []


def test_fleet_file_portal_listener_survives_a_reset(make_emulator, tmp_path):
    fleet = tmp_path / "fleet.json"
    device = {"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}
    portal = {"serviceName": SDC, "url": "http://127.0.0.1:9004/portal"}
    fleet.write_text(json.dumps({"accounts": [{"name": ACCOUNT, "devices": [device], "portalListeners": [portal]}]}))
    emu = make_emulator(str(fleet))
    api = emu.client().authenticate()
    assert error_code(api.register(SDC, "http://127.0.0.1:9001/")) == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    emu.admin.reset()
    api.authenticate()
    assert listed(api) == []
    assert error_code(api.register(SDC, "http://127.0.0.1:9001/")) == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    assert [item["serviceName"] for item in emu.admin.portal_listeners()] == [SDC]


def test_fleet_file_refuses_an_unknown_service(tmp_path):
    fleet = tmp_path / "fleet.json"
    device = {"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}
    fleet.write_text(json.dumps({"accounts": [{"name": ACCOUNT, "devices": [device], "portalListeners": [{"serviceName": "Nope", "url": "http://x/"}]}]}))
    with pytest.raises(ValueError, match="Nope"):
        load_fleet(str(fleet))
