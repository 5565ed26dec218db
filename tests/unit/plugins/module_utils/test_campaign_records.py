"""What campaign.py hands to others, on both stores: the copy of campaigns between ledgers (vz_ledger_copy), the
per-device list (vz_sms_campaign_info), the campaigns of a scope, a reply's time, and the policy a later step changes.
Each compares whole values: these are what an operator reads or what another ledger keeps."""

from __future__ import annotations

import json

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign as c
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.send import device_of

from fake_api import API, CREDENTIALS

SCOPE, NAME, ACCOUNT = "http://127.0.0.1:9", "apn-7", "0000123456-00001"
TARGETS = ["mdn:55501000%02d" % n for n in range(4)]


def create(ledger, name=NAME, message="hash", account=ACCOUNT, now=1000.0):
    definition = dict(c.DEFAULT_DEFINITION, waves=[1, "100%"], message=message, data_encoding="7-bit", selection={"devices": 4})
    return c._create(ledger, SCOPE, name, account, definition, dict(c.DEFAULT_POLICY, max_per_minute=60), TARGETS, now, False)


def move(ledger, moves, state=None, abort_reason=None):
    """Move the campaign's devices (position → (state, request id, sent_at, finished_at)) and its state, as a step writes them."""
    campaign = c.load(ledger, SCOPE, NAME)
    for position, values in moves.items():
        campaign.devices[position].advance(*values)
    if state:
        campaign.state, campaign.abort_reason = state, abort_reason
    c._save(ledger, campaign, 2000.0)


def snapshot(ledger, name=NAME):
    found = c.load(ledger, SCOPE, name)
    return ((found.scope, found.name, found.account, found.definition, found.policy, found.devices_total, found.ends, found.state, found.wave,
             found.abort_reason, found.next_send_at, found.created_at),
            [(d.target, d.position, d.wave, d.state, d.request_id, d.sent_at, d.finished_at) for d in found.devices],
            sorted(row for row in ledger.store.rows(c._COUNTS, (found.id,)) if row[2]))


def counted(ledger):
    """The store's counts of the campaign's devices, and the devices counted from their rows: (wave, state) → devices."""
    campaign_id = c.load(ledger, SCOPE, NAME, whole=False).id
    return ({(row[0], row[1]): row[2] for row in ledger.store.rows(c._COUNTS, (campaign_id,)) if row[2]},
            {(row[0], row[1]): row[2] for row in ledger.store.rows("SELECT wave, state, count(*) FROM campaign_devices GROUP BY wave, state")})


@pytest.fixture
def source(tmp_path):
    ledger = Ledger(str(tmp_path / "source.sqlite3"))
    yield ledger
    ledger.close()


@pytest.fixture
def destination(where):
    ledger = Ledger(where)
    yield ledger
    ledger.close()


ABORT = {"criterion": {"failure": "any", "threshold": "10%", "min_devices": 1}, "gate": None, "device": {"kind": "mdn", "id": "5550100000"},
         "finished": 1, "failed": 1, "at": "2026-12-07T10:00:00+00:00"}


def test_a_campaign_the_destination_lacks_is_copied_whole_and_only_once(source, destination):
    create(source)
    move(source, {0: ("undelivered", "r1", 1001.0, 1002.5), 1: ("sent", "r1", 1001.0)}, "aborted", ABORT)
    with source.store.transaction():
        source.store.execute("UPDATE campaigns SET next_send_at = 1061.0")
    assert c.copy_campaigns(source, destination, check_mode=True) == (1, 1)
    assert c.load(destination, SCOPE, NAME) is None
    assert c.copy_campaigns(source, destination) == (1, 1)
    assert snapshot(destination) == snapshot(source)
    assert c.copy_campaigns(source, destination) == (1, 0)
    assert snapshot(destination) == snapshot(source)


def test_a_campaign_both_have_is_merged_forward_only_and_a_final_state_kept(source, destination):
    create(source)
    create(destination)
    move(destination, {2: ("delivered", "r9", 1003.0, 1004.0)})
    assert c.copy_campaigns(source, destination) == (1, 0)  # nothing further in the source
    move(source, {0: ("delivered", "r1", 1001.0, 1002.0), 1: ("sent", "r1", 1001.0)}, "aborted", ABORT)
    assert c.copy_campaigns(source, destination, check_mode=True) == (1, 1)
    assert snapshot(destination)[1][0][3] == "pending"
    assert c.copy_campaigns(source, destination) == (1, 1)
    merged = c.load(destination, SCOPE, NAME)
    assert [(d.state, d.request_id, d.sent_at, d.finished_at) for d in merged.devices] == [
        ("delivered", "r1", 1001.0, 1002.0), ("sent", "r1", 1001.0, None), ("delivered", "r9", 1003.0, 1004.0), ("pending", None, None, None)]
    assert (merged.state, merged.abort_reason) == ("aborted", ABORT)
    assert counted(destination) == ({(1, "delivered"): 1, (2, "sent"): 1, (2, "delivered"): 1, (2, "pending"): 1},) * 2


