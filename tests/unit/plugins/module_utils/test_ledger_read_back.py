"""What the ledger answers beside one key's record, on both stores: whether a ledger exists (a read creates none), the
same key under another API URL, request ids it has never seen, unconfirmed sends settled by the callbacks recorded
for their devices, the same message to a device under another key, and every send of a device."""

from __future__ import annotations

import os
import sqlite3
import time

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder, device_history
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

from callback_bodies import ACCOUNT, LISTENER

SCOPE, OTHER_SCOPE, KEY = "http://127.0.0.1:9", "http://localhost:9", "wave1"
HASH, OTHER_HASH = "a" * 64, "b" * 64


def mdn(number):
    return "mdn:555010%04d" % number


def recorded(where, targets, state="sent", request_id="r-1", key=KEY, scope=SCOPE, message=HASH):
    """Record ``targets`` under ``key``: ``sent`` with ``request_id``, ``unknown``, or ``pending`` of a run that died."""
    ledger = Ledger(where)
    try:
        claim, _claimed = ledger.claim(scope, key, targets, purpose={"message": message, "tracking": "device"})
        if state != "pending":  # pending: closed unsettled, as a run that died while sending; its lock goes
            ledger.settle(claim, state, request_id if state == "sent" else None)
    finally:
        ledger.close()


def callbacks(where, request_id, targets, kind="sent"):
    """Record, as the event source does, a callback naming each target: ``sent`` (Performed action on device) or a delivery."""
    events = []
    for target in targets:
        device = [{"kind": target.split(":")[0].capitalize(), "id": target.split(":")[1]}]
        if kind == "sent":
            body = dict(LISTENER, requestId=request_id, deviceIds=device, status="Success", comment="SendSmsMessage,Performed action on device.")
            events.append(callback_event(SMS_SERVICE, ACCOUNT, body))
        else:
            body = dict(LISTENER, requestId=request_id, deviceIds=device, deviceResponse={"smsDeliveryResponse": {"confirmation": kind}})
            events.append(callback_event(DELIVERY_SERVICE, ACCOUNT, body))
    recorder = StoreRecorder(where)
    recorder.record(events)
    recorder.close()


def schema_exists(server, schema):
    with server.connect() as db:
        return db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def test_a_read_finds_no_ledger_creates_none_and_says_so(where, request):
    ledger = Ledger(where, read_only=True)
    assert ledger.exists is False
    assert ledger.other_scopes(SCOPE, KEY) == {} and ledger.resolve_unconfirmed(SCOPE, KEY) == {}
    ledger.close()
    if isinstance(where, str):
        assert not os.path.lexists(where)
    else:
        assert not schema_exists(request.getfixturevalue("postgresql"), where.schema)
    Ledger(where).close()
    assert Ledger(where, read_only=True).exists is True


def test_the_same_key_under_another_api_url_is_found_with_its_count(where):
    recorded(where, [mdn(1), mdn(2)], scope=SCOPE)
    ledger = Ledger(where, read_only=True)
    assert ledger.other_scopes(OTHER_SCOPE, KEY) == {SCOPE: 2}
    assert ledger.other_scopes(SCOPE, KEY) == {} and ledger.other_scopes(OTHER_SCOPE, "another key") == {}


def test_request_ids_never_seen_are_named(where):
    recorded(where, [mdn(1)], request_id="r-sent")
    callbacks(where, "r-callback", [mdn(2)])
    ledger = Ledger(where, read_only=True)
    assert ledger.unknown_request_ids(["r-sent", "r-callback", "r-never", "r-never"]) == ["r-never"]


def test_an_unknown_row_keeps_its_claim_time(where):
    before = time.time()
    recorded(where, [mdn(1)], state="unknown")
    ledger = Ledger(where)
    at = ledger.store.rows("SELECT updated_at FROM sends")[0][0]
    assert before <= at
    time.sleep(0.05)
    claim = ledger.claim(SCOPE, KEY, [mdn(2)])[0]
    claimed_at = ledger.store.rows("SELECT updated_at FROM sends WHERE claim = ?", (claim,))[0][0]
    time.sleep(0.05)
    ledger.settle(claim, "unknown")
    assert ledger.store.rows("SELECT updated_at FROM sends WHERE target = ?", (mdn(2),))[0][0] == claimed_at


