"""Delivery states in the ledger's store, on both stores: callbacks recorded once, states that only move forward,
the report per key or request id (devices matched across their identifiers), and the delivery wait."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import deliveries
from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import (
    StoreRecorder,
    delivery_report,
    required_delivered,
    undelivered,
    wait_for_delivery,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

from callback_bodies import ACCOUNT, ICCID, IMEI, MDN, MSISDN, REQUEST_ID, delivery, device_sms, request_complete, sms_sent

SCOPE, KEY = "http://127.0.0.1:9", "wave1"
OTHER_REQUEST = "7c0e8a51-1111-4222-8333-444455556666"


def sent(iccid=ICCID, mdn=MDN, request_id=REQUEST_ID):
    body = sms_sent()
    imei = IMEI if iccid == ICCID else "35123456%s" % iccid[-7:]
    body.update(requestId=request_id, deviceIds=[{"kind": "Iccid", "id": iccid}, {"kind": "Mdn", "id": mdn}, {"kind": "Imei", "id": imei}])
    return callback_event(SMS_SERVICE, ACCOUNT, body)


def confirmed(state="Delivered", mdn=MDN, request_id=REQUEST_ID):
    return callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery(state, mdn), requestId=request_id))


def completed(devices, request_id=REQUEST_ID):
    return callback_event(SMS_SERVICE, ACCOUNT, dict(request_complete(devices), requestId=request_id))


def device(number):
    """The identifiers of fleet device ``number``: (ICCID, MDN)."""
    return "8914800000000000%04d" % number, "555010%04d" % number


def send_recorded(where, targets, request_id=REQUEST_ID, key=KEY, state="sent"):
    """Record in the ledger that ``targets`` were sent under ``key`` with ``request_id`` (or left ``state``)."""
    ledger = Ledger(where)
    claim, _claimed = ledger.claim(SCOPE, key, targets)
    ledger.settle(claim, state, request_id if state == "sent" else None)
    ledger.close()


def record(where, *batches):
    recorder = StoreRecorder(where)
    try:
        return [recorder.record(batch) for batch in batches]
    finally:
        recorder.close()


def report(where, **kwargs):
    ledger = Ledger(where, read_only=True)
    try:
        return delivery_report(ledger, SCOPE, **kwargs)
    finally:
        ledger.close()


def test_each_callback_is_recorded_once_and_a_repeat_is_found_after_a_restart(where):
    first, second, third = sent(), confirmed(), completed(1)
    recorder = StoreRecorder(where)
    assert recorder.record([first, second, first]) == [True, True, False]
    # Recorded but not queued yet (as when the source died before queuing them): queued when they come again.
    assert recorder.record([second]) == [True]
    assert recorder.record([first, third], queued=[first["event_id"], second["event_id"]]) == [False, True]
    recorder.close()
    assert record(where, [second, first, third]) == [[False, False, True]]
    rows = Ledger(where).store.rows("SELECT type, account, request_id, queued_at IS NULL FROM callbacks ORDER BY type")
    assert rows == [("request_complete", ACCOUNT, REQUEST_ID, True), ("sms_delivery", ACCOUNT, REQUEST_ID, False), ("sms_sent", ACCOUNT, REQUEST_ID, False)]


def test_more_callbacks_and_marks_than_one_statement_takes_are_each_recorded_found_and_marked(where):
    """A batch longer than an SQLite statement's values (``store.among`` splits it; PostgreSQL takes one array)."""
    events, other = [confirmed(mdn="555070%04d" % number) for number in range(1201)], sent()
    recorder = StoreRecorder(where)
    try:
        assert recorder.record(events) == [True] * len(events)
        assert recorder.record(events[:2], queued=[event["event_id"] for event in events]) == [False, False]
        assert recorder.unknown([*events, other]) == [other]
        assert recorder.unknown([]) == []
    finally:
        recorder.close()
    ledger = Ledger(where)
    try:
        assert ledger.store.rows("SELECT count(*), count(queued_at) FROM callbacks") == [(1201, 1201)]
    finally:
        ledger.close()