def test_a_final_state_alone_is_merged(source, destination):
    create(source)
    create(destination)
    move(source, {}, "completed")
    assert c.copy_campaigns(source, destination) == (1, 1)
    assert c.load(destination, SCOPE, NAME).state == "completed"
    move(destination, {}, None)
    assert c.copy_campaigns(source, destination) == (1, 0)


@pytest.mark.parametrize("other", [dict(message="another hash"), dict(account="0000123456-00002")])
def test_a_campaign_created_otherwise_refuses_the_whole_copy(source, destination, other):
    create(source, name="first")
    create(source)
    create(destination, **other)
    with pytest.raises(ThingSpaceError) as caught:
        c.copy_campaigns(source, destination)
    assert str(caught.value) == ("The campaigns %s (%s) were created with other options in %s than in %s; nothing was copied. Copy into another "
                                 "ledger_schema, or resolve them by hand" % (NAME, SCOPE, destination.where, source.where))
    assert c.names(destination, SCOPE) == [NAME]


def test_the_device_list_and_the_names_of_a_scope(where):
    ledger = Ledger(where)
    try:
        create(ledger, name="later", now=3000.0)
        create(ledger)
        move(ledger, {0: ("delivered", "r1", 1001.0, 1002.5), 1: ("sent", "r1", 1001.0)})
        assert c.names(ledger, SCOPE) == [NAME, "later"] and c.names(ledger, "http://127.0.0.1:10") == []
        found = c.load(ledger, SCOPE, NAME)
        listed = c.devices(found)
        assert listed[:2] == [
            {"kind": "mdn", "id": found.devices[0].target[4:], "wave": 1, "state": "delivered", "request_id": "r1", "sent_at": iso_time(1001.0),
             "finished_at": iso_time(1002.5)},
            {"kind": "mdn", "id": found.devices[1].target[4:], "wave": 2, "state": "sent", "request_id": "r1", "sent_at": iso_time(1001.0),
             "finished_at": None}]
        assert listed[2] == {"kind": "mdn", "id": found.devices[2].target[4:], "wave": 2, "state": "pending", "request_id": None, "sent_at": None,
                             "finished_at": None}
        assert c.devices(found, ["sent", "delivered"]) == listed[:2] and c.devices(found, ["timed_out"]) == []
    finally:
        ledger.close()


@pytest.mark.parametrize("stamp, expected", [
    ("2030-01-01T00:00:00Z", 1000.0),  # ThingSpace's time after the record: the record time
    ("1970-01-01T00:05:00Z", 300.0),  # earlier, with a zone: ThingSpace's
    ("1970-01-01T00:05:00+01:00", -3300.0),  # an hour ahead of UTC: 23:05 the day before
    ("1970-01-01T00:05:00", 1000.0),  # no zone: unknown, the record time
    ("yesterday", 1000.0),
    (None, 1000.0),
])
def test_a_reply_time_is_the_earlier_of_thingspaces_with_a_zone_and_the_record(stamp, expected):
    assert c._reply_time({"sent_at": stamp} if stamp else {}, 1000.0) == expected


@pytest.mark.parametrize("abort, message", [
    ([{"failure": "any", "threshold": "x"}], "abort[0].threshold: 'x' is not a percentage such as 10%"),
    ([{"failure": "any"}, {"failure": "any", "threshold": "101%"}],
     "abort[1].threshold: '101%' is neither a count of 1 or more nor a percentage such as 10% (more than 0, at most 100)"),
    ([{"failure": "any", "min_devices": True}], "abort[0].min_devices: True is not a count of 1 or more"),
    ([{"failure": "any", "min_devices": "5"}], "abort[0].min_devices: '5' is not a count of 1 or more"),
])
def test_more_bad_abort_criteria_are_named(abort, message):
    with pytest.raises(ValueError) as caught:
        c.check_abort(abort)
    assert str(caught.value) == message


