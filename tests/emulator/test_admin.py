"""The admin API: health, config, reset, logs and views."""

import time

import pytest
from vendor_client import ACCOUNT


def test_health_and_config(emu):
    assert emu.admin.health() == {"status": "ok"}
    config = emu.admin.config(deliveryDelay=0.5, devicePageSize=7)
    assert config == {
        "accessTokenTtl": 3600.0,
        "sessionIdleTtl": 1200.0,
        "smsExpiry": 432000.0,
        "deliveryDelay": 0.5,
        "devicePageSize": 7,
        "callbackRetryDelays": [0.05, 0.1, 0.2],
        "clockSpeed": 1.0,
        "allowAnyCallbackPort": True,
        "allowRemote": False,
    }
    assert emu.admin.call("GET", "config") == config


@pytest.mark.parametrize("change", [{"devicePageSize": 0}, {"accessTokenTtl": -1}, {"unknown": 1}, {"callbackRetryDelays": [1, 2]},
                                    {"callbackRetryDelays": [1, 2, -4]}, {"callbackRetryDelays": [1, 2, 1e999]},
                                    {"clockSpeed": 0}, {"clockSpeed": -1}])
def test_config_refuses_bad_values(emu, change):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        emu.admin.config(**change)


def test_reset_forgets_everything_but_config(emu, api, listener):
    emu.admin.config(devicePageSize=3)
    emu.admin.inject_mo(ACCOUNT, "mdn", "5550100002", "queued")
    api.register("EnhancedConnectivityService", listener.url)
    api.send(deviceIds=[{"kind": "mdn", "id": "5550100001"}], smsMessage="hi")
    listener.wait_count(2)
    for _attempt in range(5):
        api.login(password="wrong")
    emu.admin.fault(path="x", status=500)
    emu.admin.reset()
    assert emu.admin.sms() == []
    assert emu.admin.requests() == []
    assert emu.admin.callbacks() == []
    assert emu.admin.faults() == []
    assert all(d["smsReceived"] == 0 for d in emu.admin.devices(ACCOUNT))
    assert emu.admin.call("GET", "config")["devicePageSize"] == 3
    fresh = emu.client().authenticate()  # the lockout is gone too
    assert fresh.call("GET", f"/callbacks/{ACCOUNT}").json() == []
    assert fresh.call("GET", f"/sms/{ACCOUNT}/history").json()["messages"] == []


def test_request_log_filters(emu, api):
    api.call("GET", f"/callbacks/{ACCOUNT}", params={"x": "1"})
    entries = emu.admin.requests()
    assert [(e["method"], e["path"]) for e in entries] == [
        ("POST", "/api/ts/v1/oauth2/token"),
        ("POST", "/api/m2m/v1/session/login"),
        ("GET", f"/api/m2m/v1/callbacks/{ACCOUNT}"),
    ]
    assert entries[2]["query"] == "x=1" and entries[2]["status"] == 200
    assert [e["path"] for e in emu.admin.requests(method="get")] == [f"/api/m2m/v1/callbacks/{ACCOUNT}"]
    assert len(emu.admin.requests(path="/api/m2m/v1/session/login")) == 1


def test_device_view(emu):
    devices = emu.admin.devices(ACCOUNT)
    assert len(devices) == 24
    assert set(devices[0]) == {"accountName", "deviceIds", "state", "reachable", "smsReceived", "pending"}
    assert sorted(d["state"] for d in devices if d["state"] != "active") == ["deactive", "suspend", "suspend"]
    assert [d["reachable"] for d in devices].count(False) == 1


def test_unknown_paths(emu, api):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        emu.admin.call("GET", "nothing")
    for method, path in [("GET", "/sms"), ("GET", "/nothing"), ("DELETE", f"/sms/{ACCOUNT}/history")]:
        response = api.call(method, path)
        assert response.status_code == 400, path
        assert response.json()["fault"]["code"] == "900906"


def test_builtin_listener_records_callbacks_and_is_reset(emu, api):
    api.register("SMSDeliveryConfirmation", emu.url + "/_emulator/listener/demo", username="u", password="p")
    api.send(deviceIds=[{"kind": "mdn", "id": "5550100001"}], smsMessage="hi")
    deadline = time.monotonic() + 10
    while not emu.admin.listener("demo") and time.monotonic() < deadline:
        time.sleep(0.02)
    [body] = emu.admin.listener("demo")
    assert body["deviceResponse"]["smsDeliveryResponse"]["confirmation"] == "Delivered"
    assert (body["username"], body["password"]) == ("u", "p")
    assert emu.admin.listener("other") == []
    assert [a["status"] for a in emu.admin.callbacks()] == [200]
    emu.admin.reset()
    assert emu.admin.listener("demo") == []


def test_mo_injection_takes_an_array(emu, api):
    results = emu.admin.inject_mo_batch(
        [{"accountName": ACCOUNT, "deviceId": {"kind": "mdn", "id": "5550100001"}, "message": "m%d" % n} for n in range(3)]
    )
    assert results == [{"delivered": False, "queued": True}] * 3
    history = api.call("GET", "/sms/%s/history" % ACCOUNT).json()
    assert [m["message"] for m in history["messages"]] == ["m0", "m1", "m2"]
    with pytest.raises(RuntimeError, match="HTTP 404"):
        emu.admin.inject_mo_batch([{"accountName": ACCOUNT, "deviceId": {"kind": "mdn", "id": "5559999999"}, "message": "x"}])
