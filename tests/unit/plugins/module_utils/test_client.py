"""Client: auth flows, token cache, retry rules (reads vs writes), error mapping, paging."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import requests
from urllib3.exceptions import NewConnectionError, ProtocolError

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials, TokenCache
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.models import DeviceListRequest, SendSmsRequest

from fake_api import ACCOUNT, API

CREDS = Credentials("cid", "csecret", "user", "pass", None, None)
SMS = SendSmsRequest(sms_message="hi", device_ids=[{"kind": "mdn", "id": "5551234567"}])
LOGIN, TOKEN, SEND = r"/session/login$", r"/oauth2/token$", r"/api/m2m/v1/sms$"


def make(cache=None, creds=CREDS, retries=3):
    sleeps = []
    client = ThingSpaceClient(API, creds, token_cache=cache, retries=retries, sleep=sleeps.append)
    return client, sleeps


def refused():
    return requests.exceptions.ConnectionError(requests.packages.urllib3.exceptions.MaxRetryError(None, "/", NewConnectionError(None, "refused")))


def dropped():
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))


def test_logs_in_once_and_sends_both_tokens(fake):
    client = make()[0]
    assert client.send_sms(SMS)
    assert client.send_sms(SMS)
    assert fake.count("POST", TOKEN) == 1 and fake.count("POST", LOGIN) == 1
    method, path, body = fake.calls[-1]
    assert (method, path) == ("POST", "/api/m2m/v1/sms")
    assert body == {"smsMessage": "hi", "deviceIds": [{"kind": "mdn", "id": "5551234567"}]}


def test_token_cache_shares_tokens_between_clients_and_is_private(fake, tmp_path):
    cache = TokenCache(str(tmp_path / "state" / "tokens.json"))
    for _attempt in range(3):
        client = make(cache)[0]
        client.start_callbacks(ACCOUNT)
    assert fake.count("POST", TOKEN) == 1 and fake.count("POST", LOGIN) == 1
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert "pass" not in Path(cache.path).read_text()


def test_expired_session_logs_in_again_once_and_repeats(fake):
    client = make()[0]
    client.start_callbacks(ACCOUNT)
    fake.sessions.clear()
    assert client.send_sms(SMS)
    assert fake.count("POST", LOGIN) == 2 and fake.count("POST", SEND) == 2


def test_session_still_rejected_after_relogin_fails(fake):
    client = make()[0]
    fake.script("POST", SEND, *[(400, {"errorCode": "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"})] * 2)
    with pytest.raises(ThingSpaceError) as caught:
        client.send_sms(SMS)
    assert caught.value.code_is("REQUEST_FAILED.SessionToken.Expired") and not caught.value.ambiguous
    assert fake.count("POST", LOGIN) == 2 and fake.count("POST", SEND) == 2


def test_expired_bearer_is_renewed_once(fake):
    client = make()[0]
    client.start_callbacks(ACCOUNT)
    fake.access_tokens.clear()
    assert client.start_callbacks(ACCOUNT)
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 1


def test_both_stale_tokens_are_renewed_once_each(fake):
    client = make()[0]
    client.start_callbacks(ACCOUNT)
    fake.access_tokens.clear()
    fake.sessions.clear()
    assert client.start_callbacks(ACCOUNT)
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 2 and fake.count("PUT", "startCallbacks") == 4


def test_failed_login_is_never_retried(fake):
    fake.passwords["user"] = "other"
    client, sleeps = make()
    with pytest.raises(ThingSpaceError) as caught:
        client.start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 1 and sleeps == []
    assert "not retried, because five consecutive failed logins lock the account" in caught.value.message
    assert caught.value.status == 400 and caught.value.error_code == "REQUEST_FAILED.UnexpectedError"


def test_a_refused_password_is_not_tried_again_by_later_tasks(fake, tmp_path):
    cache = TokenCache(str(tmp_path / "tokens.json"))
    fake.passwords["user"] = "other"
    for _task in range(5):
        with pytest.raises(ThingSpaceError) as caught:
            make(cache)[0].start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 1
    assert "ThingSpace refused this password" in caught.value.message and "five consecutive failed logins" in caught.value.message
    assert "pass" not in Path(cache.path).read_text()
    client = make(cache, creds=CREDS._replace(password="other"))[0]
    assert client.start_callbacks(ACCOUNT)  # a corrected password logs in at once
    assert fake.count("POST", LOGIN) == 2


def test_without_token_cache_each_task_tries_once(fake):
    fake.passwords["user"] = "other"
    for _task in range(2):
        with pytest.raises(ThingSpaceError):
            make()[0].start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 2


def test_wrong_client_secret_names_the_options(fake):
    fake.script("POST", TOKEN, (401, {"error": "invalid_client", "error_description": "Client Authentication failed."}))
    client = make()[0]
    with pytest.raises(ThingSpaceError, match=r"HTTP 401 invalid_client: Client Authentication failed.; check client_id and client_secret"):
        client.start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 0


@pytest.mark.parametrize("answer", [(404, None), (405, None), (400, {"fault": {"code": "900906", "message": "No matching resource found"}}),
                                    (400, {"fault": {"code": 900906, "message": "No matching resource found"}})])
def test_a_token_request_answered_no_such_path_says_check_api_url(fake, answer):
    fake.script("POST", TOKEN, answer)
    with pytest.raises(ThingSpaceError) as caught:
        make()[0].start_callbacks(ACCOUNT)
    assert caught.value.message.startswith("Failed to get an OAuth access token with client_id 'cid': HTTP %d" % answer[0])
    assert caught.value.message.endswith("; check api_url: %s has no /api/ts/v1/oauth2/token" % API)
    assert fake.count("POST", LOGIN) == 0


def test_a_login_answered_no_such_path_says_check_api_url_and_is_not_a_refused_password(fake, tmp_path):
    cache = TokenCache(str(tmp_path / "tokens.json"))
    fake.script("POST", LOGIN, (400, {"fault": {"code": "900906", "message": "No matching resource found"}}))
    with pytest.raises(ThingSpaceError) as caught:
        make(cache)[0].start_callbacks(ACCOUNT)
    assert caught.value.message.endswith("; check api_url: %s has no /api/m2m/v1/session/login" % API)
    assert "five consecutive failed logins" not in caught.value.message
    assert make(cache)[0].start_callbacks(ACCOUNT)  # the password was not remembered as refused
    assert fake.count("POST", LOGIN) == 2


def test_pre_issued_tokens_are_used_without_login(fake):
    fake.access_tokens.add("A")
    fake.sessions.add("S")
    client = make(creds=Credentials(None, None, None, None, "A", "S"))[0]
    assert client.start_callbacks(ACCOUNT)
    assert fake.count("POST", TOKEN) == 0 and fake.count("POST", LOGIN) == 0


def test_expired_pre_issued_session_without_password_says_what_to_set(fake):
    fake.access_tokens.add("A")
    client = make(creds=Credentials(None, None, None, None, "A", "S"))[0]
    with pytest.raises(ThingSpaceError, match="no username/password is set to log in again"):
        client.start_callbacks(ACCOUNT)


def test_reads_retry_5xx_honouring_retry_after(fake):
    client, sleeps = make()
    fake.script("PUT", r"startCallbacks", (503, None, {"Retry-After": "7"}), (502, None), dropped())
    assert client.start_callbacks(ACCOUNT)
    assert fake.count("PUT", "startCallbacks") == 4
    assert sleeps[0] == 7.0 and 0.5 <= sleeps[1] <= 2.0 and 1.0 <= sleeps[2] <= 4.0


def test_reads_give_up_after_retries(fake):
    client, sleeps = make(retries=2)
    fake.script("PUT", r"startCallbacks", *[(504, None)] * 3)
    with pytest.raises(ThingSpaceError, match=r"HTTP 504.*gave up after 3 attempts"):
        client.start_callbacks(ACCOUNT)
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("answer", "low", "high"),
    [
        ((429, None, {"Retry-After": "1"}), 1.0, 1.0),
        ((429, None, {"Retry-After": "0.25"}), 0.25, 0.25),
        ((503, None, {"Retry-After": "2"}), 2.0, 2.0),
        ((429, None), 0.5, 1.0),
        (refused(), 0.5, 1.0),
    ],
)
def test_send_retries_only_what_certainly_was_not_processed(fake, answer, low, high):
    client, sleeps = make()
    fake.script("POST", SEND, answer)
    assert client.send_sms(SMS)
    assert fake.count("POST", SEND) == 2
    [slept] = sleeps
    assert low <= slept <= high  # Retry-After exactly; without it the first backoff step


def test_backoff_doubles_with_jitter_up_to_the_cap(fake):
    client, sleeps = make(retries=8)
    fake.script("PUT", r"startCallbacks", *[(503, None)] * 8)
    assert client.start_callbacks(ACCOUNT)
    steps = [min(30.0, 2.0**attempt) for attempt in range(8)]  # 1, 2, 4, 8, 16, 30, 30, 30
    # Each sleep lies in [step/2, step): a sleep of the full step means no jitter, one of 32 s or more no cap.
    assert all(step / 2 <= slept < step for slept, step in zip(sleeps, steps)), sleeps
    assert len({round(slept / step, 9) for slept, step in zip(sleeps, steps)}) > 1, sleeps  # not one fixed factor


def test_a_retry_after_over_the_cap_is_not_waited_for(fake):
    client, sleeps = make()
    fake.script("POST", SEND, (429, None, {"Retry-After": "301"}))
    with pytest.raises(ThingSpaceError, match=r"Failed to send SMS: HTTP 429.*; the service asked to retry after 301 s, longer than the 300 s "
                                              r"a task waits: re-run later$") as caught:
        client.send_sms(SMS)
    assert not caught.value.ambiguous and sleeps == [] and fake.count("POST", SEND) == 1
    fake.script("POST", SEND, (429, None, {"Retry-After": "300"}))
    assert client.send_sms(SMS) and sleeps == [300.0]


@pytest.mark.parametrize("answer", [(503, None), (502, None), (504, None), dropped(), requests.exceptions.ReadTimeout("slow")])
def test_send_never_repeats_an_ambiguous_failure(fake, answer):
    client, sleeps = make()
    fake.script("POST", SEND, answer)
    with pytest.raises(ThingSpaceError) as caught:
        client.send_sms(SMS)
    assert caught.value.ambiguous
    assert "may have been processed" in caught.value.message
    assert fake.count("POST", SEND) == 1 and sleeps == []


def test_send_rejected_is_not_ambiguous(fake):
    client = make()[0]
    fake.script("POST", SEND, (400, {"errorCode": "REQUEST_FAILED.DeviceNotFound", "errorMessage": "Device not found"}))
    with pytest.raises(ThingSpaceError, match=r"Failed to send SMS: HTTP 400 REQUEST_FAILED.DeviceNotFound: Device not found") as caught:
        client.send_sms(SMS)
    assert not caught.value.ambiguous


def test_send_unreadable_200_is_ambiguous(fake):
    client = make()[0]
    fake.script("POST", SEND, (200, {"unexpected": 1}))
    with pytest.raises(ThingSpaceError, match="Unexpected content in the send SMS answer") as caught:
        client.send_sms(SMS)
    assert caught.value.ambiguous


def test_history_follows_relative_and_absolute_locations(fake):
    fake.queue = [{"deviceIds": [{"kind": "mdn", "id": "5551234567"}], "message": "m%d" % n, "timestamp": "2016-01-01T12:29:49-08:00"}
                  for n in range(150)]
    client = make()[0]
    messages, next_path = client.sms_history(ACCOUNT)
    assert len(messages) == 100 and next_path == "/sms/%s/history?next=100" % ACCOUNT
    messages, next_path = client.sms_history(ACCOUNT, next_path)
    assert [m.message for m in messages] == ["m%d" % n for n in range(100, 150)] and next_path is None
    fake.script("GET", "history", (202, {"messages": [], "hasMoreData": True}, {"Location": "https://elsewhere.example/api/m2m/v1/sms/x/history?next=5"}))
    assert client.sms_history(ACCOUNT) == ([], "/sms/x/history?next=5")


def test_device_list_pages(fake):
    client = make()[0]
    devices = list(client.iter_devices(DeviceListRequest(account_name=ACCOUNT)))
    assert len(devices) == 7 and fake.count("POST", "devices/actions/list") == 3
    assert [call[2].get("largestDeviceIdSeen") for call in fake.calls if "actions/list" in call[1]] == [None, 1003, 1006]


def test_callbacks_list_register_delete(fake):
    client = make()[0]
    assert client.list_callbacks(ACCOUNT) == []
    client.register_callback(ACCOUNT, "SMSDeliveryConfirmation", "https://l.example:9001/x", "u", "p")
    [listener] = client.list_callbacks(ACCOUNT)
    assert (listener.service_name, listener.url, listener.username) == ("SMSDeliveryConfirmation", "https://l.example:9001/x", "u")
    client.delete_callback(ACCOUNT, "SMSDeliveryConfirmation")
    assert client.list_callbacks(ACCOUNT) == []
    assert any(path == "/api/m2m/v1/callbacks/%s/name/SMSDeliveryConfirmation" % ACCOUNT for _method, path, _body in fake.calls)


def test_gateway_fault_is_mapped(fake):
    fake.access_tokens.add("A")
    client = make(creds=Credentials(None, None, "user", "pass", "A", None))[0]
    fake.script("GET", "callbacks", (401, {"fault": {"code": "900902", "message": "Missing Credentials"}}))
    with pytest.raises(ThingSpaceError) as caught:
        client.list_callbacks(ACCOUNT)
    assert (caught.value.status, caught.value.error_code, caught.value.error_message) == (401, "900902", "Missing Credentials")


@pytest.mark.parametrize("code", ["900901", 900901], ids=["string", "number"])
def test_an_access_token_rejected_with_either_form_of_the_gateway_code_is_renewed(fake, code):
    client = make()[0]
    client.start_callbacks(ACCOUNT)
    fake.script("POST", SEND, (401, {"fault": {"code": code, "message": "Invalid Credentials", "description": "Access failure"}}))
    assert client.send_sms(SMS)
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", SEND) == 2


def test_a_numeric_error_code_is_reported():
    from ansible_collections.thingspace.m2m.plugins.module_utils.errors import error_fields

    assert error_fields({"fault": {"code": 900902, "description": "Missing Credentials"}}) == ("900902", "Missing Credentials")


def _page(*ids):
    return {"devices": [{"deviceIds": [{"kind": "mdn", "id": "555000000%d" % n}], "extendedAttributes": [{"key": "DeviceId", "value": str(n)}]}
                        for n in ids], "hasMoreData": True}


@pytest.mark.parametrize(
    "answers, error",
    [
        ([(202, {"devices": [{"deviceIds": [{"kind": "mdn", "id": "5550000001"}]}], "hasMoreData": True})],
         "The device list answer says more data waits but a device has no DeviceId extended attribute to continue from"),
        ([(202, _page(5, 6)), (202, _page(4, 6))], "The device list answer repeats devices already read (DeviceId 6); stopped"),
    ],
    ids=["no-cursor", "cursor-not-advancing"],
)
def test_device_list_paging_stops_on_a_page_it_cannot_continue_from(fake, answers, error):
    fake.script("POST", "devices/actions/list", *answers)
    with pytest.raises(ThingSpaceError) as caught:
        list(make()[0].iter_devices(DeviceListRequest(account_name=ACCOUNT)))
    assert caught.value.message == error and caught.value.status == 202


def test_a_client_built_without_options_validates_certificates_waits_30_s_and_tries_5_times(fake, monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # either would stand in for verify=True
        monkeypatch.delenv(variable, raising=False)
    sleeps = []
    client = ThingSpaceClient(API + "/", CREDS, sleep=sleeps.append)
    fake.script("PUT", r"startCallbacks", *[(503, None)] * 5)
    with pytest.raises(ThingSpaceError, match=r"; gave up after 5 attempts$"):
        client.start_callbacks(ACCOUNT)
    assert len(sleeps) == 4
    assert {(settings["timeout"], settings["verify"]) for _request, settings in fake.sent} == {(30.0, True)}
    # The trailing slash of api_url is not doubled into the paths.
    assert [request.url for request, _settings in fake.sent][:3] == [API + "/api/ts/v1/oauth2/token", API + "/api/m2m/v1/session/login",
                                                                     API + "/api/m2m/v1/sms/%s/startCallbacks" % ACCOUNT]


def test_names_are_one_path_segment_each(fake):
    client = make()[0]
    for call in (lambda: client.start_callbacks("a/b c"), lambda: client.delete_callback(ACCOUNT, "x/../y")):
        with pytest.raises(ThingSpaceError):
            call()
    paths = [request.path_url for request, _settings in fake.sent if request.method in ("PUT", "DELETE")]
    assert paths == ["/api/m2m/v1/sms/a%2Fb%20c/startCallbacks", "/api/m2m/v1/callbacks/%s/name/x%%2F..%%2Fy" % ACCOUNT]


LISTENER = "SMSDeliveryConfirmation"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda client: client.start_callbacks("0000999999-00001"),
         "Failed to start SMS callbacks for account '0000999999-00001': HTTP 400 UnifiedWebService.REQUEST_FAILED.AccountNotFound: "
         "Account 0000999999-00001 was not found."),
        (lambda client: client.list_callbacks("0000999999-00001"),
         "Failed to list callback listeners of account '0000999999-00001': HTTP 400 UnifiedWebService.REQUEST_FAILED.AccountNotFound: "
         "Account 0000999999-00001 was not found."),
        (lambda client: client.register_callback(ACCOUNT, LISTENER, "https://l.example:8080/x"),
         "Failed to register the SMSDeliveryConfirmation listener of account '%s': HTTP 400 INPUT_INVALID.Url.PortNotAllowed: "
         "Port 8080 is not allowed." % ACCOUNT),
        (lambda client: client.delete_callback(ACCOUNT, LISTENER),
         "Failed to deregister the SMSDeliveryConfirmation listener of account '%s': HTTP 400 REQUEST_FAILED.CallbackNotRegistered: "
         "No SMSDeliveryConfirmation listener is registered for account %s." % (ACCOUNT, ACCOUNT)),
        (lambda client: list(client.iter_devices(DeviceListRequest(account_name="0000999999-00001"))),
         "Failed to list devices of account '0000999999-00001': HTTP 400 UnifiedWebService.REQUEST_FAILED.AccountNotFound: "
         "Account 0000999999-00001 was not found."),
        (lambda client: client.sms_history("0000999999-00001"),
         "Failed to read SMS history of account '0000999999-00001': HTTP 400 UnifiedWebService.REQUEST_FAILED.AccountNotFound: "
         "Account 0000999999-00001 was not found."),
    ],
    ids=["start-callbacks", "list-callbacks", "register-callback", "delete-callback", "list-devices", "sms-history"],
)
def test_a_refused_call_says_what_failed(fake, call, message):
    with pytest.raises(ThingSpaceError) as caught:
        call(make()[0])
    assert caught.value.message == message and caught.value.status == 400


@pytest.mark.parametrize(
    "method, path, call, what",
    [
        ("PUT", "startCallbacks", lambda client: client.start_callbacks(ACCOUNT), "the startCallbacks answer"),
        ("GET", "callbacks", lambda client: client.list_callbacks(ACCOUNT), "the callback list answer"),
        ("POST", "callbacks", lambda client: client.register_callback(ACCOUNT, LISTENER, "https://l.example:9001/x"),
         "the callback registration answer"),
        ("DELETE", "callbacks", lambda client: client.delete_callback(ACCOUNT, LISTENER), "the callback deregistration answer"),
        ("POST", "devices/actions/list", lambda client: list(client.iter_devices(DeviceListRequest(account_name=ACCOUNT))),
         "the device list answer"),
        ("GET", "history", lambda client: client.sms_history(ACCOUNT), "the SMS history answer"),
    ],
    ids=["start-callbacks", "list-callbacks", "register-callback", "delete-callback", "list-devices", "sms-history"],
)
def test_an_unreadable_answer_names_the_call(fake, method, path, call, what):
    fake.script(method, path, (200, "unexpected"))
    with pytest.raises(ThingSpaceError) as caught:
        call(make()[0])
    assert caught.value.message.startswith("Unexpected content in %s (HTTP 200): " % what) and caught.value.status == 200


QUEUED = {"deviceIds": [{"kind": "mdn", "id": "5551234567"}], "message": "m", "timestamp": "2016-01-01T12:29:49-08:00"}


@pytest.mark.parametrize(
    "answer",
    [(202, {"messages": [QUEUED], "hasMoreData": False}), (200, {"messages": [QUEUED], "hasMoreData": True})],
    ids=["202", "has-more-data"],
)
def test_history_continues_on_202_or_more_data_and_takes_the_location_as_it_is(fake, answer):
    fake.script("GET", "history", (*answer, {"Location": "/sms/%s/history/block-2" % ACCOUNT}))
    messages, next_path = make()[0].sms_history(ACCOUNT)
    assert [m.message for m in messages] == ["m"] and next_path == "/sms/%s/history/block-2" % ACCOUNT


def test_history_saying_more_waits_without_a_location_fails(fake):
    fake.script("GET", "history", (202, {"messages": [QUEUED], "hasMoreData": True}))
    with pytest.raises(ThingSpaceError) as caught:
        make()[0].sms_history(ACCOUNT)
    assert caught.value.message == "The SMS history answer says more data waits but has no Location header" and caught.value.status == 202


@pytest.mark.parametrize("answer", [(503, None), (502, None), dropped()], ids=["503", "502", "dropped"])
def test_a_history_next_read_is_never_repeated_but_a_first_read_is(fake, answer):
    fake.queue = [dict(QUEUED, message="m%d" % n) for n in range(150)]
    client, sleeps = make()
    fake.script("GET", "history", answer)
    messages, next_path = client.sms_history(ACCOUNT)  # a plain read: repeated
    assert len(messages) == 100 and fake.count("GET", "history") == 2 and len(sleeps) == 1
    fake.script("GET", "history", answer)
    with pytest.raises(ThingSpaceError) as caught:
        client.sms_history(ACCOUNT, next_path)  # the next read acknowledges a block: it may have, so it is not repeated
    assert caught.value.ambiguous and "may have been processed" in caught.value.message
    assert caught.value.message.startswith("Failed to read SMS history of account '%s': " % ACCOUNT)
    assert fake.count("GET", "history") == 3 and len(sleeps) == 1