def test_the_texts_of_a_hand_abort_and_of_selections():
    assert c.abort_text({"by_hand": True, "criterion": None, "gate": None}) == "by hand"
    assert c._selection_text(None) == "none"
    assert c._selection_text({"devices": 3}) == "a device list of 3 device(s)"
    assert c._selection_text({"filters": {"group_name": "all", "account_name": "a"}}) == '{"account_name": "a", "group_name": "all"}'


def test_a_later_step_that_changes_the_policy_records_it_with_a_warning(where):
    ledger = Ledger(where)
    try:
        created = create(ledger)
        step = c.Step({"name": NAME}, None, ledger, SCOPE)
        step._policy(created, {"success_threshold": None, "wave_timeout": 60, "abort": None, "max_per_minute": 60})
        stored = c.load(ledger, SCOPE, NAME)
        assert stored.policy == dict(c.DEFAULT_POLICY, max_per_minute=60, wave_timeout=60) == created.policy
        assert json.loads(ledger.store.rows("SELECT policy FROM campaigns")[0][0]) == stored.policy
        assert step.warnings == ["Campaign apn-7: wave_timeout changed from null to 60 for this and later steps"]
        again = c.Step({"name": NAME}, None, ledger, SCOPE)
        again._policy(stored, {"success_threshold": None, "wave_timeout": 60, "abort": None, "max_per_minute": None})
        assert again.warnings == []
        checked = c.Step({"name": NAME}, None, ledger, SCOPE, check_mode=True)
        checked._policy(stored, {"success_threshold": None, "wave_timeout": 30, "abort": None, "max_per_minute": None})
        assert c.load(ledger, SCOPE, NAME).policy["wave_timeout"] == 60 and len(checked.warnings) == 1
        move(ledger, {}, "completed")
        final = c.Step({"name": NAME}, None, ledger, SCOPE)
        final._policy(c.load(ledger, SCOPE, NAME), {"success_threshold": None, "wave_timeout": 5, "abort": None, "max_per_minute": None})
        assert c.load(ledger, SCOPE, NAME).policy["wave_timeout"] == 60 and final.warnings == []
    finally:
        ledger.close()


def test_every_campaign_is_looked_at_past_one_up_to_date_or_created_otherwise(source, destination):
    for name in ("a", "b", "c", "d"):
        create(source, name=name)
    create(destination, name="a")  # up to date
    assert c.copy_campaigns(source, destination) == (4, 3)
    assert c.names(destination, SCOPE) == ["a", "b", "c", "d"]
    for name in ("e", "f"):
        create(source, name=name)
        create(destination, name=name, message="another hash")
    with pytest.raises(ThingSpaceError) as caught:
        c.copy_campaigns(source, destination)
    assert str(caught.value).startswith("The campaigns e (%s), f (%s) were created with other options" % (SCOPE, SCOPE))


