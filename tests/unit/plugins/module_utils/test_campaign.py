"""The campaign's state machine (campaign.py): wave arithmetic, order, pacing, gate and abort evaluation, and on both
stores the frozen campaign, forward-only device states, transitions, replies and the pace's reservation."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import Counter

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign as c
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, iso_time

from callback_bodies import ACCOUNT, delivery, device_sms
from fake_api import API, CREDENTIALS

SCOPE, NAME = "http://127.0.0.1:9", "firmware-7"


def mdn(number):
    return "555010%04d" % number


# --- arithmetic ---------------------------------------------------------------------------------------------


def test_waves_are_cumulative_counts_and_percentages_rounded_up():
    assert c.wave_ends([10, "1%", "10%", "100%"], 500) == [10, 10, 50, 500]
    assert c.wave_ends(["1%", "50%", "100%"], 50) == [1, 25, 50]
    assert c.wave_ends([3, "100%"], 2) == [2, 2]  # capped at the selection
    assert c.wave_ends(["33.4%", "100%"], 3) == [2, 3]
    assert c.wave_ends(["100%"], 1) == [1]


@pytest.mark.parametrize("waves, message", [
    ([10, "50%"], 'waves: the last wave reaches 50 of the selection\'s 100 devices; end the list with "100%" so that no device is left out'),
    ([], 'waves: give at least one wave, such as ["100%"]'),
    (["0%", "100%"], "waves[0]: '0%' is neither a count of 1 or more nor a percentage such as 10% (more than 0, at most 100)"),
    ([0, "100%"], "waves[0]: 0 is neither a count of 1 or more nor a percentage such as 10% (more than 0, at most 100)"),
    (["100%", "101%"], "waves[1]: '101%' is neither a count of 1 or more nor a percentage such as 10% (more than 0, at most 100)"),
    (["ten"], "waves[0]: 'ten' is neither a count of 1 or more nor a percentage such as 10% (more than 0, at most 100)"),
])
def test_bad_waves_are_named(waves, message):
    with pytest.raises(ValueError) as caught:
        c.wave_ends(waves, 100)
    assert str(caught.value) == message


def test_the_order_is_a_stable_hash_of_name_and_device_not_the_order_given():
    targets = ["mdn:%s" % mdn(n) for n in range(200)]
    order = c.ordered(NAME, targets)
    assert sorted(order) == targets and order != targets
    assert c.ordered(NAME, list(reversed(targets))) == order
    assert c.ordered("another", targets) != order
    # A canary of 10 is spread over the list, not its first rows.
    assert max(targets.index(target) for target in order[:10]) > 50


def test_pacing_spreads_batches_and_idle_time_earns_no_credit():
    assert c.batch_limit(None) == 10000 and c.batch_limit(600) == 100 and c.batch_limit(3) == 1 and c.batch_limit(10 ** 7) == 10000
    assert c.pace(0.0, 1000.0, 100, 600) == (True, 1010.0)  # an idle campaign starts now, not in the past
    assert c.pace(1010.0, 1005.0, 100, 600) == (False, 1010.0)
    assert c.pace(1010.0, 1010.0, 100, 600) == (True, 1020.0)
    assert c.pace(1010.0, 1012.5, 50, 600) == (True, 1017.5)
    assert c.pace(5.0, 0.0, 100, None) == (True, 5.0)
    # Over ten minutes of batches as fast as the pace allows, exactly max_per_minute per minute.
    now, next_at, sent = 0.0, 0.0, 0
    while now < 600:
        go, next_at = c.pace(next_at, now, c.batch_limit(600), 600)
        sent += c.batch_limit(600) if go else 0
        now = max(now + 0.5, next_at if not go else now)
    assert sent == 6000


def test_a_gate_passes_fails_or_stays_open():
    assert c.gate(Counter(["delivered", "delivered", "sent"]), "60%", "delivered") == ("passed", 2, 2)
    assert c.gate(Counter(["delivered", "sent", "sent"]), "60%", "delivered") == ("open", 2, 1)
    assert c.gate(Counter(["delivered", "pending", "delivered"]), "60%", "delivered") == ("open", 2, 2)  # not all sent yet
    assert c.gate(Counter(["delivered", "undelivered", "timed_out"]), "60%", "delivered") == ("failed", 2, 1)
    assert c.gate(Counter(["delivered", "delivered", "delivered"]), "100%", "replied") == ("open", 3, 0)
    assert c.gate(Counter(["replied", "delivered", "reply_error"]), "2", "replied") == ("open", 2, 1)  # delivered may still reply
    assert c.gate(Counter(["replied", "undelivered", "reply_error"]), "2", "replied") == ("failed", 2, 1)
    assert c.gate(Counter(["replied", "replied", "reply_error"]), "2", "replied") == ("passed", 2, 2)
    assert c.gate(Counter([]), "100%", "delivered") == ("passed", 0, 0)


def test_an_abort_criterion_triggers_on_exactly_the_device_that_crosses_it():
    outcomes = [("a", "delivered"), ("b", "undelivered"), ("c", "delivered"), ("d", "delivered"), ("e", "expired"), ("f", "undelivered")]
    undelivered = {"failure": "undelivered", "threshold": "30%", "min_devices": 4}
    # b: 1 of 2 is 50 % but fewer than 4 finished; d: 1 of 4 is 25 %; e: 1 of 5; f: 2 of 6 = 33 % ≥ 30 %.
    assert c.crossing([undelivered], outcomes) == (undelivered, 5, 6, 2)
    every = {"failure": "any", "threshold": "30%", "min_devices": 4}
    assert c.crossing([every], outcomes) == (every, 4, 5, 2)  # e: 2 of 5 = 40 %
    assert c.crossing([undelivered, every], outcomes)[1] == 4  # the earliest device of all criteria
    assert c.crossing([dict(undelivered, threshold="40%")], outcomes) is None
    assert c.crossing([{"failure": "rejected", "threshold": "1%", "min_devices": 1}], outcomes) is None


@pytest.mark.parametrize("abort, message", [
    ([{"failure": "lost"}], "abort[0].failure: 'lost' is not one of undelivered, expired, rejected, timed_out, reply_error, refused, any"),
    ([{"failure": "any", "threshold": "5"}], "abort[0].threshold: '5' is not a percentage such as 10%"),
    ([{"failure": "any", "threshold": "5%", "min_devices": 0}], "abort[0].min_devices: 0 is not a count of 1 or more"),
    ([{"failure": "any", "when": 1}], "abort[0]: give {failure, threshold, min_devices}, failure one of undelivered, expired, rejected, timed_out, "
                                      "reply_error, refused, any"),
])
def test_bad_abort_criteria_are_named(abort, message):
    with pytest.raises(ValueError) as caught:
        c.check_abort(abort)
    assert str(caught.value) == message


def test_abort_criteria_take_their_defaults():
    assert c.check_abort([{"failure": "expired"}]) == [{"failure": "expired", "threshold": "100%", "min_devices": 1}]


# --- the store ---------------------------------------------------------------------------------------------


def make(where, count, waves=("100%",), success="delivered", **policy):
    ledger = Ledger(where)
    definition = dict(c.DEFAULT_DEFINITION, waves=list(waves), success=success, message="hash", data_encoding="7-bit", selection={"devices": count})
    if "reply_error_pattern" in policy:
        definition["reply_error_pattern"] = policy.pop("reply_error_pattern")
    campaign = c._create(ledger, SCOPE, NAME, ACCOUNT, definition, dict(c.DEFAULT_POLICY, **policy),
                         ["mdn:%s" % mdn(n) for n in range(count)], time.time(), False)
    return ledger, campaign


def send(ledger, campaign, targets, request_id):
    claim, claimed = ledger.claim(SCOPE, campaign.name, list(targets))
    assert claimed == list(targets)
    ledger.settle(claim, "sent", request_id)


def confirm(where, target, state="Delivered", request_id="r1"):
    recorder = StoreRecorder(where)
    recorder.record([callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery(state, target.split(":")[1]), requestId=request_id))])
    recorder.close()


def reply(where, target, text, timestamp="2030-01-01T00:00:00+00:00"):
    body = device_sms(text, timestamp)
    body["deviceIds"] = [{"kind": "Mdn", "id": target.split(":")[1]}]
    recorder = StoreRecorder(where)
    recorder.record([callback_event(SMS_SERVICE, ACCOUNT, body)])
    recorder.close()


def step(ledger, now=None):
    """Observe, decide and save as a step does; the campaign as stored after it."""
    campaign = c.load(ledger, SCOPE, NAME)
    now = time.time() if now is None else now
    c.observe(ledger, campaign, now)
    c.decide(campaign)
    c._save(ledger, campaign, now)
    return c.load(ledger, SCOPE, NAME)


def test_a_campaign_is_frozen_in_order_with_its_waves_and_created_once(where):
    ledger, campaign = make(where, 20, waves=(2, "50%", "100%"))
    assert (campaign.state, campaign.wave, campaign.ends, campaign.devices_total) == ("running", 1, [2, 10, 20], 20)
    assert [device.target for device in campaign.devices] == c.ordered(NAME, ["mdn:%s" % mdn(n) for n in range(20)])
    assert [device.wave for device in campaign.devices] == [1] * 2 + [2] * 8 + [3] * 10
    assert {device.state for device in campaign.devices} == {"pending"}
    # A second controller creating it at the same time gets the first one's campaign, devices and order.
    again = c._create(ledger, SCOPE, NAME, ACCOUNT, campaign.definition, campaign.policy, ["mdn:1"], time.time(), False)
    assert again.id == campaign.id and [device.target for device in again.devices] == [device.target for device in campaign.devices]
    assert c.names(ledger, SCOPE) == [NAME] and c.load(ledger, "http://127.0.0.1:8", NAME) is None
    ledger.close()


def test_check_mode_reads_a_campaign_and_creates_none(where):
    make(where, 3)[0].close()
    ledger = Ledger(where, read_only=True)
    assert [device.state for device in c.load(ledger, SCOPE, NAME).devices] == ["pending"] * 3
    preview = c._create(ledger, SCOPE, "other", ACCOUNT, dict(c.DEFAULT_DEFINITION), dict(c.DEFAULT_POLICY), ["mdn:1"], time.time(), True)
    assert preview.id is None and c.load(ledger, SCOPE, "other") is None
    ledger.close()


def test_waves_open_one_after_another_and_the_last_gate_completes(where):
    ledger, campaign = make(where, 4, waves=(1, "100%"))
    first = campaign.devices[0].target
    send(ledger, campaign, [first], "r1")
    campaign = step(ledger)
    assert (campaign.state, campaign.wave, campaign.devices[0].state) == ("waiting", 1, "sent")
    confirm(where, first)
    campaign = step(ledger)
    assert (campaign.state, campaign.wave, campaign.devices[0].state) == ("running", 2, "delivered")
    rest = [device.target for device in campaign.devices[1:]]
    send(ledger, campaign, rest, "r2")
    assert step(ledger).state == "waiting"
    for target in rest:
        confirm(where, target, request_id="r2")
    campaign = step(ledger)
    assert (campaign.state, campaign.wave) == ("completed", 2)
    assert c.figures(campaign)["delivered"] == 4 and [wave["gate"]["state"] for wave in c.figures(campaign)["waves"]] == ["passed", "passed"]
    ledger.close()


def test_device_states_only_move_forward_whoever_writes(where):
    ledger, campaign = make(where, 2)
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets, "r1")
    confirm(where, targets[0], "Undelivered")
    stale = c.load(ledger, SCOPE, NAME)  # a second controller's reading, before the callbacks
    assert step(ledger).devices[0].state == "undelivered"
    confirm(where, targets[0], "Delivered")  # a late, contradicting callback
    campaign = step(ledger)
    assert campaign.devices[0].state == "undelivered"
    # The stale reading writes sent over undelivered: the store keeps undelivered.
    stale.devices[0].advance("sent", "r1", time.time())
    c._save(ledger, stale, time.time())
    assert c.load(ledger, SCOPE, NAME).devices[0].state == "undelivered"
    ledger.close()


def test_a_gate_that_can_no_longer_pass_aborts_and_names_the_counts(where):
    ledger, campaign = make(where, 4, waves=(2, "100%"), success_threshold="100%")
    first = [device.target for device in campaign.devices[:2]]
    send(ledger, campaign, first, "r1")
    confirm(where, first[0], "Expired")
    campaign = step(ledger)
    assert campaign.state == "aborted"
    # It names when: the failure after which too few devices could still succeed.
    at = iso_time(campaign.devices[0].finished_at if campaign.devices[0].state == "expired" else campaign.devices[1].finished_at)
    assert campaign.abort_reason == {"criterion": None, "gate": 1, "device": None, "needed": 2, "succeeded": 0, "finished": 1, "failed": 1, "at": at}
    assert c.abort_text(campaign.abort_reason) == "wave 1's gate can no longer pass: 0 of its devices succeeded, 2 needed (success_threshold), 1 failed"
    # Final: later successes change the devices, never the campaign's state.
    confirm(where, first[1])
    campaign = step(ledger)
    assert campaign.state == "aborted" and campaign.devices[1].state == "delivered"
    ledger.close()


@pytest.mark.parametrize("needed, at", [("3", 50.0), ("4", 30.0), ("5", 20.0)])
def test_a_gate_abort_is_placed_at_the_failure_after_which_the_gate_could_not_pass(needed, at):
    outcomes = [("replied", 10.0), ("undelivered", 30.0), ("expired", 20.0), ("timed_out", 50.0), ("sent", None)]
    devices = [c.Device("mdn:%s" % mdn(n), n, 1, state, "r1", 1.0, finished_at) for n, (state, finished_at) in enumerate(outcomes)]
    row = (1, SCOPE, NAME, ACCOUNT, json.dumps(dict(c.DEFAULT_DEFINITION, success="replied")), json.dumps(dict(c.DEFAULT_POLICY, success_threshold=needed)),
           5, "[5]", "waiting", 1, None, 0.0, 0.0)
    campaign = c.Campaign(row, devices)
    c.decide(campaign)
    # Failures at t=20, 30, 50 of 5 devices: 3 needed, after the third only 2 could succeed; 4 needed, after the second.
    assert (campaign.state, campaign.abort_reason["gate"], campaign.abort_reason["at"]) == ("aborted", 1, iso_time(at))


def test_an_abort_names_the_device_that_crossed_the_threshold(where):
    ledger, campaign = make(where, 6, success_threshold="1", abort=[{"failure": "undelivered", "threshold": "40%", "min_devices": 3}])
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets, "r1")
    for target, state in zip(targets, ["Delivered", "Undelivered", "Delivered", "Delivered", "Undelivered", "Undelivered"]):
        confirm(where, target, state)
    campaign = step(ledger)
    # 1/2, 1/3, 1/4, 2/5 = 40 % at the fifth device to finish.
    assert campaign.state == "aborted" and campaign.abort_reason["device"] == {"kind": "mdn", "id": targets[4].split(":")[1]}
    assert (campaign.abort_reason["finished"], campaign.abort_reason["failed"]) == (5, 2)
    ledger.close()


def test_devices_without_an_outcome_time_out_after_the_wave_timeout(where):
    ledger, campaign = make(where, 3, wave_timeout=60, success_threshold="1")
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets, "r1")
    confirm(where, targets[0])
    last = max(at for _state, _request_id, at in ledger.send_rows(SCOPE, NAME).values())
    assert step(ledger, now=last + 59).state == "completed"  # the gate passed with one success: nothing times out
    ledger.close()
    ledger, campaign = make(str(where) + "2" if isinstance(where, str) else where._replace(schema=where.schema + "b"), 3, wave_timeout=60)
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets, "r1")
    last = max(at for _state, _request_id, at in ledger.send_rows(SCOPE, NAME).values())
    assert step(ledger, now=last + 59).state == "waiting"
    campaign = step(ledger, now=last + 60)
    assert [device.state for device in campaign.devices] == ["timed_out"] * 3 and campaign.devices[0].finished_at == last + 60
    assert campaign.state == "aborted" and campaign.abort_reason["gate"] == 1
    ledger.close()


def test_a_reply_counts_for_the_latest_campaign_send_before_it(where):
    ledger, campaign = make(where, 2, success="replied", reply_error_pattern="^ERR")
    targets = [device.target for device in campaign.devices]
    reply(where, targets[0], "OK early")  # before the send: it does not count
    send(ledger, campaign, targets, "r1")
    assert {device.state for device in step(ledger).devices} == {"sent"}
    reply(where, targets[0], "OK")
    reply(where, targets[1], "ERR 7")
    campaign = step(ledger)
    assert [device.state for device in campaign.devices] == ["replied", "reply_error"]
    ledger.close()


def test_a_reply_to_a_later_campaign_does_not_count_for_an_earlier_one(where):
    ledger, first = make(where, 1, success="replied")
    target = first.devices[0].target
    send(ledger, first, [target], "r1")
    step(ledger)
    other = c._create(ledger, SCOPE, "other", ACCOUNT, dict(first.definition), first.policy, [target], time.time(), False)
    claim, _claimed = ledger.claim(SCOPE, "other", [target])
    ledger.settle(claim, "sent", "r9")
    c.observe(ledger, other, time.time())
    c._save(ledger, other, time.time())
    reply(where, target, "OK")
    assert step(ledger).devices[0].state == "sent"
    other = c.load(ledger, SCOPE, "other")
    c.observe(ledger, other, time.time())
    assert other.devices[0].state == "replied"
    ledger.close()


def reply_as(where, identifiers, text):
    """A device SMS naming the device by ``identifiers`` (``kind:id``)."""
    body = dict(device_sms(text, "2030-01-01T00:00:00+00:00"), deviceIds=[{"kind": target.split(":")[0].capitalize(), "id": target.split(":")[1]}
                                                                          for target in identifiers])
    recorder = StoreRecorder(where)
    recorder.record([callback_event(SMS_SERVICE, ACCOUNT, body)])
    recorder.close()


def test_a_reading_of_the_moving_devices_gives_the_figures_of_a_whole_reading(where):
    ledger, campaign = make(where, 8, waves=(4, "100%"), success_threshold="50%", abort=[{"failure": "any", "threshold": "60%", "min_devices": 4}])
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets[:4], "r1")
    for target, state in zip(targets[:3], ["Delivered", "Undelivered", "Delivered"]):
        confirm(where, target, state)
    # The fourth device's confirmation lists its MSISDN too: a reply naming only that is matched through the deliveries.
    recorder = StoreRecorder(where)
    recorder.record([callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery("Delivered", targets[3].split(":")[1]), requestId="r1",
                                                                    deviceIds=[{"kind": "Mdn", "id": targets[3].split(":")[1]},
                                                                               {"kind": "Msisdn", "id": "1" + targets[3].split(":")[1]}]))])
    recorder.close()
    step(ledger)  # the delivered devices are settled in the store

    def both():
        whole, moving = c.reading(ledger, SCOPE, NAME), c.reading(ledger, SCOPE, NAME, whole=False)
        assert len(moving.devices) < len(whole.devices) and c.figures(moving) == c.figures(whole)
        return c.figures(whole)

    assert (both()["wave"], both()["delivered"], both()["pending"]) == (2, 3, 4)
    reply_as(where, [targets[0]], "OK")  # a reply naming a settled delivered device by the identifier it is held by
    assert (both()["delivered"], both()["replied"]) == (2, 1)
    reply_as(where, ["msisdn:1" + targets[3].split(":")[1]], "OK")  # by another identifier only
    assert (both()["delivered"], both()["replied"]) == (1, 2)
    reply_as(where, ["mdn:5550999999"], "OK")  # a device outside the campaign
    assert both()["replied"] == 2
    send(ledger, campaign, targets[4:], "r2")
    for target in targets[4:7]:
        confirm(where, target, "Expired", "r2")
    assert both()["campaign_state"] == "aborted"  # 4 of 6 finished devices failed, at the sixth: 67 % (abort: any, 60 %)
    assert c.reading(ledger, SCOPE, NAME, whole=False).abort_reason == c.reading(ledger, SCOPE, NAME).abort_reason
    ledger.close()


def test_the_pace_is_reserved_in_the_store_for_every_controller(where):
    ledger, campaign = make(where, 1000, max_per_minute=600)
    assert c._reserve(ledger, campaign, 100, 1000.0) == (True, 1010.0)
    other = Ledger(where)  # another controller
    assert c._reserve(other, c.load(other, SCOPE, NAME), 100, 1005.0) == (False, 1010.0)
    assert c._reserve(other, c.load(other, SCOPE, NAME), 100, 1010.0) == (True, 1020.0)
    other.close()
    ledger.close()


def test_current_reads_what_a_step_would_decide_and_writes_nothing(where):
    ledger, campaign = make(where, 2, waves=(1, "100%"))
    send(ledger, campaign, [campaign.devices[0].target], "r1")
    confirm(where, campaign.devices[0].target)
    ledger.close()
    reader = Ledger(where, read_only=True)
    now = c.reading(reader, SCOPE, NAME)
    assert (now.state, now.wave, now.devices[0].state) == ("running", 2, "delivered")
    assert c.figures(now)["delivered"] == 1 and c.devices(now, ["delivered"])[0]["kind"] == "mdn"
    assert (c.load(reader, SCOPE, NAME).wave, c.load(reader, SCOPE, NAME).devices[0].state) == (1, "pending")
    assert c.reading(reader, SCOPE, "nothing") is None
    reader.close()


def test_two_controllers_stepping_at_once_send_each_device_once_and_report_the_same(where, fake):
    params = dict(name=NAME, account_name=ACCOUNT, devices=[{"kind": "mdn", "id": mdn(n)} for n in range(40)], devices_file=None, group_name=None,
                  service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="7-bit", waves=["100%"], success=None, reply_pattern=None,
                  reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None, skip_inactive=None, fail_on_abort=True,
                  state="started", wait="none", wait_timeout=0)
    results, start = [], threading.Barrier(2)

    def controller():
        ledger = Ledger(where)
        client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
        start.wait()
        try:
            results.append(c.step(dict(params), client, ledger, SCOPE)[0])
        finally:
            ledger.close()

    threads = [threading.Thread(target=controller) for _thread in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    sent = [device["id"] for _method, path, body in fake.calls if path == "/api/m2m/v1/sms" for device in body["deviceIds"]]
    assert sorted(sent) == [mdn(n) for n in range(40)]
    assert sorted(result["devices_sent"] for result in results) == [0, 40]
    assert {(result["campaign_state"], result["sent"], result["pending"]) for result in results} == {("waiting", 40, 0)}


# --- the counts in the store (schema 7) ----------------------------------------------------------------------


def counts(ledger, campaign_id):
    """(the counts the store holds, the devices counted from their rows): (wave, state) → devices, without zeros."""
    held = {(wave, state): devices for wave, state, devices, _first, _last in ledger.store.rows(c._COUNTS, (campaign_id,)) if devices}
    counted = ledger.store.rows("SELECT wave, state, count(*) FROM campaign_devices WHERE campaign_id = ? GROUP BY wave, state", (campaign_id,))
    rows = {(wave, state): devices for wave, state, devices in counted}
    return held, rows


def test_more_devices_than_one_statement_takes_are_written_whole_in_the_campaign_s_order(where):
    """More devices than one INSERT (200 rows on SQLite) and one list of positions (500) take: each device is stored once,
    by its position, and the devices moved together are written whole."""
    ledger, campaign = make(where, 1201, waves=(700, "100%"))
    rows = ledger.store.rows("SELECT target, position, wave, state FROM campaign_devices WHERE campaign_id = ?", (campaign.id,))
    assert sorted(rows, key=lambda row: row[1]) == [(device.target, device.position, device.wave, "pending") for device in campaign.devices]
    for device in campaign.devices[:700]:
        device.advance("sent", "r1", 1000.0)
    c._save(ledger, campaign, 1001.0)
    assert counts(ledger, campaign.id) == ({(1, "sent"): 700, (2, "pending"): 501},) * 2
    assert ledger.store.rows("SELECT min(position), max(position) FROM campaign_devices WHERE state = 'sent' AND request_id = 'r1'") == [(0, 699)]
    ledger.close()


def test_the_store_counts_the_devices_per_wave_and_state_whoever_writes_them(where):
    ledger, campaign = make(where, 6, waves=(2, "100%"))
    assert counts(ledger, campaign.id) == ({(1, "pending"): 2, (2, "pending"): 4},) * 2
    first = [device.target for device in campaign.devices[:2]]
    send(ledger, campaign, first[:1], "r1")
    send(ledger, campaign, first[1:], "r1")
    stale = c.load(ledger, SCOPE, NAME)  # another controller's reading, before this one's step
    campaign = step(ledger)
    sent_at = {device.target: device.sent_at for device in campaign.devices[:2]}
    confirm(where, first[0])
    step(ledger)
    assert counts(ledger, campaign.id) == ({(1, "delivered"): 1, (1, "sent"): 1, (2, "pending"): 4},) * 2
    # The other controller writes what it saw: over a finished device, a state of a higher rank is not written and it takes
    # the store's; over a sent one, delivered is, with the send time the store holds.
    stale.by_target[first[0]].advance("timed_out", finished_at=time.time())
    stale.by_target[first[1]].advance("sent", "r1", sent_at[first[1]])
    c._save(ledger, stale, time.time())
    assert counts(ledger, campaign.id) == ({(1, "delivered"): 1, (1, "sent"): 1, (2, "pending"): 4},) * 2
    assert [(stale.by_target[target].state, stale.by_target[target].stored) for target in first] == [("delivered", "delivered"), ("sent", "sent")]
    assert stale.moved == [] and not stale.by_target[first[0]].dirty
    kept = {(wave, state): (first_at, last_at) for wave, state, _devices, first_at, last_at in ledger.store.rows(c._COUNTS, (campaign.id,))}
    assert kept[1, "delivered"] == (sent_at[first[0]],) * 2
    late = c.load(ledger, SCOPE, NAME)
    late.by_target[first[1]].stored = late.by_target[first[1]].state = "pending"  # as read before its send was written
    late.by_target[first[1]].sent_at = None
    late.by_target[first[1]].advance("delivered", finished_at=time.time())
    c._save(ledger, late, time.time())
    assert counts(ledger, campaign.id) == ({(1, "delivered"): 2, (2, "pending"): 4},) * 2
    # The first and last sends of the devices that entered each state.
    kept = {(wave, state): (first_at, last_at) for wave, state, _devices, first_at, last_at in ledger.store.rows(c._COUNTS, (campaign.id,))}
    assert sent_at[first[0]] < sent_at[first[1]]
    assert kept[1, "delivered"] == kept[1, "sent"] == (sent_at[first[0]], sent_at[first[1]]) and kept[2, "pending"] == (None, None)
    assert c.load(ledger, SCOPE, NAME).counts == {1: {"delivered": [2, sent_at[first[0]], sent_at[first[1]]]}, 2: {"pending": [4, None, None]}}
    ledger.close()


def test_a_step_holds_a_later_wave_once_current_and_again_when_another_controller_sent_it(where):
    ledger, campaign = make(where, 20, waves=(2, "50%", "100%"))
    targets = [device.target for device in campaign.devices]
    mine = c.load(ledger, SCOPE, NAME, whole=False)
    assert [device.target for device in mine.devices] == targets[:2] and mine.held == 1
    assert c.figures(mine) == c.figures(c.load(ledger, SCOPE, NAME))  # the later waves counted, not read
    send(ledger, campaign, targets[:2], "r1")
    for target in targets[:2]:
        confirm(where, target)
    c.observe(ledger, mine, time.time())
    c._save(ledger, mine, time.time(), deciding=True)
    assert (mine.wave, mine.held, mine.synced) == (2, 1, True)

    def other_sends(sent, delivered=()):  # another controller sends devices of wave 2 and writes what it finds
        send(ledger, campaign, sent, "r2")
        for target in delivered:
            confirm(where, target, request_id="r2")
        other = c.load(ledger, SCOPE, NAME, whole=False)
        c.observe(ledger, other, time.time())
        c._save(ledger, other, time.time(), deciding=True)
        mine.counts = c._counted(ledger.store.rows(c._COUNTS, (mine.id,)))  # as this step's next evaluation reads them

    other_sends(targets[2:5], targets[2:3])
    c.hold(ledger, mine)  # wave 2 is current: its devices that may still move are read, not the delivered one
    assert [device.target for device in mine.wave_devices(2)] == targets[3:10] and (mine.held, mine.synced) == (2, False)
    assert [device.state for device in mine.wave_devices(2)] == ["sent"] * 2 + ["pending"] * 5 and mine.held_pending[2] == 5
    other_sends(targets[5:7])
    c.hold(ledger, mine)  # the store counts 3 pending of the 5 held as pending: the wave is read again
    assert [device.state for device in mine.wave_devices(2)] == ["sent"] * 4 + ["pending"] * 3 and mine.held_pending[2] == 3
    assert [device.request_id for device in mine.wave_devices(2)[:4]] == ["r2"] * 4
    assert c.figures(mine) == c.figures(c.reading(ledger, SCOPE, NAME))
    c.hold(ledger, mine)  # nothing new: nothing read
    assert len(mine.devices) == 9
    ledger.close()


def _as_schema_8(where):
    """Make the ledger at ``where`` what schema 8 was: a campaign's devices keyed by target, with a unique index of positions."""
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.executescript(
            "ALTER TABLE campaign_devices RENAME TO keyed_by_position; DROP INDEX campaign_devices_target; "
            "CREATE TABLE campaign_devices (campaign_id INTEGER NOT NULL REFERENCES campaigns (id), target TEXT NOT NULL, position INTEGER NOT NULL, "
            "wave INTEGER NOT NULL, state TEXT NOT NULL, request_id TEXT, sent_at REAL, finished_at REAL, PRIMARY KEY (campaign_id, target)) WITHOUT ROWID; "
            "CREATE INDEX campaign_devices_target ON campaign_devices (target); "
            "CREATE UNIQUE INDEX campaign_devices_position ON campaign_devices (campaign_id, position); "
            "INSERT INTO campaign_devices SELECT * FROM keyed_by_position ORDER BY target; DROP TABLE keyed_by_position; PRAGMA user_version = 8")
        db.close()
        return
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        db.execute('ALTER TABLE "%s".campaign_devices DROP CONSTRAINT campaign_devices_pkey, ADD PRIMARY KEY (campaign_id, target), ADD CONSTRAINT '
                   'campaign_devices_campaign_id_position_key UNIQUE (campaign_id, position); UPDATE "%s".schema_version SET version = 8'
                   % (where.schema, where.schema))