def test_a_callback_another_live_recorder_has_not_queued_is_in_flight_until_it_is_queued_or_that_recorder_is_gone(where):
    """Two source instances on one ledger: the answer of the second for a callback the first recorded."""
    event, other = sent(), confirmed()
    first, second = StoreRecorder(where), StoreRecorder(where)
    assert first.record([event, other]) == [True, True]
    assert second.record([event, other]) == [None, None]  # the first may still queue them
    assert first.record([], queued=[event["event_id"]]) == []
    assert second.record([event, other]) == [False, None]
    first.close()  # gone without queuing the other: the second takes it over, once
    assert second.record([other, other]) == [True, False]
    third = StoreRecorder(where)
    assert third.record([other]) == [None]
    second.close()
    third.close()


def test_a_pipelined_transaction_is_all_or_nothing(where):
    """What a recorder call relies on: a failing statement undoes the ones before it (on PostgreSQL, the implicit
    transaction of one pipeline)."""
    ledger = Ledger(where)
    try:
        # The SQLite store passes sqlite3's errors on.
        with pytest.raises((ThingSpaceError, sqlite3.IntegrityError)), ledger.store.pipelined_transaction():
            ledger.store.execute("INSERT INTO callbacks (event_id, type, event, received_at) VALUES ('a', 'sms_sent', '{}', 1)")
            ledger.store.execute("INSERT INTO callbacks (event_id, type, event, received_at) VALUES ('b', 'sms_sent', NULL, 1)")
        assert ledger.store.rows("SELECT count(*) FROM callbacks") == [(0,)]
        with ledger.store.pipelined_transaction():
            ledger.store.execute("INSERT INTO callbacks (event_id, type, event, received_at) VALUES ('a', 'sms_sent', '{}', 1)")
        assert ledger.store.rows("SELECT event_id FROM callbacks") == [("a",)]
    finally:
        ledger.close()


def test_a_schema_5_ledger_gets_the_recorder_column(where):
    Ledger(where).close()
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.executescript("ALTER TABLE callbacks DROP COLUMN recorded_by; DROP TABLE campaign_counts; PRAGMA user_version = 5")
        db.close()
    else:
        import psycopg

        with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
            db.execute('ALTER TABLE "%s".callbacks DROP COLUMN recorded_by; DROP TABLE "%s".campaign_counts; UPDATE "%s".schema_version SET version = 5'
                       % (where.schema, where.schema, where.schema))
    assert record(where, [sent()]) == [[True]]
    assert Ledger(where).store.rows("SELECT count(recorded_by) FROM callbacks") == [(1,)]


def test_the_recorder_outlives_a_database_restart(postgresql):
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    recorder = StoreRecorder(where)
    first = sent()
    assert recorder.record([first]) == [True]
    postgresql.restart()
    with pytest.raises(ThingSpaceError, match="The ledger database"):
        recorder.record([confirmed()], queued=[first["event_id"]])  # the dropped connection: answered 503, ThingSpace sends it again
    assert recorder.record([confirmed(), first], queued=[first["event_id"]]) == [True, False]
    recorder.close()
    assert report(where, request_ids=[REQUEST_ID])["devices"]["Delivered"] == [{"kind": "mdn", "id": MDN}]


def test_a_recorded_event_keeps_no_listener_credential_and_its_fields(where):
    event = callback_event(SMS_SERVICE, ACCOUNT, device_sms("RESTARTED"))
    record(where, [event])
    (stored,) = Ledger(where).store.rows("SELECT event FROM callbacks")
    assert '"message":"RESTARTED"' in stored[0] and "listener" not in stored[0] and "password" not in stored[0]
    assert '"event_id"' not in stored[0] and "null" not in stored[0]


def test_a_state_only_moves_forward(where):
    iccid2, mdn2 = device(2)
    send_recorded(where, ["iccid:%s" % ICCID, "iccid:%s" % iccid2])
    record(where, [confirmed("Undelivered")], [sent()], [confirmed("Delivered")], [sent(iccid2, mdn2)], [confirmed("Expired", mdn2)],
           [confirmed("Delivered", mdn2)], [sent(iccid2, mdn2)])
    found = report(where, key=KEY)
    # The first confirmation of each device stands; a later "sent" or another confirmation does not move it back.
    assert found["devices"]["Undelivered"] == [{"kind": "iccid", "id": ICCID}]
    assert found["devices"]["Expired"] == [{"kind": "iccid", "id": iccid2}]
    assert found["states"]["Delivered"] == 0 and found["devices_unmatched"] == 0
    rows = Ledger(where).store.rows("SELECT device, state FROM deliveries ORDER BY device")
    assert rows == [("mdn:%s" % MDN, "Undelivered"), ("mdn:%s" % mdn2, "Expired")]


