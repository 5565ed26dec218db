"""Callback bodies for the unit tests of the event sources: the vendor's examples (POST /sms page), and bodies with
real identifiers such as the demo fleet's devices get."""

from __future__ import annotations

import copy

ACCOUNT = "0000123456-00001"
REQUEST_ID = "d1f08526-5443-4054-9a29-4456490ea9f8"
LISTENER = {"username": "listener", "password": "listener-pw-7f3a"}
ICCID, MDN, IMEI, MSISDN, MEID = "89148000000000000019", "5550100001", "351234560000013", "15550100001", "a0000012345678"

# The seed's examples as its page shows them, placeholders kept.
SEED = {
    "sms_sent": {
        "username": "user's login (callback registration)", "password": "user's password", "requestId": REQUEST_ID,
        "deviceIds": [{"id": "20-digit ICCID", "kind": "Iccid"}, {"id": "10-digit phone number", "kind": "Mdn"},
                      {"id": "15-digit IMEI", "kind": "Imei"}, {"id": "1+ 10-digit phone number (can be up to 15 digits)", "kind": "Msisdn"}],
        "comment": "SendSmsMessage,Performed action on device.", "status": "Success", "callbackCount": 1, "maxCallbackThreshold": 4,
    },
    "request_complete": {
        "username": "user's login (callback registration)", "password": "user's password", "requestId": REQUEST_ID,
        "comment": "SendSmsMessage,Request Completed Processing.", "summary": {"devicesRequested": 2},
    },
    **{
        "sms_delivery_" + state: {
            "username": "user's login (callback registration)", "password": "user's password", "requestId": REQUEST_ID,
            "deviceIds": [{"id": "10-digit phone number", "kind": "Mdn"}], "deviceResponse": {"smsDeliveryResponse": {"confirmation": state}},
        }
        for state in ("Delivered", "Undelivered", "Expired", "Rejected")
    },
}


def sms_sent(status="Success", count=1, **credentials):
    return dict(credentials or LISTENER, requestId=REQUEST_ID, comment="SendSmsMessage,Performed action on device.", status=status,
                deviceIds=[{"kind": "Iccid", "id": ICCID}, {"kind": "Imei", "id": IMEI}, {"kind": "Mdn", "id": MDN},
                           {"kind": "Msisdn", "id": MSISDN}, {"kind": "Meid", "id": MEID}],
                callbackCount=count, maxCallbackThreshold=4)


def request_complete(devices=12, **credentials):
    return dict(credentials or LISTENER, requestId=REQUEST_ID, comment="SendSmsMessage,Request Completed Processing.",
                summary={"devicesRequested": devices})


def delivery(state="Delivered", mdn=MDN, **credentials):
    return dict(credentials or LISTENER, requestId=REQUEST_ID, deviceIds=[{"kind": "Mdn", "id": mdn}],
                deviceResponse={"smsDeliveryResponse": {"confirmation": state}})


def device_sms(message="YES", timestamp="2026-12-01T09:30:00-05:00", request_id="4b0d0f3e-0000-4000-8000-000000000001", count=1, **credentials):
    return dict(credentials or LISTENER, requestId=request_id, deviceIds=[{"kind": "Iccid", "id": ICCID}, {"kind": "Mdn", "id": MDN}],
                deviceResponse={"smsResponse": {"message": message, "timestamp": timestamp}}, callbackCount=count, maxCallbackThreshold=4)


def without(body, *names):
    body = copy.deepcopy(body)
    for name in names:
        body.pop(name, None)
    return body
