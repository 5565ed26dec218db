"""vz_sms_delivery_info, and the delivery wait of vz_sms_send and what it reads in the ledger beside its key (the key
under another API URL, the same message under another key, unconfirmed devices the callbacks explain), against the
fake API with callbacks recorded in the ledger as the event source records them."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_delivery_info, vz_sms_send

from callback_bodies import LISTENER
from fake_api import ACCOUNT, API, CREDENTIALS

LOCALHOST = API.replace("127.0.0.1", "localhost")

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
    for listed in ([], ["Undelivered", "accepted"]):
        counted = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, list_states=listed)[0]
        assert counted["states"] == result["states"] and counted["msg"] == result["msg"]
        assert counted["devices"] == {state: result["devices"][state] for state in listed}

    by_request = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=[request_id])[0]
    assert by_request["devices"]["Undelivered"] == [DEVICES[1]] and by_request["total"] == 3
    some = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, devices=[{"kind": "MDN", "id": "5550000002"}])[0]
    assert some["states"]["Undelivered"] == 1 and some["total"] == 1
    # Another service's key of the same name is another send: this one has none, which is no answer of 0 devices.
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url="https://thingspace.verizon.com", idempotency_key=KEY)
    assert failed and "total" not in result
    assert result["msg"] == ("idempotency_key 'wave-delivery': the ledger %s has no send recorded under it for api_url https://thingspace.verizon.com; "
                             "%s has 3 target(s) under it. If that is the same service (localhost and 127.0.0.1, say), set api_url to it"
                             % (state_dir / "ledger.sqlite3", API.rstrip("/")))


def test_wrong_options_fail_before_reading_the_ledger(run_module, state_dir):
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API)
    assert failed and result["msg"] == "one of the following is required: idempotency_key, request_ids, devices"
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, devices=[{"kind": "mdn", "id": "12"}])
    assert failed and "devices[0]" in result["msg"]
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=["r"], ledger_url="mysql://db/x")
    assert failed and "is not a PostgreSQL URL" in result["msg"]
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, devices=[{"kind": "mdn", "id": "5550000002"}], list_states=[])
    assert failed and result["msg"] == ("list_states: it selects the devices a report of idempotency_key or request_ids lists; with devices alone "
                                        "every send is listed")
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, idempotency_key=KEY, list_states=["delivered"])
    assert failed and "list_states" in result["msg"] and "Delivered" in result["msg"]
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


@pytest.fixture
def ledger_args(request, state_dir):
    """The options of a new ledger, on each store: a path in the state dir, or a new schema of the session's server.
    ``exists()`` says whether the ledger was created."""
    if request.param == "sqlite":
        return {}, (state_dir / "ledger.sqlite3").exists
    server = request.getfixturevalue("postgresql")
    schema = server.new_schema()

    def exists():
        with server.connect() as db:
            return db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None

    return dict(ledger_url=server.url(), ledger_password=server.password, ledger_schema=schema), exists


@pytest.mark.parametrize("ledger_args", ["sqlite", "postgresql"], indirect=True)
def test_a_missing_ledger_fails_the_report_and_a_check_mode_send_previews_both_creating_nothing(fake, run_module, ledger_args):
    args, exists = ledger_args
    for query in ({"idempotency_key": KEY}, {"request_ids": ["r-1"]}, {"devices": DEVICES[:1]}):
        result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, **args, **query)
        assert failed and result["msg"].startswith("There is no ledger at ") and "nothing was recorded there to report" in result["msg"]
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args, **SEND)
    assert not failed and result["changed"] and result["devices_sent"] == 3
    assert not exists() and sms_posts(fake) == []  # check mode read the account's device list, nothing else


def test_a_key_or_request_id_the_ledger_never_saw_fails_the_report(fake, run_module, state_dir):
    request_id = sent_wave(fake, run_module, state_dir, [None, None, None])
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key="wave-never")
    assert failed and result["msg"] == "idempotency_key 'wave-never': the ledger %s has no send recorded under it for api_url %s" % (
        state_dir / "ledger.sqlite3", API)
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=[request_id, "r-never"])
    assert failed and result["msg"].startswith("request_ids: the ledger %s has never seen r-never: no send recorded it" % (state_dir / "ledger.sqlite3"))
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, request_ids=[request_id], since="1h")
    assert failed and result["msg"].startswith("since, until: they select the sends of devices given alone")


def test_a_key_sent_under_another_spelling_of_the_host_is_warned_about_by_the_send_and_the_report(fake, run_module, state_dir):
    sent_wave(fake, run_module, state_dir, [None, None, None])
    result, failed = run_module(vz_sms_send.main, check_mode=True, api_url=LOCALHOST, **SEND)
    assert not failed and result["changed"] and result["devices_sent"] == 3  # another scope: the ledger keeps them apart
    assert result["other_api_urls"] == [{"api_url": API, "targets": 3}]
    assert result["warnings"] == [
        "idempotency key %s also has 3 target(s) recorded under another API URL, %s; this run reads only those under %s. If both URLs are the "
        "same service (localhost and 127.0.0.1, say), run with api_url %s, or the devices recorded there get the message again" % (KEY, API, LOCALHOST, API)]
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=LOCALHOST, idempotency_key=KEY)
    assert failed and result["msg"].endswith("; %s has 3 target(s) under it. If that is the same service (localhost and 127.0.0.1, say), "
                                             "set api_url to it" % API)
    # Once both hold the key, the report of either warns of the other.
    assert not run_module(vz_sms_send.main, api_url=LOCALHOST, **SEND)[1]
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY)
    assert not failed and result["total"] == 3 and result["other_api_urls"] == [{"api_url": LOCALHOST, "targets": 3}]
    assert result["warnings"][0].startswith("idempotency_key %s also has 3 target(s) recorded under another API URL, %s; this report" % (KEY, LOCALHOST))


def test_the_same_message_to_a_device_under_another_key_is_sent_with_a_warning(fake, run_module, state_dir):
    sent_wave(fake, run_module, state_dir, [None, None, None])
    again = dict(SEND, idempotency_key="wave-again", devices=[*DEVICES[1:], {"kind": "mdn", "id": "5550000007"}])
    result, failed = run_module(vz_sms_send.main, check_mode=True, **again)
    assert not failed and result["devices_sent"] == 3
    assert [dict(found, last_at="-") for found in result["duplicates"]] == [{"idempotency_key": KEY, "devices": 2, "last_at": "-"}]
    assert result["warnings"] == [
        "2 device(s) this run would send to were sent the same message under another idempotency key, %s, within duplicate_window (24 h; the last "
        "at %s); they get it again under wave-again. Check that this is meant; duplicate_window: 0 turns this check off"
        % (KEY, result["duplicates"][0]["last_at"])]
    result, failed = run_module(vz_sms_send.main, **again)
    assert not failed and result["devices_sent"] == 3 and len(result["warnings"]) == 1 and len(sms_posts(fake)) == 2
    other_text = dict(again, idempotency_key="wave-other-text", sms_message="other text")
    assert run_module(vz_sms_send.main, check_mode=True, **other_text)[0]["duplicates"] == []
    off = run_module(vz_sms_send.main, check_mode=True, duplicate_window=0, **dict(again, idempotency_key="wave-third"))[0]
    assert off["duplicates"] == [] and off["warnings"] == []
    result, failed = run_module(vz_sms_send.main, duplicate_window=-1, **again)
    assert failed and result["msg"] == "duplicate_window must be 0 (no check) or more hours"


def test_an_unconfirmed_send_is_settled_by_the_callbacks_of_its_devices(fake, run_module, state_dir):
    fake.script("POST", r"/api/m2m/v1/sms$", (500, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "boom"}))
    result, failed = run_module(vz_sms_send.main, **SEND)
    assert failed and len(result["devices_unconfirmed"]) == 3
    # ThingSpace did process it: the callbacks of two devices come, with a request id the ledger never got.
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    recorder.record([callback_event(SMS_SERVICE, ACCOUNT, dict(LISTENER, requestId="r-lost", deviceIds=[{"kind": "Mdn", "id": device["id"]}],
                                                               status="Success", comment="SendSmsMessage,Performed action on device."))
                     for device in DEVICES[:2]])
    recorder.close()
    settled = [dict(device, request_id="r-lost") for device in DEVICES[:2]]

    report, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY)
    assert not failed and report["unconfirmed_resolved"] == settled
    assert report["devices"]["sent"] == DEVICES[:2] and report["devices"]["unconfirmed"] == DEVICES[2:]
    preview, failed = run_module(vz_sms_send.main, check_mode=True, resend_unconfirmed=True, **SEND)
    assert not failed and preview["unconfirmed_resolved"] == settled and preview["devices_sent"] == 1
    assert preview["warnings"][0].startswith("2 device(s) recorded unconfirmed under idempotency key %s would be settled as sent by callbacks" % KEY)

    result, failed = run_module(vz_sms_send.main, **SEND)
    assert not failed and result["unconfirmed_resolved"] == settled and result["devices_unconfirmed"] == DEVICES[2:]
    assert result["warnings"][0].startswith("1 target(s) have an unconfirmed send") and " were settled as sent " in result["warnings"][1]
    result, failed = run_module(vz_sms_send.main, resend_unconfirmed=True, **SEND)
    assert not failed and result["unconfirmed_resolved"] == [] and result["devices_sent"] == 1
    assert sms_posts(fake)[-1][2]["deviceIds"] == DEVICES[2:]


def test_the_sends_of_a_device_are_listed_under_every_key_within_a_window(fake, run_module, state_dir):
    request_id = sent_wave(fake, run_module, state_dir, ["Delivered", None, None])
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, devices=[{"kind": "iccid", "id": "89148000005550000001"}], since="1h")
    assert not failed and result["msg"] == "1 send(s) recorded for 1 device(s) in the time given"
    [entry] = result["device_sends"]
    assert dict(entry, at="-") == {"device": {"kind": "iccid", "id": "89148000005550000001"}, "recorded_as": DEVICES[0], "api_url": API,
                                   "idempotency_key": KEY, "state": "sent", "request_id": request_id, "at": "-", "delivery": "Delivered"}
    assert run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, devices=DEVICES[:1], until="2020-01-01T00:00:00")[0]["device_sends"] == []
    result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, devices=DEVICES[:1], since="yesterday")
    assert failed and result["msg"].startswith("since: 'yesterday' is neither an ISO 8601 time")


def test_a_report_of_a_damaged_ledger_fails_naming_it(fake, run_module, state_dir):
    """The check of a read-only open runs beside the report's reads; no report leaves before it."""
    sent_wave(fake, run_module, state_dir, ["Delivered", "Delivered", None])
    path = state_dir / "ledger.sqlite3"
    db = sqlite3.connect(str(path))
    page_size, [(root,)] = db.execute("PRAGMA page_size").fetchone()[0], db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'deliveries'")
    db.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    for listed in (None, []):
        result, failed = run_module(vz_sms_delivery_info.main, **NO_CREDENTIALS, api_url=API, idempotency_key=KEY, list_states=listed)
        assert failed and "states" not in result
        assert result["msg"].startswith("The ledger %s cannot be read: it is damaged, truncated or not a ledger (SQLite: " % path)