def test_a_device_sent_to_by_iccid_gets_the_state_its_mdn_was_confirmed_with(where):
    send_recorded(where, ["iccid:%s" % device(n)[0] for n in range(4)])
    send_recorded(where, ["iccid:%s" % device(9)[0]], key=KEY, state="unknown")
    record(where, [sent(*device(0)), confirmed("Delivered", device(0)[1])],  # sent, then confirmed
           [confirmed("Delivered", device(1)[1]), sent(*device(1))],  # confirmed before "sent" came
           [sent(*device(2))])  # sent, no confirmation yet; device 3: no callback
    found = report(where, key=KEY)
    assert found["devices"]["Delivered"] == [{"kind": "iccid", "id": device(0)[0]}, {"kind": "iccid", "id": device(1)[0]}]
    assert found["devices"]["sent"] == [{"kind": "iccid", "id": device(2)[0]}]
    assert found["devices"]["accepted"] == [{"kind": "iccid", "id": device(3)[0]}]
    assert found["devices"]["unconfirmed"] == [{"kind": "iccid", "id": device(9)[0]}]
    assert found["states"] == {"Delivered": 2, "Undelivered": 0, "Expired": 0, "Rejected": 0, "sent": 1, "accepted": 1, "unconfirmed": 1}
    assert found["total"] == 5 and found["requests"] == [{"request_id": REQUEST_ID, "devices_requested": None}]
    assert report(where, key=KEY, targets=["iccid:%s" % device(1)[0], "iccid:%s" % device(8)[0]])["states"]["Delivered"] == 1
    assert report(where, key="another")["total"] == 0


def test_a_confirmation_no_sent_callback_ties_to_a_device_is_counted_unmatched(where):
    send_recorded(where, ["iccid:%s" % ICCID])
    record(where, [confirmed("Delivered")])
    found = report(where, key=KEY)
    assert found["devices"]["accepted"] == [{"kind": "iccid", "id": ICCID}] and found["devices_unmatched"] == 1


def test_a_device_named_by_its_msisdn_and_by_its_mdn_is_one_device(where):
    body = sms_sent()
    body["deviceIds"] = [{"kind": "Iccid", "id": ICCID}, {"kind": "Msisdn", "id": MSISDN}]
    send_recorded(where, ["iccid:%s" % ICCID])
    msisdn_confirmation = callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery("Rejected"), deviceIds=[{"kind": "Msisdn", "id": MSISDN}]))
    record(where, [callback_event(SMS_SERVICE, ACCOUNT, body)], [msisdn_confirmation])
    assert report(where, key=KEY)["devices"]["Rejected"] == [{"kind": "iccid", "id": ICCID}]


def test_the_devices_of_a_request_id_are_those_its_callbacks_named(where):
    record(where, [sent(*device(1)), sent(*device(2)), confirmed("Delivered", device(1)[1]), confirmed("Rejected", device(5)[1])],
           [sent(*device(3), request_id=OTHER_REQUEST)])
    found = report(where, request_ids=[REQUEST_ID])
    assert found["devices"]["Delivered"] == [{"kind": "mdn", "id": device(1)[1]}]
    assert found["devices"]["sent"] == [{"kind": "mdn", "id": device(2)[1]}]
    assert found["devices"]["Rejected"] == [{"kind": "mdn", "id": device(5)[1]}]
    assert found["total"] == 3 and found["total_known"] is False
    # The Request Complete callback tells how many devices the request had: the others are accepted, not listed.
    record(where, [completed(5)])
    found = report(where, request_ids=[REQUEST_ID])
    assert found["states"]["accepted"] == 2 and found["devices"]["accepted"] == [] and found["total"] == 5 and found["total_known"] is True
    assert found["requests"] == [{"request_id": REQUEST_ID, "devices_requested": 5}]


