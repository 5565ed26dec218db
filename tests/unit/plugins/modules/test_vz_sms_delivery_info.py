"""vz_sms_delivery_info and the delivery wait of vz_sms_send, against the fake API with callbacks recorded in the
ledger as the event source records them."""

from __future__ import annotations

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_delivery_info, vz_sms_send

from callback_bodies import LISTENER
from fake_api import ACCOUNT, API, CREDENTIALS

DEVICES = [{"kind": "mdn", "id": "555000%04d" % n} for n in range(1, 4)]
KEY = "wave-delivery"
SEND = dict(account_name=ACCOUNT, devices=DEVICES, sms_message="hello", idempotency_key=KEY)
# The report takes no credentials (run_module gives the fake's by default).
NO_CREDENTIALS = dict.fromkeys([*CREDENTIALS, "retries"])


@pytest.fixture(params=["module", "controller"])
def run_send(request, run_module, run_in_controller):
    """vz_sms_send as a module, or in the controller as its action plugin runs it."""
    return run_module if request.param == "module" else run_in_controller


def sms_posts(fake):
    return [call for call in fake.calls if call[:2] == ("POST", "/api/m2m/v1/sms")]


def callbacks_arrive(state_dir, request_id, states):
    """Record, as the callbacks source would, a "sent" and a delivery confirmation for each of DEVICES given a state."""
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    events = []
    for device, state in zip(DEVICES, states):
        ids = [{"kind": "Mdn", "id": device["id"]}, {"kind": "Iccid", "id": "8914800000%s" % device["id"]}]
        sent = dict(LISTENER, requestId=request_id, deviceIds=ids, status="Success", comment="SendSmsMessage,Performed action on device.")
        events.append(callback_event(SMS_SERVICE, ACCOUNT, sent))
        if state:
            confirmation = dict(LISTENER, requestId=request_id, deviceIds=ids[:1], deviceResponse={"smsDeliveryResponse": {"confirmation": state}})
            events.append(callback_event(DELIVERY_SERVICE, ACCOUNT, confirmation))
    recorder.record(events)
    recorder.close()


def sent_wave(fake, run_module, state_dir, states):
    result, failed = run_module(vz_sms_send.main, **SEND)
    assert not failed
    callbacks_arrive(state_dir, result["request_ids"][0], states)
    return result["request_ids"][0]


def test_the_report_counts_and_lists_the_devices_per_state(fake, run_module, state_dir):
    request_id = sent_wave(fake, run_module, state_dir, ["Delivered", "Undelivered", None])
    calls = len(fake.calls)
    for check_mode in (False, True):
        result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, check_mode=check_mode, api_url=API, idempotency_key=KEY)
        assert not failed and not result["changed"]
        assert result["states"] == {"Delivered": 1, "Undelivered": 1, "Expired": 0, "Rejected": 0, "sent": 1, "accepted": 0, "unconfirmed": 0}
        assert result["devices"]["Delivered"] == [DEVICES[0]] and result["devices"]["sent"] == [DEVICES[2]]
        assert result["msg"] == "3 device(s): 1 Delivered, 1 Undelivered, 1 sent" and result["total"] == 3
        assert result["requests"] == [{"request_id": request_id, "devices_requested": None}]
    assert len(fake.calls) == calls  # no request to ThingSpace

    by_request = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=[request_id])[0]
    assert by_request["devices"]["Undelivered"] == [DEVICES[1]] and by_request["total"] == 3
    some = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, devices=[{"kind": "MDN", "id": "5550000002"}])[0]
    assert some["states"]["Undelivered"] == 1 and some["total"] == 1
    # Another service's key of the same name is another send.
    assert run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url="https://thingspace.verizon.com", idempotency_key=KEY)[0]["total"] == 0


def test_wrong_options_fail_before_reading_the_ledger(run_module, state_dir):
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API)
    assert failed and result["msg"] == "one of the following is required: idempotency_key, request_ids"
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, devices=[{"kind": "mdn", "id": "12"}])
    assert failed and "devices[0]" in result["msg"]
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=["r"], ledger_url="mysql://db/x")
    assert failed and "is not a PostgreSQL URL" in result["msg"]
    assert not state_dir.exists()


def test_the_wait_returns_when_enough_devices_are_delivered_and_never_sends_again(fake, run_module, run_send, state_dir):
    sent_wave(fake, run_module, state_dir, ["Delivered", "Delivered", "Undelivered"])
    result, failed = run_send(vz_sms_send.main, wait="delivered", min_delivered="60%", **SEND)
    assert not failed and not result["changed"] and len(sms_posts(fake)) == 1
    assert result["delivery"]["states"]["Delivered"] == 2
    assert result["devices_undelivered"] == [dict(DEVICES[2], state="Undelivered")]
    assert result["msg"].endswith("; 2 of 3 device(s) Delivered")


def test_the_wait_fails_with_the_undelivered_devices_listed(fake, run_module, run_send, state_dir):
    sent_wave(fake, run_module, state_dir, ["Delivered", "Undelivered", None])
    # 100 % cannot be reached once a device is Undelivered: no need to wait for the timeout.
    result, failed = run_send(vz_sms_send.main, wait="delivered", wait_timeout=3600, **SEND)
    assert failed and result["msg"].startswith("Delivery wait: 1 of 3 device(s) Delivered, 3 needed (min_delivered 100%), and only 1 more await")
    assert result["devices_undelivered"] == [dict(DEVICES[1], state="Undelivered"), dict(DEVICES[2], state="sent")]
    # 2 can still be reached while a device waits: the wait runs to its timeout.
    result, failed = run_send(vz_sms_send.main, wait="delivered", min_delivered="2", wait_timeout=0, **SEND)
    assert failed and result["msg"].startswith("Delivery wait timed out after 0 s: 1 of 3 device(s) Delivered, 2 needed (min_delivered 2)")
    assert len(sms_posts(fake)) == 1


def test_check_mode_sends_nothing_and_waits_for_nothing(fake, run_send, state_dir):
    result, failed = run_send(vz_sms_send.main, check_mode=True, wait="delivered", wait_timeout=3600, **SEND)
    assert not failed and result["changed"] and result["msg"].endswith("; would wait for delivery")
    # Check mode reads the account's device list (to check the devices against it), nothing else.
    assert "delivery" not in result and {path for _method, path, _body in fake.calls} <= {
        "/api/ts/v1/oauth2/token", "/api/m2m/v1/session/login", "/api/m2m/v1/devices/actions/list"}


def test_a_wrong_wait_option_fails_before_any_request(fake, run_send):
    for options, message in (({"min_delivered": "0"}, "min_delivered: '0' is neither a count"), ({"wait_timeout": -1}, "wait_timeout must be 0 or more")):
        result, failed = run_send(vz_sms_send.main, wait="delivered", **dict(SEND, **options))
        assert failed and result["msg"].startswith(message)
    assert fake.calls == []
