"""The unit fake refuses what the vendor refuses where the collection depends on it, so a client bug fails a unit test."""

from __future__ import annotations

from unittest.mock import ANY

import pytest
import requests

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

from fake_api import ACCOUNT, API, CREDENTIALS, FakeThingSpace

M2M = API + "/api/m2m/v1"
DEVICE = {"kind": "mdn", "id": "5551234567"}
GRANT = {"grant_type": "client_credentials"}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client Authentication failed."}


@pytest.fixture
def http(fake):
    """A requests.Session to the fake; ``http.login()`` gets both tokens and puts them into its headers."""
    session = requests.Session()

    def login():
        token = session.post(API + "/api/ts/v1/oauth2/token", data=GRANT, auth=(CREDENTIALS["client_id"], CREDENTIALS["client_secret"])).json()["access_token"]
        session.headers["Authorization"] = "Bearer " + token
        answer = session.post(M2M + "/session/login", json={"username": CREDENTIALS["username"], "password": CREDENTIALS["password"]})
        session.headers["VZ-M2M-Token"] = answer.json()["sessionToken"]

    session.login = login
    return session


def refusal(response):
    return response.status_code, response.json().get("errorCode")


@pytest.mark.parametrize(
    ("auth", "form", "status", "body"),
    [
        (None, GRANT, 401, {"fault": {"code": "900902", "message": "Missing Credentials"}}),
        (("cid", "wrong"), GRANT, 401, INVALID_CLIENT),
        (("other", "csecret"), GRANT, 401, INVALID_CLIENT),
        (("cid", "csecret"), {"grant_type": "password"}, 400, {"error": "unsupported_grant_type", "error_description": ANY}),
    ],
)
def test_oauth_checks_the_client_credentials(http, auth, form, status, body):
    answer = http.post(API + "/api/ts/v1/oauth2/token", data=form, auth=auth)
    assert (answer.status_code, answer.json()) == (status, body)


def test_login_needs_a_bearer_token_and_the_password(http, fake):
    login = {"username": "user", "password": "pass"}
    assert http.post(M2M + "/session/login", json=login).json()["fault"]["code"] == "900902"
    http.headers["Authorization"] = "Bearer not-issued"
    assert http.post(M2M + "/session/login", json=login).json()["fault"]["code"] == "900901"
    fake.access_tokens.add("issued")
    http.headers["Authorization"] = "Bearer issued"
    assert refusal(http.post(M2M + "/session/login", json=dict(login, password="other"))) == (400, "REQUEST_FAILED.UnexpectedError")
    assert http.post(M2M + "/session/login", json=login).json()["sessionToken"] in fake.sessions


def test_m2m_calls_need_a_session(http):
    http.login()
    del http.headers["VZ-M2M-Token"]
    assert refusal(http.put(M2M + "/sms/%s/startCallbacks" % ACCOUNT)) == (400, "INPUT_INVALID.SessionToken.Invalid")
    http.headers["VZ-M2M-Token"] = "00000000-0000-0000-0000-000000000000"
    assert refusal(http.put(M2M + "/sms/%s/startCallbacks" % ACCOUNT)) == (400, "REQUEST_FAILED.SessionToken.Expired")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"deviceIds": [DEVICE]}, "INPUT_INVALID.SmsMessage.Null"),
        ({"smsMessage": "", "deviceIds": [DEVICE]}, "INPUT_INVALID.SmsMessage.Null"),
        ({"smsMessage": "hi", "deviceIds": [DEVICE], "dataEncoding": "16-bit"}, "INPUT_INVALID.DataEncoding.Invalid"),
        ({"smsMessage": "hi"}, "INPUT_INVALID.DeviceIds.Null"),
        ({"smsMessage": "hi", "deviceIds": []}, "INPUT_INVALID.DeviceIds.Null"),
        ({"smsMessage": "hi", "deviceIds": [DEVICE], "groupName": "west"}, "INPUT_INVALID.DeviceIds.Conflict"),
        ({"smsMessage": "hi", "deviceIds": [DEVICE] * 10001}, "INPUT_INVALID.MaxRequestsExceeded"),
        ({"smsMessage": "hi", "deviceIds": [{"kind": "phone", "id": "5551234567"}]}, "INPUT_INVALID.Device.Kind.Invalid"),
        ({"smsMessage": "hi", "deviceIds": [{"kind": "mdn", "id": "5551234567", "x": 1}]}, "INPUT_INVALID.Body.Invalid"),
        ({"smsMessage": "hi", "deviceIds": [DEVICE], "message": "typo"}, "INPUT_INVALID.Body.Invalid"),
        ({"smsMessage": "hi", "customFields": [{"key": "Region", "value": "x"}]}, "INPUT_INVALID.CustomField.InvalidName"),
        ({"smsMessage": "hi", "groupName": "north"}, "REQUEST_FAILED.DeviceGroupNotFound"),
        ({"smsMessage": "hi", "deviceIds": [DEVICE], "accountName": "0000999999-00001"}, "UnifiedWebService.REQUEST_FAILED.AccountNotFound"),
    ],
)
def test_send_is_validated(http, body, code):
    http.login()
    assert refusal(http.post(M2M + "/sms", json=body)) == (400, code)