def test_a_selection_send_reports_the_devices_of_its_request(where):
    send_recorded(where, ["selection"])
    send_recorded(where, ["selection"], key="lost", state="unknown")
    record(where, [sent(*device(1)), confirmed("Undelivered", device(1)[1]), completed(2)])
    found = report(where, key=KEY)
    assert found["devices"]["Undelivered"] == [{"kind": "mdn", "id": device(1)[1]}] and found["states"]["accepted"] == 1
    assert report(where, key="lost")["devices"]["unconfirmed"] == [{"kind": "selection", "id": "lost"}]


@pytest.mark.parametrize("given, total, required", [("100%", 12, 12), ("80%", 12, 10), ("83.4%", 12, 11), ("1%", 12, 1), ("5", 12, 5), (" 7 ", 3, 7)])
def test_min_delivered_is_a_count_or_a_percentage(given, total, required):
    assert required_delivered(given, total) == required


@pytest.mark.parametrize("given", ["0", "-1", "0%", "101%", "ten", "%", "5.5"])
def test_a_wrong_min_delivered_is_refused(given):
    with pytest.raises(ValueError, match="min_delivered: %r is neither a count" % given):
        required_delivered(given, 10)


class Clock:
    """A clock the wait reads and advances by sleeping; ``on_sleep(now)`` runs at each sleep (callbacks arriving)."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def wait(where, min_delivered, timeout, clock, targets=None, key=KEY):
    ledger = Ledger(where)
    try:
        return wait_for_delivery(ledger, SCOPE, key, targets, min_delivered, timeout, interval=1.0, clock=clock, sleep=clock.sleep)
    finally:
        ledger.close()


def test_the_wait_returns_once_enough_devices_are_delivered(where):
    targets = ["iccid:%s" % device(n)[0] for n in range(3)]
    send_recorded(where, targets)
    recorder = StoreRecorder(where)
    arrivals = {1001.0: [sent(*device(0)), confirmed("Delivered", device(0)[1])], 1003.0: [sent(*device(1)), confirmed("Delivered", device(1)[1])]}
    clock = Clock(lambda now: recorder.record(arrivals.get(now, [])))
    found, failure = wait(where, "60%", 30, clock, targets)
    recorder.close()
    assert failure is None and clock.sleeps == [1.0, 1.0, 1.0] and found["states"]["Delivered"] == 2
    assert undelivered(found) == [{"kind": "iccid", "id": device(2)[0], "state": "accepted"}]


def test_the_wait_times_out_listing_the_devices_not_delivered(where):
    targets = ["iccid:%s" % device(n)[0] for n in range(2)]
    send_recorded(where, targets)
    record(where, [sent(*device(0)), confirmed("Delivered", device(0)[1]), sent(*device(1))])
    clock = Clock()
    found, failure = wait(where, "100%", 2.5, clock, targets)
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert failure == ("Delivery wait timed out after 2.5 s: 1 of 2 device(s) Delivered, 2 needed (min_delivered 100%); "
                       "not delivered: 1 sent (devices_undelivered lists them)")
    assert undelivered(found) == [{"kind": "iccid", "id": device(1)[0], "state": "sent"}]


def test_the_wait_fails_at_once_when_the_devices_still_waiting_cannot_make_up_the_count(where):
    targets = ["iccid:%s" % device(n)[0] for n in range(3)]
    send_recorded(where, targets)
    record(where, [sent(*device(n)) for n in range(3)] + [confirmed("Undelivered", device(0)[1]), confirmed("Expired", device(1)[1])])
    clock = Clock()
    found, failure = wait(where, "2", 600, clock, targets)
    assert clock.sleeps == [] and failure == ("Delivery wait: 0 of 3 device(s) Delivered, 2 needed (min_delivered 2), and only 1 more await a "
                                              "delivery callback; not delivered: 1 Undelivered, 1 Expired, 1 sent (devices_undelivered lists them)")
    assert [entry["state"] for entry in undelivered(found)] == ["Undelivered", "Expired", "sent"]


def test_the_wait_says_when_no_callback_is_recorded(where):
    send_recorded(where, ["mdn:%s" % MDN])
    _found, failure = wait(where, "1", 0, Clock())
    assert failure.endswith("not delivered: 1 accepted (devices_undelivered lists them); no callback of these requests is recorded in the ledger: "
                            "is the event source thingspace.m2m.callbacks running with this ledger, and registered for "
                            "EnhancedConnectivityService and SMSDeliveryConfirmation?")


def test_a_percentage_of_a_selection_waits_for_its_size(where):
    send_recorded(where, ["selection"])
    recorder = StoreRecorder(where)
    recorder.record([sent(*device(0)), confirmed("Delivered", device(0)[1])])  # 1 of 1 known device: not enough to know
    clock = Clock(lambda now: recorder.record([completed(2)] if now == 1002.0 else []))
    found, failure = wait(where, "50%", 30, clock)
    recorder.close()
    assert failure is None and clock.sleeps == [1.0, 1.0] and found["total"] == 2


def test_the_wait_names_the_confirmations_that_match_no_device(where):
    """Confirmations name an MDN; without the "sent" callbacks they cannot be tied to devices sent to by ICCID."""
    send_recorded(where, ["iccid:%s" % device(n)[0] for n in range(2)])
    record(where, [confirmed("Delivered", device(n)[1]) for n in range(2)])
    found, failure = wait(where, "1", 0, Clock())
    assert found["devices_unmatched"] == 2
    assert failure == ("Delivery wait timed out after 0 s: 0 of 2 device(s) Delivered, 1 needed (min_delivered 1); not delivered: 2 accepted "
                       "(devices_undelivered lists them); 2 device(s) named by callbacks match none of the send's devices: register "
                       "EnhancedConnectivityService too, whose callbacks list each identifier of a device")


def test_the_wait_counts_only_the_devices_of_this_send(where):
    """A key whose list was longer in an earlier run: the wait is over this run's devices only."""
    send_recorded(where, ["iccid:%s" % device(n)[0] for n in range(3)])
    record(where, [sent(*device(n)) for n in range(2)] + [confirmed("Delivered", device(n)[1]) for n in range(2)])
    found, failure = wait(where, "100%", 0, Clock(), targets=["iccid:%s" % device(n)[0] for n in range(2)])
    assert failure is None and found["total"] == 2 and found["states"]["Delivered"] == 2


