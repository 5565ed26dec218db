"""Callback registration, the callbacks of a POST /sms (compared with the seed's JSON), retries,
mobile-originated SMS and startCallbacks."""

import json
import os
import socket
import time
from datetime import datetime

import pytest
from vendor_client import ACCOUNT, DATA, error_code

from thingspace_emulator.fanout import HTTP_TIMEOUT
from thingspace_emulator.testing import CallbackListener

with open(os.path.join(DATA, "seed_callbacks.json"), encoding="utf-8") as handle:
    SEED = json.load(handle)

ECS, SDC = "EnhancedConnectivityService", "SMSDeliveryConfirmation"
CREDENTIALS = {"username": "cb-user", "password": "cb-pass"}


def mdn(n: int) -> dict:
    return {"kind": "mdn", "id": f"555010{n:04d}"}


def wait_until(probe, timeout: float = 10.0):
    """The first truthy value of probe(), polled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(probe())


def wait_attempts(emu, count: int) -> list:
    def enough():
        attempts = emu.admin.callbacks()
        return attempts if len(attempts) >= count else None

    return wait_until(enough)


def shape(value):
    """Keys and value types, recursively (a list by its first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# ---- registration -------------------------------------------------------------------------------


def test_register_list_replace_deregister(api):
    response = api.register(ECS, "http://127.0.0.1:9001/ecs", **CREDENTIALS)
    assert response.status_code == 200
    assert response.json() == {"accountName": ACCOUNT, "serviceName": ECS}
    assert api.register(SDC, "https://127.0.0.1/sdc").status_code == 200
    listed = api.call("GET", f"/callbacks/{ACCOUNT}").json()
    assert listed == [
        {"accountName": ACCOUNT, "serviceName": ECS, "url": "http://127.0.0.1:9001/ecs", **CREDENTIALS},
        {"accountName": ACCOUNT, "serviceName": SDC, "url": "https://127.0.0.1/sdc", "username": "", "password": ""},
    ]
    assert api.register(ECS, "http://127.0.0.1:9002/new").status_code == 200
    listed = api.call("GET", f"/callbacks/{ACCOUNT}").json()
    assert [(item["serviceName"], item["url"]) for item in listed] == [(SDC, "https://127.0.0.1/sdc"), (ECS, "http://127.0.0.1:9002/new")]
    response = api.call("DELETE", f"/callbacks/{ACCOUNT}/name/{SDC}")
    assert response.json() == {"accountName": ACCOUNT, "serviceName": SDC}
    assert [item["serviceName"] for item in api.call("GET", f"/callbacks/{ACCOUNT}").json()] == [ECS]
    assert error_code(api.call("DELETE", f"/callbacks/{ACCOUNT}/name/{SDC}")) == "UnifiedWebService.REQUEST_FAILED.CallbackNotRegistered"


@pytest.mark.parametrize(
    ("name", "url", "code"),
    [
        ("SmsService", "http://127.0.0.1:9001/", "UnifiedWebService.INPUT_INVALID.ServiceName.Invalid"),
        (None, "http://127.0.0.1:9001/", "UnifiedWebService.INPUT_INVALID.ServiceName.Invalid"),
        (ECS, "ftp://127.0.0.1:9001/", "UnifiedWebService.INPUT_INVALID.Url.Invalid"),
        (ECS, "not a url", "UnifiedWebService.INPUT_INVALID.Url.Invalid"),
        (ECS, "http://127.0.0.1:99999/", "UnifiedWebService.INPUT_INVALID.Url.Invalid"),
        (ECS, "http://127.0.0.1:8080/", "UnifiedWebService.INPUT_INVALID.Url.PortNotAllowed"),
        (ECS, "http://192.0.2.1:9007/", "UnifiedWebService.INPUT_INVALID.Url.PortNotAllowed"),
    ],
)
def test_register_refusals(make_emulator, name, url, code):
    api = make_emulator(allow_any_callback_port=False).client().authenticate()
    assert error_code(api.call("POST", f"/callbacks/{ACCOUNT}", {"name": name, "url": url})) == code


@pytest.mark.parametrize("url", ["http://127.0.0.1:9006/", "http://127.0.0.1:50559/", "http://127.0.0.1:28200/", "https://127.0.0.1/", "http://localhost/x"])
def test_register_vendor_ports(make_emulator, url):
    api = make_emulator(allow_any_callback_port=False).client().authenticate()
    assert api.register(ECS, url).status_code == 200


def test_any_port_flag_covers_loopback_only(api):
    assert api.register(ECS, "http://127.0.0.1:8080/").status_code == 200
    assert error_code(api.register(ECS, "http://192.0.2.1:8080/")) == "UnifiedWebService.INPUT_INVALID.Url.PortNotAllowed"


def test_callback_calls_check_account(api):
    assert error_code(api.call("GET", "/callbacks/9999999999-00001")) == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"
    assert error_code(api.register(ECS, "http://127.0.0.1:9001/", account="9999999999-00001")) == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"


# ---- callbacks of a send ------------------------------------------------------------------------


def test_send_callbacks_match_the_seed(emu, api, listener):
    emu.admin.config(smsExpiry=0.5)
    api.register(ECS, f"{listener.url}/ecs", **CREDENTIALS)
    api.register(SDC, f"{listener.url}/sdc", **CREDENTIALS)
    request_id = api.send(accountName=ACCOUNT, deviceIds=[mdn(1), mdn(11), mdn(12)], smsMessage="hi").json()["requestId"]
    received = listener.wait_count(7)
    ecs = [item.body for item in received if item.path == "/ecs"]
    sdc = [item.body for item in received if item.path == "/sdc"]
    per_device, complete = ecs[:3], ecs[3]
    for body in per_device:
        assert shape(body) == shape(SEED["perDevice"])
        assert (body["comment"], body["status"], body["callbackCount"], body["maxCallbackThreshold"]) == (SEED["perDevice"]["comment"], "Success", 1, 4)
        assert [item["kind"] for item in body["deviceIds"]][:4] == ["Iccid", "Imei", "Mdn", "Msisdn"]
    assert {body["deviceIds"][2]["id"] for body in per_device} == {"5550100001", "5550100011", "5550100012"}
    assert shape(complete) == shape(SEED["requestComplete"])
    assert complete["comment"] == SEED["requestComplete"]["comment"]
    assert complete["summary"] == {"devicesRequested": 3}
    confirmations = {body["deviceIds"][0]["id"]: body["deviceResponse"]["smsDeliveryResponse"]["confirmation"] for body in sdc}
    assert confirmations == {"5550100001": "Delivered", "5550100011": "Undelivered", "5550100012": "Expired"}
    for body in sdc:
        assert shape(body) == shape(SEED[confirmations[body["deviceIds"][0]["id"]].lower()])
        assert [item["kind"] for item in body["deviceIds"]] == ["Mdn"]
    for body in ecs + sdc:
        assert (body["requestId"], body["username"], body["password"]) == (request_id, "cb-user", "cb-pass")
    assert next(d["pending"] for d in emu.admin.devices(ACCOUNT) if mdn(12) in d["deviceIds"]) == 0


def test_rejected_when_a_hundred_are_pending(emu, api, listener):
    api.register(SDC, listener.url, **CREDENTIALS)
    for _attempt in range(100):
        api.send(deviceIds=[mdn(12)], smsMessage="hi")
    assert next(d["pending"] for d in emu.admin.devices(ACCOUNT) if mdn(12) in d["deviceIds"]) == 100
    api.send(deviceIds=[mdn(12)], smsMessage="one too many")
    [rejected] = listener.wait_count(1)
    assert shape(rejected.body) == shape(SEED["rejected"])
    assert rejected.body["deviceResponse"]["smsDeliveryResponse"]["confirmation"] == "Rejected"


def test_bodies_without_registered_credentials(emu, api, listener):
    api.register(ECS, listener.url)
    api.register(SDC, listener.url, username="only-a-user")
    api.send(deviceIds=[mdn(1)], smsMessage="hi")
    emu.admin.inject_mo(ACCOUNT, "mdn", "5550100001", "mo")
    received = listener.wait_count(4)
    assert sorted((item.body.get("username"), item.body.get("password")) for item in received) == [("", "")] * 3 + [("only-a-user", "")]


def confirmation_ids(make_emulator, tmp_path, device_ids: list) -> list:
    """The deviceIds of the SMSDeliveryConfirmation for a device with these identifiers."""
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(json.dumps({"accounts": [{"name": ACCOUNT, "devices": [{"deviceIds": device_ids}]}]}))
    emu = make_emulator(str(fleet))
    api = emu.client().authenticate()
    with CallbackListener() as listener:
        api.register(SDC, listener.url)
        assert api.send(deviceIds=[device_ids[0]], smsMessage="hi").status_code == 200
        [item] = listener.wait_count(1)
    return item.body["deviceIds"]


def test_confirmation_names_the_phone_number(make_emulator, tmp_path):
    iccid = {"kind": "iccid", "id": "89148000000000000019"}
    msisdn = {"kind": "msisdn", "id": "15550100001"}
    assert confirmation_ids(make_emulator, tmp_path, [iccid, msisdn, {"kind": "mdn", "id": "5550100001"}]) == [{"kind": "Mdn", "id": "5550100001"}]
    assert confirmation_ids(make_emulator, tmp_path, [iccid, msisdn]) == [{"kind": "Msisdn", "id": "15550100001"}]
    assert confirmation_ids(make_emulator, tmp_path, [iccid]) == [{"kind": "Iccid", "id": "89148000000000000019"}]


def test_filter_matching_nothing_still_completes(api, listener):
    api.register(ECS, listener.url)
    api.send(customFields=[{"key": "CustomField5", "value": "none"}], smsMessage="hi")
    [complete] = listener.wait_count(1)
    assert complete.body["summary"] == {"devicesRequested": 0}


def test_retried_until_the_listener_answers_2xx(api, listener):
    listener.fail_next(3, 503)
    api.register(ECS, listener.url)
    api.send(deviceIds=[mdn(1)], smsMessage="hi")
    received = listener.wait_count(5)
    assert [(item.status, item.body.get("callbackCount")) for item in received[:4]] == [(503, 1), (503, 2), (503, 3), (200, 4)]
    assert received[4].body["comment"] == "SendSmsMessage,Request Completed Processing."


def test_gives_up_after_four_attempts(emu, api, listener):
    listener.fail_next(100)
    api.register(ECS, listener.url)
    api.send(deviceIds=[mdn(1)], smsMessage="hi")
    attempts = wait_attempts(emu, 8)
    assert [(a["attempt"], a["status"], a["error"]) for a in attempts] == [(n, 500, None) for n in (1, 2, 3, 4)] * 2
    assert {a["service"] for a in attempts} == {ECS}
    assert [a["body"].get("callbackCount") for a in attempts[:4]] == [1, 2, 3, 4]


def test_connection_errors_are_attempts(emu, api):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    api.register(ECS, f"http://127.0.0.1:{closed_port}/")
    api.send(deviceIds=[mdn(1)], smsMessage="hi")
    attempts = wait_attempts(emu, 8)
    assert [a["attempt"] for a in attempts[:4]] == [1, 2, 3, 4]
    assert all(a["status"] is None and "Connection" in a["error"] for a in attempts)


def test_retry_delays_from_the_config(emu, api):
    """POST /_emulator/config callbackRetryDelays: the attempts of a callback are that far apart."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert emu.admin.config(callbackRetryDelays=[0.3, 0.6, 0.9])["callbackRetryDelays"] == [0.3, 0.6, 0.9]
    api.register(ECS, f"http://127.0.0.1:{closed_port}/")
    api.send(deviceIds=[mdn(1)], smsMessage="hi")
    attempts = wait_attempts(emu, 4)[:4]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    times = [datetime.fromisoformat(a["time"]) for a in attempts]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:])]
    # The timer never fires early; a refused connection takes milliseconds.
    assert all(delay - 0.002 <= gap < delay + 0.25 for delay, gap in zip([0.3, 0.6, 0.9], gaps)), gaps


# ---- mobile-originated SMS ----------------------------------------------------------------------


def test_mo_sms_goes_to_the_listener(emu, api, listener):
    api.register(ECS, listener.url, **CREDENTIALS)
    assert emu.admin.inject_mo(ACCOUNT, "mdn", "5550100001", "status ok") == {"delivered": True, "queued": False}
    [item] = listener.wait_count(1)
    body = item.body
    assert set(body) == {"username", "password", "requestId", "deviceIds", "deviceResponse", "callbackCount", "maxCallbackThreshold"}
    assert body["deviceResponse"]["smsResponse"]["message"] == "status ok"
    assert [d["kind"] for d in body["deviceIds"]] == ["Iccid", "Imei", "Mdn", "Msisdn", "Imsi"]
    assert (body["username"], body["callbackCount"], body["maxCallbackThreshold"]) == ("cb-user", 1, 4)
    assert api.call("GET", f"/sms/{ACCOUNT}/history").json() == {"messages": [], "hasMoreData": False}


def test_mo_sms_queued_without_listener_or_when_it_fails(emu, api, listener):
    assert emu.admin.inject_mo(ACCOUNT, "mdn", "5550100001", "first") == {"delivered": False, "queued": True}
    listener.fail_next(4)
    api.register(ECS, listener.url)
    assert emu.admin.inject_mo(ACCOUNT, "iccid", "89148000000000000027", "second") == {"delivered": False, "queued": True}
    assert len(listener.received) == 4
    history = api.call("GET", f"/sms/{ACCOUNT}/history").json()
    assert [m["message"] for m in history["messages"]] == ["first", "second"]


def test_start_callbacks_flushes_the_queue(emu, api, listener):
    for n in range(3):
        emu.admin.inject_mo(ACCOUNT, "mdn", "5550100001", f"queued {n}")
    response = api.call("PUT", f"/sms/{ACCOUNT}/startCallbacks")
    assert (response.status_code, response.json()) == (200, {"success": True})
    api.register(ECS, listener.url)
    listener.fail_next(4)
    assert api.call("PUT", f"/sms/{ACCOUNT}/startCallbacks").json() == {"success": True}
    received = listener.wait_count(6)
    assert [item.body["deviceResponse"]["smsResponse"]["message"] for item in received[4:]] == ["queued 1", "queued 2"]
    wait_until(lambda: len(emu.admin.state()["queues"][ACCOUNT]) == 1)
    history = api.call("GET", f"/sms/{ACCOUNT}/history").json()
    assert [m["message"] for m in history["messages"]] == ["queued 0"]


def test_start_callbacks_unknown_account(api):
    assert error_code(api.call("PUT", "/sms/9999999999-00001/startCallbacks")) == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"


def test_mo_inject_refuses_unknown_device(emu):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        emu.admin.inject_mo(ACCOUNT, "mdn", "5559999999", "hi")


def test_callbacks_do_not_block_the_api(api):
    """Sends answer while their listener holds every callback unanswered: well within the emulator's
    callback timeout, after which a blocking fan-out would let the API answer too."""
    with CallbackListener() as held:
        api.register(ECS, held.url)
        held.hold()
        for _attempt in range(5):
            response = api.call("POST", "/sms", {"groupName": "east-wave", "smsMessage": "hi"}, timeout=HTTP_TIMEOUT / 2)
            assert response.status_code == 200
        assert api.call("GET", f"/callbacks/{ACCOUNT}", timeout=HTTP_TIMEOUT / 2).status_code == 200
        assert held.received == []
        held.release()
        held.wait_count(5 * 13)
