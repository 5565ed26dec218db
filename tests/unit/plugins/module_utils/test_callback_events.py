"""Callback bodies to events: the vendor's shapes, normalization, the identity that finds repeats, the recorder."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import (
    DELIVERY_SERVICE,
    DELIVERY_STATES,
    EVENT_KEYS,
    SMS_SERVICE,
    CallbackError,
    CallbackRecorder,
    MemoryRecorder,
    callback_event,
    device_host,
    history_event,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.models import MoMessage

from callback_bodies import ACCOUNT, ICCID, MDN, MEID, REQUEST_ID, SEED, delivery, device_sms, request_complete, sms_sent, without

AT = datetime(2026, 12, 1, 14, 30, tzinfo=timezone.utc)


def _event(service, body, account=ACCOUNT):
    return callback_event(service, account, without(body, "username", "password"), received_at=AT)


@pytest.mark.parametrize("name", sorted(SEED))
def test_every_example_of_the_vendor_is_an_event_of_its_service(name):
    service = DELIVERY_SERVICE if name.startswith("sms_delivery") else SMS_SERVICE
    event = _event(service, SEED[name])
    _kind, _sep, state = name.partition("_delivery_")
    assert (event["type"], event["state"]) == (("sms_delivery", state) if state else (name, None))
    assert set(event) == set(EVENT_KEYS)
    assert (event["service"], event["via"], event["account"], event["request_id"]) == (service, "callback", ACCOUNT, REQUEST_ID)
    assert event["received_at"] == "2026-12-01T14:30:00.000+00:00"


def test_the_fields_of_each_type():
    sent = _event(SMS_SERVICE, sms_sent())
    assert sent["devices"] == [{"kind": "iccid", "id": ICCID}, {"kind": "imei", "id": "351234560000013"}, {"kind": "mdn", "id": MDN},
                               {"kind": "msisdn", "id": "15550100001"}, {"kind": "meid", "id": MEID.upper()}]
    assert (sent["status"], sent["comment"], sent["state"], sent["message"]) == ("Success", "SendSmsMessage,Performed action on device.", None, None)
    complete = _event(SMS_SERVICE, request_complete(devices=12))
    assert (complete["devices_requested"], complete["devices"], complete["comment"]) == (12, None, "SendSmsMessage,Request Completed Processing.")
    for state in DELIVERY_STATES:
        confirmation = _event(DELIVERY_SERVICE, delivery(state))
        assert (confirmation["type"], confirmation["state"], confirmation["devices"]) == ("sms_delivery", state, [{"kind": "mdn", "id": MDN}])
    sms = _event(SMS_SERVICE, device_sms("Hello, YES"))
    assert (sms["type"], sms["message"], sms["sent_at"]) == ("device_sms", "Hello, YES", "2026-12-01T09:30:00-05:00")
    assert sms["request_id"] == "4b0d0f3e-0000-4000-8000-000000000001"


@pytest.mark.parametrize("service, body, problem", [
    ("DeviceUsage", delivery(), "not a callback service this source takes"),
    (SMS_SERVICE, delivery(), "shape of no EnhancedConnectivityService callback"),
    (DELIVERY_SERVICE, sms_sent(), "shape of no SMSDeliveryConfirmation callback"),
    (DELIVERY_SERVICE, delivery("Pending"), "deviceResponse.smsDeliveryResponse.confirmation"),
    (DELIVERY_SERVICE, without(delivery(), "requestId"), "requestId: Field required"),
    (DELIVERY_SERVICE, dict(delivery(), requestId=""), "requestId: String should have at least 1 character"),
    (DELIVERY_SERVICE, dict(delivery(), deviceIds=[]), "deviceIds: List should have at least 1 item"),
    (DELIVERY_SERVICE, dict(delivery(), deviceIds=[{"kind": "Mdn"}]), "deviceIds.0.id: Field required"),
    (SMS_SERVICE, dict(request_complete(), summary={"devicesRequested": "many"}), "summary.devicesRequested"),
    (SMS_SERVICE, dict(request_complete(), summary={"devicesRequested": -1}), "summary.devicesRequested"),
    (SMS_SERVICE, {"requestId": REQUEST_ID}, "shape of no EnhancedConnectivityService callback"),
    (SMS_SERVICE, dict(device_sms(), deviceResponse={"smsResponse": {"message": "x"}}), "deviceResponse.smsResponse.timestamp"),
    (SMS_SERVICE, dict(sms_sent(), requestId=12345), "requestId: Input should be a valid string"),
    (SMS_SERVICE, [sms_sent()], "not a JSON object"),
])
def test_what_is_not_a_callback_is_refused_without_quoting_the_body(service, body, problem):
    body = without(body, "username", "password") if isinstance(body, dict) else body
    with pytest.raises(CallbackError, match="^.*%s" % problem.replace(".", r"\.")) as caught:
        callback_event(service, ACCOUNT, body)
    assert "Pending" not in str(caught.value) and "many" not in str(caught.value) and "12345" not in str(caught.value)


def test_a_repeat_has_the_same_identity_and_another_outcome_another():
    first = _event(SMS_SERVICE, sms_sent(count=1))
    assert _event(SMS_SERVICE, sms_sent(count=4))["event_id"] == first["event_id"]
    reordered = sms_sent()
    reordered["deviceIds"].reverse()
    assert _event(SMS_SERVICE, reordered)["event_id"] == first["event_id"]
    assert _event(SMS_SERVICE, sms_sent(status="Failed"))["event_id"] != first["event_id"]
    assert _event(SMS_SERVICE, dict(sms_sent(), requestId="another"))["event_id"] != first["event_id"]
    delivered = _event(DELIVERY_SERVICE, delivery("Delivered"))
    assert _event(DELIVERY_SERVICE, delivery("Delivered"))["event_id"] == delivered["event_id"]
    assert _event(DELIVERY_SERVICE, delivery("Expired"))["event_id"] != delivered["event_id"]
    assert _event(DELIVERY_SERVICE, delivery(mdn="5550100003"))["event_id"] != delivered["event_id"]


def test_the_same_request_completes_once_per_account():
    complete = _event(SMS_SERVICE, request_complete())
    assert _event(SMS_SERVICE, request_complete())["event_id"] == complete["event_id"]
    assert _event(SMS_SERVICE, request_complete(), account="0000123456-00002")["event_id"] != complete["event_id"]


def test_a_device_sms_is_the_same_from_a_callback_resent_with_a_new_request_id_and_from_the_history():
    sms = _event(SMS_SERVICE, device_sms("YES"))
    assert _event(SMS_SERVICE, device_sms("YES", request_id="another", count=2))["event_id"] == sms["event_id"]
    queued = MoMessage.model_validate({"deviceIds": [{"kind": "mdn", "id": MDN}, {"kind": "iccid", "id": ICCID}], "message": "YES",
                                       "timestamp": "2026-12-01T09:30:00-05:00"})
    read = history_event(ACCOUNT, queued, received_at=AT)
    assert read["event_id"] == sms["event_id"]
    assert (read["via"], read["service"], read["request_id"], read["type"]) == ("history", None, None, "device_sms")
    assert _event(SMS_SERVICE, device_sms("YES", timestamp="2026-12-01T09:31:00-05:00"))["event_id"] != sms["event_id"]
    assert _event(SMS_SERVICE, device_sms("NO"))["event_id"] != sms["event_id"]


def test_the_host_of_an_event_is_its_identifier_of_the_first_kind_it_has():
    sent = _event(SMS_SERVICE, sms_sent())
    assert device_host(sent, ["imsi", "mdn", "iccid"]) == MDN
    assert device_host(sent, ["iccid"]) == ICCID
    assert device_host(_event(DELIVERY_SERVICE, delivery()), ["iccid", "mdn"]) == MDN
    assert device_host(_event(DELIVERY_SERVICE, delivery()), ["iccid"]) is None
    assert device_host(_event(SMS_SERVICE, request_complete()), ["mdn"]) is None
    assert device_host(sent, []) is None


def test_the_memory_recorder_finds_repeats_within_its_window():
    recorder = MemoryRecorder(window=2)
    assert isinstance(recorder, CallbackRecorder)
    a, b, c = ({"event_id": name} for name in "abc")
    assert recorder.record([a, b]) == [True, True]
    assert recorder.record([a]) == [False]
    assert recorder.record([c]) == [True]  # a falls out of the window
    assert recorder.record([b, c, a]) == [False, False, True]
    assert recorder.record([c, c], queued=["c"]) == [False, False]
    assert MemoryRecorder(window=5).record([a, b, a]) == [True, True, False]
    with pytest.raises(ValueError, match="1 or more"):
        MemoryRecorder(window=0)