def test_a_count_of_a_selection_needs_no_size(where):
    """min_delivered as a count is met by the devices delivered, before the Request Complete callback tells the size."""
    send_recorded(where, ["selection"])
    record(where, [sent(*device(0)), confirmed("Delivered", device(0)[1])])
    clock = Clock()
    found, failure = wait(where, "1", 30, clock)
    assert failure is None and clock.sleeps == [] and found["total_known"] is False


def test_an_unconfirmed_device_does_not_hide_the_devices_after_it(where):
    send_recorded(where, ["iccid:%s" % device(0)[0]], state="unknown")
    send_recorded(where, ["iccid:%s" % device(n)[0] for n in (1, 2)])
    record(where, [sent(*device(1)), confirmed("Delivered", device(1)[1])])
    found = report(where, key=KEY)
    assert found["devices"]["unconfirmed"] == [{"kind": "iccid", "id": device(0)[0]}]
    assert found["devices"]["Delivered"] == [{"kind": "iccid", "id": device(1)[0]}]
    assert found["devices"]["accepted"] == [{"kind": "iccid", "id": device(2)[0]}]


def test_a_selection_whose_devices_all_called_back_has_none_left_accepted(where):
    send_recorded(where, ["selection"])
    record(where, [sent(*device(1)), confirmed("Delivered", device(1)[1]), completed(1)])
    found = report(where, key=KEY)
    assert found["states"]["accepted"] == 0 and found["total"] == 1 and found["total_known"] is True


def test_a_device_confirmed_under_two_identifiers_keeps_its_first_final_state(where):
    """Confirmed by its MDN, then by its MSISDN, before the sent callback ties both to the ICCID: one device, the first state."""
    send_recorded(where, ["iccid:%s" % ICCID])
    by_msisdn = callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery("Rejected"), deviceIds=[{"kind": "Msisdn", "id": MSISDN}]))
    record(where, [confirmed("Delivered")], [by_msisdn], [callback_event(SMS_SERVICE, ACCOUNT, sms_sent())])  # ICCID, MDN, MSISDN, ...
    found = report(where, key=KEY)
    assert found["devices"]["Delivered"] == [{"kind": "iccid", "id": ICCID}] and found["states"]["Rejected"] == 0