def _device_keys(where):
    """(the columns of campaign_devices' primary key, its other indexes' names)."""
    if isinstance(where, str):
        db = sqlite3.connect(where)
        try:
            key = [row[1] for row in sorted(db.execute("PRAGMA table_info(campaign_devices)"), key=lambda row: row[5]) if row[5]]
            return key, sorted(row[1] for row in db.execute("PRAGMA index_list(campaign_devices)") if row[3] != "pk")
        finally:
            db.close()
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        key = [row[0] for row in db.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                                            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                                            ('"%s".campaign_devices' % where.schema,))]
        others = db.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
                            "AND NOT i.indisprimary ORDER BY 1", ('"%s".campaign_devices' % where.schema,))
        return key, [row[0] for row in others]


def test_a_schema_8_ledger_is_read_in_check_mode_and_a_run_keys_its_campaigns_devices_by_position(where, fake):
    ledger, campaign = make(where, 6, waves=(2, "100%"))
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets[:2], "r1")
    confirm(where, targets[0])
    step(ledger)
    stored = sorted(ledger.store.rows("SELECT %s FROM campaign_devices" % c._COLUMNS))
    ledger.close()
    _as_schema_8(where)
    assert _device_keys(where) == (["campaign_id", "target"], ["campaign_devices_campaign_id_position_key" if not isinstance(where, str) else
                                                               "campaign_devices_position", "campaign_devices_target"])
    reader = Ledger(where, read_only=True)
    found = c.reading(reader, SCOPE, NAME, whole=False)
    assert c.figures(found) == c.figures(c.reading(reader, SCOPE, NAME)) and (c.figures(found)["delivered"], c.figures(found)["sent"]) == (1, 2)
    reader.close()
    ledger = Ledger(where)
    assert _device_keys(where) == (["campaign_id", "position"], ["campaign_devices_target"])
    assert sorted(ledger.store.rows("SELECT %s FROM campaign_devices" % c._COLUMNS)) == stored
    assert counts(ledger, campaign.id) == ({(1, "delivered"): 1, (1, "sent"): 1, (2, "pending"): 4},) * 2
    # The campaign goes on: its first wave passed, the second wave's four devices are sent once.
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
    params = dict(name=NAME, account_name=None, devices=None, devices_file=None, group_name=None, service_plan=None, custom_fields=None,
                  sms_message="FW=7", data_encoding="7-bit", waves=None, success=None, reply_pattern=None, reply_error_pattern=None,
                  success_threshold="50%", wave_timeout=None, abort=None, max_per_minute=None, skip_inactive=False, fail_on_abort=True,
                  state="started", wait="none", wait_timeout=0)
    ledger.store.execute("UPDATE campaigns SET definition = ?", (json.dumps(dict(campaign.definition, message=hashlib.sha256(b"FW=7").hexdigest())),))
    result, failure = c.step(params, client, ledger, SCOPE)
    sent = [device["id"] for _method, path, body in fake.calls if path == "/api/m2m/v1/sms" for device in body["deviceIds"]]
    assert failure is None and sorted(sent) == sorted(target.split(":")[1] for target in targets[2:])
    assert (result["wave"], result["devices_sent"], result["sent"], result["pending"]) == (2, 4, 6, 0)
    assert counts(ledger, campaign.id) == ({(1, "delivered"): 1, (1, "sent"): 1, (2, "sent"): 4},) * 2
    ledger.close()


