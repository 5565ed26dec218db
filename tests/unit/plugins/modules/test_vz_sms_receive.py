"""vz_sms_receive end to end against the fake API: draining, acknowledgement and failures."""

from __future__ import annotations

import json

import requests
from urllib3.exceptions import ProtocolError

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_campaign, vz_sms_receive

from callback_bodies import LISTENER
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


def _ledger_sms(state_dir):
    ledger = Ledger(str(state_dir / "ledger.sqlite3"), read_only=True)
    try:
        return sorted((json.loads(event)["message"], json.loads(event)["via"]) for (event,) in ledger.store.rows(
            "SELECT event FROM callbacks WHERE type = 'device_sms'"))
    finally:
        ledger.close()


def test_each_message_drained_is_recorded_once_in_the_ledger_with_the_callbacks_identity(fake, run_module, state_dir):
    fake.queue = _queue(3)
    # The callbacks source took m0 already (a device SMS called back and also queued in the history).
    called_back = dict(LISTENER, requestId="mo-1", deviceIds=fake.queue[0]["deviceIds"],
                       deviceResponse={"smsResponse": {"message": "m0", "timestamp": fake.queue[0]["timestamp"]}})
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    recorder.record([callback_event(SMS_SERVICE, ACCOUNT, called_back)])
    recorder.close()
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert not failed and len(result["messages"]) == 3 and result["messages_recorded"] == 2
    assert _ledger_sms(state_dir) == [("m0", "callback"), ("m1", "history"), ("m2", "history")]


def test_a_reply_drained_from_the_history_counts_for_the_campaign(fake, run_module, state_dir):
    device = {"kind": "mdn", "id": "5550000001"}
    result, failed = run_module(vz_sms_campaign.main, name="ask", account_name=ACCOUNT, devices=[device], sms_message="STATUS?", success="replied",
                                reply_pattern="^OK")
    assert not failed and result["campaign_state"] == "waiting"
    fake.queue = [{"deviceIds": [device], "message": "OK 3.1", "timestamp": "2099-01-01T00:00:00Z"}]
    assert run_module(vz_sms_receive.main, account_name=ACCOUNT)[0]["messages_recorded"] == 1
    result, failed = run_module(vz_sms_campaign.main, name="ask", sms_message="STATUS?")
    assert not failed and result["campaign_state"] == "completed" and result["replied"] == 1


def test_a_ledger_that_cannot_be_opened_fails_before_any_message_is_read(fake, run_module, state_dir, tmp_path):
    fake.queue = _queue(3)
    empty = tmp_path / "empty.sqlite3"
    empty.touch(mode=0o600)
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT, ledger_path=str(empty))
    assert failed and result["msg"].startswith("The ledger %s is empty (0 bytes)" % empty)
    assert fake.count("GET", "history") == 0 and len(fake.queue) == 3


def test_a_block_the_ledger_cannot_record_stays_queued(fake, run_module, state_dir, monkeypatch):
    fake.queue = _queue(150)

    def broken(self, events, queued=()):
        raise ThingSpaceError("disk full")

    monkeypatch.setattr(StoreRecorder, "record", broken)
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT)
    assert failed and result["messages"] == [] and result["more_queued"]
    assert result["msg"] == ("The ledger could not record the device SMS read (disk full); the 0 message(s) in 'messages' are consumed, 0 of them "
                             "recorded in the ledger; the block read last stays queued")
    assert len(fake.queue) == 150 and fake.count("GET", "history") == 1