def test_wait_gate_sleeps_for_the_pace_between_batches_and_sends_the_encoding(where, fake):
    """30 devices at 60 a minute: batches of 10, each 10 s after the last (the step's clock moves only by its sleeps);
    the batches carry the campaign's data_encoding."""
    clock = [1000.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    params = dict(name=NAME, account_name=ACCOUNT, devices=[{"kind": "mdn", "id": "55502000%02d" % n} for n in range(30)], devices_file=None,
                  group_name=None, service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="8-bit-UTF-8", waves=["100%"], success=None,
                  reply_pattern=None, reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=60,
                  skip_inactive=None, fail_on_abort=True, state="started", wait="gate", wait_timeout=1)
    ledger = Ledger(where)
    try:
        client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
        result, failure = c.step(params, client, ledger, SCOPE, clock=lambda: clock[0], sleep=sleep)
    finally:
        ledger.close()
    bodies = [body for _method, path, body in fake.calls if path == "/api/m2m/v1/sms"]
    assert failure is None and result["devices_sent"] == 30 and [len(body["deviceIds"]) for body in bodies] == [10, 10, 10]
    assert {body["dataEncoding"] for body in bodies} == {"8-bit-UTF-8"}
    assert sleeps[:2] == [10.0, 10.0] and sum(sleeps[2:]) == 1.0  # then wait_timeout, reading the gate


def test_check_mode_with_wait_gate_returns_at_once(where, fake):
    """A check-mode step previews and reads the gate; it sends nothing, so nothing it waited for could change: no sleep."""
    sleeps = []
    fake.devices.extend({"accountName": ACCOUNT, "deviceIds": [{"kind": "mdn", "id": "55502000%02d" % n}], "groupNames": [], "customFields": [],
                         "carrierInformations": [{"state": "active"}], "extendedAttributes": [{"key": "DeviceId", "value": str(2000 + n)}]}
                        for n in range(3))
    params = dict(name=NAME, account_name=ACCOUNT, devices=[{"kind": "mdn", "id": "55502000%02d" % n} for n in range(3)], devices_file=None,
                  group_name=None, service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="7-bit", waves=["100%"], success=None,
                  reply_pattern=None, reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None,
                  skip_inactive=None, fail_on_abort=True, state="started", wait="gate", wait_timeout=600)
    ledger = Ledger(where, read_only=True)
    try:
        client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
        result, failure = c.step(params, client, ledger, SCOPE, check_mode=True, clock=lambda: 1000.0, sleep=sleeps.append)
    finally:
        ledger.close()
    assert failure is None and sleeps == [] and result["next_wave_preview"]["devices"] == 3
    assert [call for call in fake.calls if call[1] == "/api/m2m/v1/sms"] == []


def test_devices_further_in_the_source_alone_are_merged(source, destination):
    create(source)
    create(destination)
    move(source, {3: ("sent", "r4", 1005.0)})
    assert c.copy_campaigns(source, destination) == (1, 1)
    assert [(d.state, d.request_id, d.sent_at) for d in c.load(destination, SCOPE, NAME).devices][3] == ("sent", "r4", 1005.0)


def test_a_hand_abort_and_a_check_mode_step_with_nothing_due_report_in_full(where, fake):
    params = dict(name=NAME, account_name=ACCOUNT, devices=[{"kind": "mdn", "id": "55503000%02d" % n} for n in range(3)], devices_file=None,
                  group_name=None, service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="7-bit", waves=["100%"], success=None,
                  reply_pattern=None, reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None,
                  skip_inactive=None, fail_on_abort=True, state="started", wait="none", wait_timeout=0)
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
    ledger = Ledger(where)
    try:
        sent, failure = c.step(dict(params), client, ledger, SCOPE, clock=lambda: 1000.0)
        assert failure is None and (sent["campaign"], sent["devices_sent"], sent["changed"]) == (NAME, 3, True)
        checked, failure = c.step(dict(params), client, ledger, SCOPE, check_mode=True, clock=lambda: 1001.0)
        empty = {"wave": 1, "devices": 0, "first": [], "devices_inactive": None, "devices_unknown": []}
        assert failure is None and checked["next_wave_preview"] == empty and not checked["changed"]
        assert checked["campaign_state"] == "waiting"
        aborted, failure = c.step(dict(params, state="aborted"), client, ledger, SCOPE, clock=lambda: 1002.0)
    finally:
        ledger.close()
    assert failure is None and aborted["changed"] and aborted["campaign"] == NAME
    assert aborted["abort_reason"] == {"criterion": None, "gate": None, "device": None, "by_hand": True, "at": iso_time(1002.0)}
    assert aborted["msg"] == "Campaign %s aborted by hand: it sends nothing more" % NAME


def test_a_batch_another_controller_sent_during_the_pace_is_read_in_and_takes_no_pace(where, fake):
    """4 devices at 6 a minute: a batch of 1 every 10 s. While the step sleeps for the pace, another controller sends the
    next due device: the step reads its send, sends the other three, and reserves the pace for those three only."""
    clock, sleeps = [1000.0], []
    targets = c.ordered(NAME, ["mdn:55502000%02d" % n for n in range(4)])
    ledger = Ledger(where)

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds
        if len(sleeps) == 1:  # the other controller's send of the next due device, not yet written into the campaign
            claim, _claimed = ledger.claim(SCOPE, NAME, targets[1:2])
            ledger.settle(claim, "sent", "r-other")

    params = dict(name=NAME, account_name=ACCOUNT, devices=[device_of(target) for target in targets], devices_file=None, group_name=None,
                  service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="7-bit", waves=["100%"], success=None, reply_pattern=None,
                  reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=6, skip_inactive=None,
                  fail_on_abort=True, state="started", wait="gate", wait_timeout=0)
    try:
        client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
        result, failure = c.step(params, client, ledger, SCOPE, clock=lambda: clock[0], sleep=sleep)
        next_send_at = ledger.store.rows("SELECT next_send_at FROM campaigns")[0][0]
    finally:
        ledger.close()
    sent = [device["id"] for _method, path, body in fake.calls if path == "/api/m2m/v1/sms" for device in body["deviceIds"]]
    assert failure is None and sent == [device_of(target)["id"] for target in targets[:1] + targets[2:]]
    assert (result["sent"], result["devices_sent"], sleeps, next_send_at) == (4, 3, [10.0, 10.0], 1030.0)