def test_a_send_recorded_by_a_controller_that_died_before_writing_the_campaign_is_not_sent_again(where, fake):
    ledger = Ledger(where)
    definition = dict(c.DEFAULT_DEFINITION, message=hashlib.sha256(b"FW=7").hexdigest(), data_encoding="7-bit", selection={"devices": 4})
    campaign = c._create(ledger, SCOPE, NAME, None, definition, dict(c.DEFAULT_POLICY), ["mdn:%s" % mdn(n) for n in range(4)], time.time(), False)
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets[:2], "r-dead")  # recorded under the campaign's name; the campaign's rows still pending
    assert counts(ledger, campaign.id)[0] == {(1, "pending"): 4}
    ledger.close()
    ledger = Ledger(where)
    assert (c.figures(c.reading(ledger, SCOPE, NAME, whole=False))["sent"], c.figures(c.reading(ledger, SCOPE, NAME))["sent"]) == (2, 2)
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
    params = dict(name=NAME, account_name=None, devices=None, devices_file=None, group_name=None, service_plan=None, custom_fields=None,
                  sms_message="FW=7", data_encoding="7-bit", waves=None, success=None, reply_pattern=None, reply_error_pattern=None,
                  success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None, skip_inactive=False, fail_on_abort=True,
                  state="started", wait="none", wait_timeout=0)
    result, failure = c.step(params, client, ledger, SCOPE)
    sent = [device["id"] for _method, path, body in fake.calls if path == "/api/m2m/v1/sms" for device in body["deviceIds"]]
    assert failure is None and sorted(sent) == sorted(target.split(":")[1] for target in targets[2:])
    assert (result["devices_sent"], result["sent"], result["pending"], result["campaign_state"]) == (2, 4, 0, "waiting")
    assert counts(ledger, campaign.id) == ({(1, "sent"): 4},) * 2
    ledger.close()


