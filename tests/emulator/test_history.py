"""GET /api/m2m/v1/sms/{accountName}/history: blocks of 100, 202 + Location paging, acknowledgement."""

import os
import re
from urllib.parse import urlsplit

import pytest
from vendor_client import ACCOUNT, DATA, error_code

HISTORY = f"/sms/{ACCOUNT}/history"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


@pytest.fixture
def queued(emu):
    """250 queued mobile-originated messages, "mo 0" .. "mo 249"."""
    for n in range(250):
        emu.admin.inject_mo(ACCOUNT, "mdn", f"555010{n % 24 + 1:04d}", f"mo {n}")
    return 250


def follow(api, location: str):
    """GET the Location of a 202: relative to the M2M base, /sms/{account}/history?next=N."""
    assert location.startswith("/sms/"), location
    return api.call("GET", location)


def messages(response) -> list:
    return [m["message"] for m in response.json()["messages"]]


def test_message_shape(emu, api):
    emu.admin.inject_mo(ACCOUNT, "esn", "27000000002", "hello")
    response = api.call("GET", HISTORY)
    assert response.status_code == 200
    body = response.json()
    assert body["hasMoreData"] is False
    [message] = body["messages"]
    assert set(message) == {"deviceIds", "message", "timestamp"}
    assert {"kind": "esn", "id": "27000000002"} in message["deviceIds"]
    assert TIMESTAMP.fullmatch(message["timestamp"])


def test_paging_acknowledges_each_block(api, queued):
    first = api.call("GET", HISTORY)
    assert (first.status_code, first.json()["hasMoreData"]) == (202, True)
    assert messages(first) == [f"mo {n}" for n in range(100)]
    location = first.headers["Location"]
    assert re.fullmatch(rf"/sms/{ACCOUNT}/history\?next=\d+", location)
    second = follow(api, location)
    assert (second.status_code, messages(second)) == (202, [f"mo {n}" for n in range(100, 200)])
    third = follow(api, second.headers["Location"])
    assert (third.status_code, third.json()["hasMoreData"], messages(third)) == (200, False, [f"mo {n}" for n in range(200, 250)])
    assert "Location" not in third.headers
    assert api.call("GET", HISTORY).json() == {"messages": [], "hasMoreData": False}


def test_unacknowledged_block_is_delivered_again(api, queued):
    first = api.call("GET", HISTORY)
    again = api.call("GET", HISTORY)
    assert messages(again) == messages(first)
    assert again.headers["Location"] != first.headers["Location"]
    after = follow(api, again.headers["Location"])
    assert messages(after)[0] == "mo 100"


def test_used_or_unknown_token_refused(api, queued):
    location = api.call("GET", HISTORY).headers["Location"]
    assert follow(api, location).status_code == 202
    assert error_code(follow(api, location)) == "UnifiedWebService.INPUT_INVALID.HistoryToken.Invalid"
    assert error_code(api.call("GET", HISTORY, params={"next": "12"})) == "UnifiedWebService.INPUT_INVALID.HistoryToken.Invalid"
    assert error_code(api.call("GET", HISTORY, params={"next": "abc"})) == "UnifiedWebService.INPUT_INVALID.HistoryToken.Invalid"


def test_token_belongs_to_its_account(make_emulator):
    emu = make_emulator(os.path.join(DATA, "two_accounts.yml"))
    for n in range(101):
        emu.admin.inject_mo("0000111111-00001", "mdn", "5551110001", f"a {n}")
    api = emu.client().authenticate()
    token = urlsplit(api.call("GET", "/sms/0000111111-00001/history").headers["Location"]).query
    response = api.call("GET", f"/sms/0000222222-00001/history?{token}")
    assert error_code(response) == "UnifiedWebService.INPUT_INVALID.HistoryToken.Invalid"


def test_unknown_account(api):
    assert error_code(api.call("GET", "/sms/9999999999-00001/history")) == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"