def test_a_sent_callback_that_did_not_succeed_is_no_delivery_state(where):
    send_recorded(where, ["iccid:%s" % ICCID])
    record(where, [callback_event(SMS_SERVICE, ACCOUNT, sms_sent(status="Failed"))])
    found = report(where, key=KEY)
    assert found["devices"]["accepted"] == [{"kind": "iccid", "id": ICCID}] and found["states"]["sent"] == 0


def test_a_closed_recorder_leaves_no_connection_to_the_database(postgresql):
    where = Database(postgresql.url(application_name="recorder-closed"), postgresql.password, postgresql.new_schema())
    recorder = StoreRecorder(where)
    recorder.record([sent()])
    connections = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'recorder-closed'"
    assert postgresql.execute(connections) == [(1,)]
    recorder.close()
    assert postgresql.execute(connections) == [(0,)]


def test_a_count_over_the_send_fails_at_once_with_nothing_left_undelivered(where):
    targets = ["iccid:%s" % device(n)[0] for n in range(2)]
    send_recorded(where, targets)
    record(where, [sent(*device(n)) for n in range(2)] + [confirmed("Delivered", device(n)[1]) for n in range(2)])
    clock = Clock()
    _found, failure = wait(where, "3", 600, clock, targets)
    assert clock.sleeps == [] and failure == ("Delivery wait: 2 of 2 device(s) Delivered, 3 needed (min_delivered 3), and only 0 more await a "
                                              "delivery callback; not delivered: none (devices_undelivered lists them)")


def test_the_devices_of_several_request_ids(where):
    record(where, [sent(*device(1)), confirmed("Delivered", device(1)[1])], [sent(*device(2), request_id=OTHER_REQUEST)])
    found = report(where, request_ids=[REQUEST_ID, OTHER_REQUEST])
    assert found["devices"]["Delivered"] == [{"kind": "mdn", "id": device(1)[1]}] and found["devices"]["sent"] == [{"kind": "mdn", "id": device(2)[1]}]
    assert [entry["request_id"] for entry in found["requests"]] == [REQUEST_ID, OTHER_REQUEST]


def test_a_callback_naming_an_identifier_kind_this_collection_does_not_know_is_recorded(where):
    """ThingSpace may add identifier kinds; a device is still named by the first kind known here."""
    body = dict(delivery("Delivered"), deviceIds=[{"kind": "Eui64", "id": "00-1B-63-84-45-E6"}, {"kind": "Mdn", "id": MDN}])
    record(where, [callback_event(DELIVERY_SERVICE, ACCOUNT, body)])
    assert report(where, request_ids=[REQUEST_ID])["devices"]["Delivered"] == [{"kind": "mdn", "id": MDN}]


@pytest.mark.parametrize("rows, devices", [
    # Each device in one row: read row by row.
    ([("mdn:5550000001", "Delivered", '["iccid:89148000000800000001","mdn:5550000001"]', 2.0), ("mdn:5550000002", "sent", '["mdn:5550000002"]', 1.0)], 2),
    # Two rows share an ICCID: one device, its first final state.
    ([("mdn:5550000001", "sent", '["iccid:89148000000800000001","mdn:5550000001"]', 1.0),
      ("msisdn:15550000001", "Undelivered", '["iccid:89148000000800000001","msisdn:15550000001"]', 3.0),
      ("mdn:5550000002", "Delivered", '["mdn:5550000002"]', 2.0)], 2),
    # A row that does not list its own device, and an identifier written with an escape.
    ([("mdn:5550000001", "Delivered", '["mdn:5550000009"]', 2.0), ("mdn:555000000\\u0032", "Expired", '["mdn:555000000\\u0032"]', 1.0)], 2),
])
def test_a_request_read_row_by_row_finds_what_joining_its_rows_finds(rows, devices):
    request = deliveries._Request(rows)
    joined = deliveries._joined_groups(rows)
    assert len(request.groups) == devices
    assert [dict(group, aliases=set(group["aliases"])) for group in request.groups] == joined
    for alias in {alias for _device, _state, text, _at in rows for alias in json.loads(text)} | {row[0] for row in rows} | {"mdn:5550000404"}:
        expected = next((group for group in joined if alias in group["aliases"]), None)
        found = request.find(alias)
        assert (found and dict(found, aliases=set(found["aliases"]))) == expected, alias


