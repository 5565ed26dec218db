"""vz_sms_receive end to end against the fake API: draining, acknowledgement and failures."""

from __future__ import annotations

import requests
from urllib3.exceptions import ProtocolError

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_receive

from fake_api import ACCOUNT, API


def _queue(count):
    return [{"deviceIds": [{"kind": "mdn", "id": "5550000001"}], "message": "m%d" % n, "timestamp": "2026-11-25T10:00:00-08:00"} for n in range(count)]


def test_receive_drains_every_block(fake, run_module):
    fake.queue = _queue(250)
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert not failed and result["changed"] and not result["more_queued"]
    assert [m["message"] for m in result["messages"]] == ["m%d" % n for n in range(250)]
    assert result["messages"][0]["device_ids"] == [{"kind": "mdn", "id": "5550000001"}]
    assert fake.queue == [] and fake.history_tokens == {}  # every block acknowledged, the last one by being read


def test_receive_max_messages_returns_only_acknowledged_blocks(fake, run_module):
    fake.queue = _queue(250)
    result = run_module(vz_sms_receive.main, account_name=ACCOUNT, max_messages=50)[0]
    assert len(result["messages"]) == 100 and result["more_queued"]
    assert fake.count("GET", "history") == 2
    assert [m["message"] for m in fake.queue] == ["m%d" % n for n in range(100, 250)]  # the second block stays queued


def test_receive_empty_queue_is_no_change(fake, run_module):
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert not failed and not result["changed"] and result["messages"] == []


def test_receive_failure_returns_every_block_that_may_be_acknowledged(fake, run_module):
    fake.queue = _queue(250)
    fake.script("GET", "history", (200, {"messages": _queue(100), "hasMoreData": True}, {"Location": "/sms/%s/history?next=100" % ACCOUNT}),
                (200, {"messages": _queue(100), "hasMoreData": True}, {"Location": "/sms/%s/history?next=200" % ACCOUNT}),
                (400, {"errorCode": "REQUEST_FAILED.UnexpectedError"}))
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert failed and len(result["messages"]) == 200
    assert "the 200 message(s) read before the failure are in 'messages' (the last 100 may be delivered again)" in result["msg"]
    assert fake.count("GET", "history") == 3  # the failed next read is not repeated


def test_a_next_read_without_answer_is_not_repeated_and_returns_the_block_in_hand(fake, run_module):
    fake.queue = _queue(250)
    fake.script("GET", "history", (200, {"messages": _queue(100), "hasMoreData": True}, {"Location": "/sms/%s/history?next=100" % ACCOUNT}),
                requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())))
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert failed and len(result["messages"]) == 100 and result["more_queued"]
    assert result["msg"] == ("Failed to read SMS history of account '%s': no answer from %s after the request was sent (ConnectionError); it "
                             "may have been processed; the 100 message(s) read before the failure are in 'messages' (the last 100 may be "
                             "delivered again)" % (ACCOUNT, API))
    assert fake.count("GET", "history") == 2  # the next read may have acknowledged the block: not repeated