def test_a_wave_times_out_on_sends_a_reading_found_before_any_step_wrote_them(where):
    ledger, campaign = make(where, 3, wave_timeout=60)
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets, "r1")
    last = max(at for _state, _request_id, at in ledger.send_rows(SCOPE, NAME).values())
    ledger.close()
    reader = Ledger(where, read_only=True)
    for whole in (True, False):
        assert c.reading(reader, SCOPE, NAME, last + 59, whole).state == "waiting"
        found = c.reading(reader, SCOPE, NAME, last + 60, whole)
        assert (found.state, c.figures(found)["failures"]["timed_out"]) == ("aborted", 3)
    reader.close()


def _as_schema_6(where):
    """Make the ledger at ``where`` what schema 6 was: campaigns without their counts."""
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.executescript("DROP TABLE campaign_counts; PRAGMA user_version = 6")
        db.close()
        return
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        db.execute('DROP TABLE "%s".campaign_counts; UPDATE "%s".schema_version SET version = 6' % (where.schema, where.schema))


def test_a_schema_6_ledger_is_read_by_counting_in_check_mode_and_counted_once_by_a_run(where):
    ledger, campaign = make(where, 6, waves=(2, "100%"))
    targets = [device.target for device in campaign.devices]
    send(ledger, campaign, targets[:2], "r1")
    confirm(where, targets[0])
    step(ledger)
    ledger.close()
    _as_schema_6(where)
    reader = Ledger(where, read_only=True)
    assert reader.store.rows("SELECT count(*) FROM campaign_counts") == []  # no table
    moving = c.reading(reader, SCOPE, NAME, whole=False)
    assert c.figures(moving) == c.figures(c.reading(reader, SCOPE, NAME)) and (c.figures(moving)["delivered"], c.figures(moving)["sent"]) == (1, 2)
    reader.close()
    ledger = Ledger(where)
    held, rows = counts(ledger, campaign.id)
    assert held == rows == {(1, "delivered"): 1, (1, "sent"): 1, (2, "pending"): 4}
    assert ledger.store.rows("SELECT last_sent_at FROM campaign_counts WHERE wave = 1 AND state = 'sent'")[0][0] == max(
        at for _state, _request_id, at in ledger.send_rows(SCOPE, NAME).values())
    ledger.close()