def _mdn_fleet(where):
    """A send by MDN in two requests, with a device in each state, a refused one, a confirmation of a device not sent to,
    and two devices whose "sent" callbacks list one ICCID."""
    mdns = ["mdn:%s" % device(n)[1] for n in range(8)]
    send_recorded(where, mdns[:5])
    send_recorded(where, mdns[5:7], request_id=OTHER_REQUEST)
    send_recorded(where, ["mdn:%s" % device(20)[1]], state="unknown")
    send_recorded(where, ["mdn:%s" % device(21)[1]], key=KEY, state="refused")
    record(where, [sent(*device(0)), confirmed("Delivered", device(0)[1])], [confirmed("Undelivered", device(1)[1])], [sent(*device(2))],
           [confirmed("Rejected", device(9)[1])],  # device 3: no callback
           [sent(device(5)[0], device(5)[1], OTHER_REQUEST), sent(device(5)[0], device(6)[1], OTHER_REQUEST)],
           [confirmed("Expired", device(6)[1], OTHER_REQUEST)])
    return [*mdns[:7], "mdn:%s" % device(20)[1]]


@pytest.mark.parametrize("listed", [deliveries.REPORT_STATES, (), ("Undelivered", "accepted", "unconfirmed")])
def test_a_send_by_mdn_is_counted_by_the_store_as_the_rows_read_one_by_one_count_it(where, listed):
    targets = _mdn_fleet(where)
    ledger = Ledger(where, read_only=True)
    try:
        counted = deliveries._report_by_mdn(ledger, SCOPE, KEY, listed)
        read = delivery_report(ledger, SCOPE, KEY, targets=targets, listed=listed)
    finally:
        ledger.close()
    assert counted is not None
    assert dict(counted, requests=sorted(counted["requests"], key=str)) == dict(read, requests=sorted(read["requests"], key=str))
    assert counted["states"] == {"Delivered": 1, "Undelivered": 1, "Expired": 1, "Rejected": 0, "sent": 2, "accepted": 2, "unconfirmed": 1}
    assert counted["devices_unmatched"] == 1 and sorted(counted["devices"]) == sorted(listed)
    assert report(where, key=KEY, listed=listed) == counted


@pytest.mark.parametrize("aliases, state", [('["mdn:5550100000","mdn:5550100001"]', "Delivered"), ('["mdn:5550109999"]', "accepted"),
                                            ('["mdn:555010000\\u0030"]', "Delivered")])
def test_rows_the_store_cannot_read_as_they_are_are_joined_as_before(where, aliases, state):
    """Two MDNs in a row, a row that does not list its own MDN (so it names another device), an escape: the report
    reads the rows one by one."""
    send_recorded(where, ["mdn:%s" % device(0)[1]])
    ledger = Ledger(where)
    with ledger.store.transaction():
        ledger.store.execute("INSERT INTO deliveries (request_id, device, state, aliases, updated_at) VALUES (?, ?, 'Delivered', ?, 1.0)",
                             (REQUEST_ID, "mdn:%s" % device(0)[1], aliases))
    ledger.close()
    ledger = Ledger(where, read_only=True)
    try:
        assert deliveries._report_by_mdn(ledger, SCOPE, KEY, deliveries.REPORT_STATES) is None
    finally:
        ledger.close()
    assert report(where, key=KEY)["states"][state] == 1


def test_a_send_to_other_identifiers_is_read_one_by_one(where):
    send_recorded(where, ["mdn:%s" % device(0)[1], "iccid:%s" % device(1)[0]])
    ledger = Ledger(where, read_only=True)
    try:
        assert deliveries._report_by_mdn(ledger, SCOPE, KEY, ()) is None
    finally:
        ledger.close()


def test_two_mdns_are_two_devices_whatever_else_their_rows_share(where):
    """Joined by the ICCID both "sent" callbacks list, the second MDN's Undelivered would be the first's state."""
    send_recorded(where, ["iccid:%s" % ICCID, "mdn:5550109999"])
    record(where, [sent(ICCID, MDN), sent(ICCID, "5550109999"), confirmed("Undelivered", "5550109999")], [confirmed("Delivered", MDN)])
    found = report(where, key=KEY)
    assert found["devices"]["Delivered"] == [{"kind": "iccid", "id": ICCID}]
    assert found["devices"]["Undelivered"] == [{"kind": "mdn", "id": "5550109999"}]