def test_callbacks_settle_the_unconfirmed_devices_they_explain_and_no_other(where):
    # 5: its callback came before its claim; 6: its callback's request id is a known send's.
    callbacks(where, "r-outside", [mdn(5)])
    recorded(where, [mdn(7)], request_id="r-known", key="other wave")
    recorded(where, [mdn(1), mdn(2), mdn(3), mdn(4), mdn(5), mdn(6)], state="unknown")
    recorded(where, [mdn(8)], state="pending")
    # 4 has another open claim under another key, which the callback could answer as well.
    recorded(where, [mdn(4)], state="unknown", key="third wave")
    callbacks(where, "r-lost", [mdn(1), mdn(4), mdn(8)])
    callbacks(where, "r-lost", [mdn(2)], kind="Delivered")
    callbacks(where, "r-known", [mdn(6)])
    expected = {mdn(1): "r-lost", mdn(2): "r-lost", mdn(8): "r-lost"}

    reader = Ledger(where, read_only=True)
    assert reader.resolve_unconfirmed(SCOPE, KEY) == expected
    states = reader.sends(SCOPE, KEY)
    assert {target for target, (state, _request_id) in states.items() if state == "sent"} == set(expected)
    assert states[mdn(2)] == ("sent", "r-lost") and states[mdn(3)] == ("unknown", None)
    reader.close()
    assert Ledger(where, read_only=True).states(SCOPE, KEY)[mdn(1)] == "unknown"  # read-only wrote nothing

    writer = Ledger(where)
    assert writer.resolve_unconfirmed(SCOPE, KEY) == expected
    assert writer.resolve_unconfirmed(SCOPE, KEY) == {}
    rows = dict(((target, (state, request_id)) for target, state, request_id in
                 writer.store.rows("SELECT target, state, request_id FROM sends WHERE claim IS NULL AND state = 'sent'")))
    assert {target: rows[target] for target in expected} == {target: ("sent", request_id) for target, request_id in expected.items()}
    assert writer.claim(SCOPE, KEY, [mdn(1), mdn(3)], mode="unconfirmed")[1] == [mdn(3)]


def test_two_unknown_request_ids_for_one_device_leave_it_unconfirmed(where):
    recorded(where, [mdn(1)], state="unknown")
    callbacks(where, "r-a", [mdn(1)])
    callbacks(where, "r-b", [mdn(1)], kind="Delivered")
    assert Ledger(where).resolve_unconfirmed(SCOPE, KEY) == {}


def test_a_live_claim_is_not_settled_by_a_callback(where):
    ledger = Ledger(where)
    ledger.claim(SCOPE, KEY, [mdn(1)])
    callbacks(where, "r-lost", [mdn(1)])
    assert Ledger(where).resolve_unconfirmed(SCOPE, KEY) == {}


def test_a_row_claimed_by_a_concurrent_run_while_settling_is_left_to_it(postgresql, monkeypatch):
    """PostgreSQL runs claims beside each other: a resend_unconfirmed claim that takes the row over between the
    settling's read and its write keeps it (SQLite's single writer cannot interleave them)."""
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    recorded(where, [mdn(1)], state="unknown")
    callbacks(where, "r-lost", [mdn(1)])
    settling, rival = Ledger(where), Ledger(where)
    read = Ledger._explained

    def read_then_rival_claims(self, key_id):
        found = read(self, key_id)
        rival.claim(SCOPE, KEY, [mdn(1)], mode="unconfirmed")
        return found

    monkeypatch.setattr(Ledger, "_explained", read_then_rival_claims)
    assert settling.resolve_unconfirmed(SCOPE, KEY) == {}
    assert settling.states(SCOPE, KEY) == {mdn(1): "in_flight"}