def test_send_takes_10000_devices(http):
    http.login()
    answer = http.post(M2M + "/sms", json={"smsMessage": "hi", "deviceIds": [DEVICE] * 10000, "accountName": ACCOUNT, "dataEncoding": "8-bit-UTF-8"})
    assert answer.status_code == 200 and answer.json()["requestId"]


def test_history_is_drained_and_each_next_token_works_once(http, fake):
    fake.queue = [{"deviceIds": [DEVICE], "message": "m%d" % n} for n in range(150)]
    http.login()
    first = http.get(M2M + "/sms/%s/history" % ACCOUNT)
    assert first.status_code == 202 and len(first.json()["messages"]) == 100
    again = http.get(M2M + "/sms/%s/history" % ACCOUNT)
    assert again.json()["messages"] == first.json()["messages"] and again.headers["Location"] != first.headers["Location"]
    follow = http.get(API + first.headers["Location"].replace("/sms/", "/api/m2m/v1/sms/", 1))
    assert follow.status_code == 200 and [m["message"] for m in follow.json()["messages"]] == ["m%d" % n for n in range(100, 150)]
    assert fake.queue == []
    assert refusal(http.get(API + first.headers["Location"].replace("/sms/", "/api/m2m/v1/sms/", 1))) == (400, "INPUT_INVALID.HistoryToken.Invalid")
    assert http.get(M2M + "/sms/%s/history" % ACCOUNT).json() == {"messages": [], "hasMoreData": False}


def test_deleting_an_unknown_listener_is_refused_as_the_vendor_does(fake):
    client = ThingSpaceClient(API, Credentials("cid", "csecret", "user", "pass", None, None), retries=0)
    with pytest.raises(ThingSpaceError) as caught:
        client.delete_callback(ACCOUNT, "SMSDeliveryConfirmation")
    assert (caught.value.status, caught.value.error_code) == (400, "REQUEST_FAILED.CallbackNotRegistered")


@pytest.mark.parametrize(
    ("registration", "code"),
    [
        ({"name": "SmsThings", "url": "https://l.example:9001/x"}, "INPUT_INVALID.ServiceName.Invalid"),
        ({"name": "DeviceUsage", "url": "ftp://l.example/x"}, "INPUT_INVALID.Url.Invalid"),
        ({"name": "DeviceUsage", "url": "https://l.example:8443/x"}, "INPUT_INVALID.Url.PortNotAllowed"),
    ],
)
def test_listener_registration_is_validated(http, fake, registration, code):
    http.login()
    assert refusal(http.post(M2M + "/callbacks/%s" % ACCOUNT, json=registration)) == (400, code)
    assert fake.listeners == {}


def test_device_list_pages_after_the_largest_device_id_seen(http):
    http.login()
    assert refusal(http.post(M2M + "/devices/actions/list", json={})) == (400, "INPUT_INVALID.Account.NotDefined")
    for cursor in ("1003", -1, True):
        answer = http.post(M2M + "/devices/actions/list", json={"accountName": ACCOUNT, "largestDeviceIdSeen": cursor})
        assert refusal(answer) == (400, "INPUT_INVALID.Body.Invalid")
    answer = http.post(M2M + "/devices/actions/list", json={"accountName": ACCOUNT, "largestDeviceIdSeen": 1005})
    assert answer.status_code == 200 and [d["extendedAttributes"][0]["value"] for d in answer.json()["devices"]] == ["1006", "1007"]
    answer = http.post(M2M + "/devices/actions/list", json={"accountName": ACCOUNT, "lastSeenDeviceId": "3"})  # unknown: page 1
    assert answer.status_code == 202 and answer.json()["devices"][0]["extendedAttributes"][0]["value"] == "1001"


def test_an_unused_scripted_answer_fails_the_test():
    api = FakeThingSpace()
    api.script("POST", r"/sms$", (503, None), (200, {"requestId": "r"}))
    with pytest.raises(pytest.fail.Exception, match=r"scripted answers never used: \[\('POST', '/sms\$', \[\(503, None\), \(200"):
        api.check_scripts_used()
    api.scripted[0][2].clear()
    api.check_scripts_used()