def test_the_same_message_under_other_keys_is_found_within_the_window(where):
    recorded(where, [mdn(1), mdn(2)], key="monday", request_id="r-mon")
    recorded(where, [mdn(2), mdn(3)], key="tuesday", request_id="r-tue")
    recorded(where, [mdn(1)], key="other text", message=OTHER_HASH)
    recorded(where, [mdn(1)], key="other service", scope=OTHER_SCOPE)
    ledger = Ledger(where, read_only=True)
    found = ledger.duplicates(SCOPE, KEY, HASH, [mdn(1), mdn(2), mdn(4)], time.time() - 3600)
    assert [(key, sorted(targets)) for key, targets, _at in found] == [("tuesday", [mdn(2)]), ("monday", [mdn(1), mdn(2)])]
    assert found[0][2] >= found[1][2]
    assert ledger.duplicates(SCOPE, "monday", HASH, [mdn(1)], time.time() - 3600) == []
    assert ledger.duplicates(SCOPE, KEY, HASH, [mdn(1)], time.time() + 1) == []


def test_a_device_thingspace_refused_under_another_key_is_no_duplicate(where):
    ledger = Ledger(where)
    claim, _claimed = ledger.claim(SCOPE, "monday", [mdn(1), mdn(2)], purpose={"message": HASH, "tracking": "device"})
    ledger.refuse(claim, [mdn(1)])  # not in the account: it never got the message
    ledger.settle(claim, "sent", "r-mon")
    found = ledger.duplicates(SCOPE, KEY, HASH, [mdn(1), mdn(2)], time.time() - 3600)
    ledger.close()
    assert [(key, targets) for key, targets, _at in found] == [("monday", [mdn(2)])]


def test_every_send_of_a_device_under_any_key_and_api_url_in_a_time_window(where):
    start = time.time()
    recorded(where, ["iccid:89148000000000000019"], key="by iccid", request_id="r-1")
    recorded(where, [mdn(1)], key="by mdn", scope=OTHER_SCOPE, request_id="r-2")
    recorded(where, [mdn(1)], key="lost", state="unknown")
    middle = time.time()
    recorded(where, [mdn(2)], key="another device")
    callbacks(where, "r-1", ["iccid:89148000000000000019"])  # a callback naming only the ICCID
    events = [callback_event(SMS_SERVICE, ACCOUNT, dict(LISTENER, requestId="r-1", status="Success", deviceIds=[
        {"kind": "Iccid", "id": "89148000000000000019"}, {"kind": "Mdn", "id": "5550100001"}])),
        callback_event(DELIVERY_SERVICE, ACCOUNT, dict(LISTENER, requestId="r-1", deviceIds=[{"kind": "Mdn", "id": "5550100001"}],
                                                       deviceResponse={"smsDeliveryResponse": {"confirmation": "Delivered"}}))]
    recorder = StoreRecorder(where)
    recorder.record(events)
    recorder.close()
    ledger = Ledger(where, read_only=True)
    found = device_history(ledger, [mdn(1)])
    assert [(entry["recorded_as"]["kind"], entry["idempotency_key"], entry["api_url"], entry["state"], entry["request_id"], entry["delivery"])
            for entry in found] == [("iccid", "by iccid", SCOPE, "sent", "r-1", "Delivered"), ("mdn", "by mdn", OTHER_SCOPE, "sent", "r-2", "accepted"),
                                    ("mdn", "lost", SCOPE, "unknown", None, None)]
    assert all(entry["device"] == {"kind": "mdn", "id": "5550100001"} for entry in found)
    assert [entry["idempotency_key"] for entry in device_history(ledger, [mdn(1)], since=start, until=middle)] == ["by iccid", "by mdn", "lost"]
    assert device_history(ledger, [mdn(1)], since=middle) == []


def test_no_ledger_column_holds_the_message_text(tmp_path):
    recorded(str(tmp_path / "l.sqlite3"), [mdn(1)], message=HASH)
    db = sqlite3.connect(str(tmp_path / "l.sqlite3"))
    assert db.execute("SELECT purpose FROM send_keys").fetchone()[0] == '{"message": "%s", "tracking": "device"}' % HASH
