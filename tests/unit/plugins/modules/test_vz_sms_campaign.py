"""vz_sms_campaign against the fake API, with delivery callbacks and replies recorded in the ledger as the event source
records them: waves gated by delivery, exactly once, the frozen selection and message, abort, pause, pacing, check
mode, and the failures before any request."""

from __future__ import annotations

import threading
import time
from collections import Counter

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_campaign

from callback_bodies import LISTENER
from fake_api import ACCOUNT, API

DEVICES = [{"kind": "mdn", "id": "555100%04d" % n} for n in range(20)]
CAMPAIGN = dict(name="apn-2026-12", account_name=ACCOUNT, devices=DEVICES, sms_message="APN=iot.example", waves=[2, "50%", "100%"])
NEXT = dict(name="apn-2026-12", sms_message="APN=iot.example")


def sms_bodies(fake):
    return [body for method, path, body in fake.calls if method == "POST" and path == "/api/m2m/v1/sms"]


def sent_devices(fake):
    return [device["id"] for body in sms_bodies(fake) for device in body["deviceIds"]]


def ledger_sends(state_dir, name=CAMPAIGN["name"]):
    ledger = Ledger(str(state_dir / "ledger.sqlite3"), read_only=True)
    try:
        return ledger.sends(service_scope(API), name)
    finally:
        ledger.close()


def callbacks_arrive(state_dir, states):
    """Record, as the callbacks source would, a delivery confirmation per device id in ``states`` ({mdn: state}), with
    the request id the ledger holds for it."""
    sends = ledger_sends(state_dir)
    events = [callback_event(DELIVERY_SERVICE, ACCOUNT, dict(LISTENER, requestId=sends["mdn:" + mdn][1], deviceIds=[{"kind": "Mdn", "id": mdn}],
                                                             deviceResponse={"smsDeliveryResponse": {"confirmation": state}}))
              for mdn, state in states.items()]
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    recorder.record(events)
    recorder.close()


def reply_arrives(state_dir, mdn, text):
    body = dict(LISTENER, requestId="mo-%s" % mdn, deviceIds=[{"kind": "Mdn", "id": mdn}],
                deviceResponse={"smsResponse": {"message": text, "timestamp": "2099-01-01T00:00:00Z"}})
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    recorder.record([callback_event(SMS_SERVICE, ACCOUNT, body)])
    recorder.close()


def in_fleet(fake, devices, state="active"):
    """Add ``devices`` to the fake's device list, in ``state``."""
    fake.devices.extend({"accountName": ACCOUNT, "deviceIds": [dict(device)], "groupNames": [], "customFields": [],
                         "carrierInformations": [{"servicePlan": "m2m-basic", "state": state}],
                         "extendedAttributes": [{"key": "DeviceId", "value": "9" + device["id"]}]} for device in devices)


def deliver_all(fake, state_dir, state="Delivered"):
    callbacks_arrive(state_dir, {mdn: state for mdn in sent_devices(fake)})


def test_three_waves_gated_by_delivery_each_device_once(fake, run_module, state_dir):
    result, failed = run_module(vz_sms_campaign.main, **CAMPAIGN)
    assert not failed and result["changed"], result["msg"]
    assert (result["campaign_state"], result["wave"], result["waves_total"], result["devices_total"], result["devices_sent"]) == ("waiting", 1, 3, 20, 2)
    assert result["waves"][0]["gate"] == {"state": "open", "needed": 2, "succeeded": 0} and result["pending"] == 18 and result["sent"] == 2
    assert result["msg"] == "Campaign apn-2026-12: waiting, wave 1 of 3; sent to 2 device(s) in this run; 2 of 20 devices sent"
    assert len(result["request_ids"]) == 1 and result["abort_reason"] is None
    # The canary is a pseudo-random sample, not the first two devices of the list.
    canary = sent_devices(fake)
    assert canary != [DEVICES[0]["id"], DEVICES[1]["id"]]

    result, failed = run_module(vz_sms_campaign.main, **NEXT)  # the gate is open: nothing more
    assert not failed and not result["changed"] and result["devices_sent"] == 0 and len(sms_bodies(fake)) == 1

    deliver_all(fake, state_dir)
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and (result["campaign_state"], result["wave"], result["devices_sent"]) == ("waiting", 2, 8)
    assert result["waves"][0]["gate"]["state"] == "passed" and result["delivered"] == 2 and result["sent"] == 10

    deliver_all(fake, state_dir)
    result, failed = run_module(vz_sms_campaign.main, **CAMPAIGN)  # the full options again: the same campaign
    assert not failed and (result["campaign_state"], result["wave"], result["devices_sent"]) == ("waiting", 3, 10)
    deliver_all(fake, state_dir)
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["campaign_state"] == "completed" and result["delivered"] == 20 and result["pending"] == 0
    assert Counter(sent_devices(fake)) == Counter(device["id"] for device in DEVICES)  # each device once
    assert [len(body["deviceIds"]) for body in sms_bodies(fake)] == [2, 8, 10]
    assert {body["smsMessage"] for body in sms_bodies(fake)} == {"APN=iot.example"}
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and not result["changed"] and result["campaign_state"] == "completed" and len(sms_bodies(fake)) == 3


def test_check_mode_previews_the_next_wave_and_sends_nothing(fake, run_module, state_dir):
    in_fleet(fake, DEVICES)
    result, failed = run_module(vz_sms_campaign.main, check_mode=True, **CAMPAIGN)
    assert not failed and result["changed"] and result["campaign_state"] == "running"
    assert result["next_wave_preview"]["wave"] == 1 and result["next_wave_preview"]["devices"] == 2 and len(result["next_wave_preview"]["first"]) == 2
    assert result["msg"] == "Campaign apn-2026-12: running, wave 1 of 3; would send 2 device(s) of wave 1; 0 of 20 devices sent"
    assert not sms_bodies(fake) and not (state_dir / "ledger.sqlite3").exists()
    preview = result["next_wave_preview"]["first"]
    run_module(vz_sms_campaign.main, **CAMPAIGN)
    assert sent_devices(fake) == [device["id"] for device in preview]  # the preview named the devices the step sent
    deliver_all(fake, state_dir)
    result, failed = run_module(vz_sms_campaign.main, check_mode=True, **NEXT)
    assert not failed and result["next_wave_preview"]["wave"] == 2 and result["next_wave_preview"]["devices"] == 8
    assert len(sms_bodies(fake)) == 1 and result["waves"][0]["gate"]["state"] == "passed"
    # Check mode wrote nothing: the ledger still has wave 1 as the current wave.
    assert run_module(vz_sms_campaign.main, check_mode=True, **NEXT)[0]["next_wave_preview"]["devices"] == 8


def test_a_campaign_by_filters_is_resolved_once_through_the_device_list(fake, run_module, state_dir):
    result, failed = run_module(vz_sms_campaign.main, name="west", account_name=ACCOUNT, group_name="west", sms_message="hi", waves=["100%"])
    assert not failed and result["devices_total"] == 4 and result["devices_sent"] == 4
    lists = fake.count("POST", "devices/actions/list")
    result, failed = run_module(vz_sms_campaign.main, name="west", sms_message="hi")
    assert not failed and fake.count("POST", "devices/actions/list") == lists  # frozen: not resolved again
    result, failed = run_module(vz_sms_campaign.main, name="west", account_name=ACCOUNT, group_name="east", sms_message="hi")
    assert failed and result["msg"] == (
        'Campaign \'west\' was created with other options (selection: was {"custom_fields": [], "group_name": "west", "service_plan": null}, now '
        '{"custom_fields": [], "group_name": "east", "service_plan": null}); nothing was sent. Give the campaign\'s own options, or start a new '
        "campaign under another name")


def test_another_message_selection_or_waves_fail_naming_each_difference(fake, run_module, state_dir):
    run_module(vz_sms_campaign.main, **CAMPAIGN)
    calls = len(fake.calls)
    result, failed = run_module(vz_sms_campaign.main, **dict(CAMPAIGN, sms_message="APN=other", devices=DEVICES[:5], waves=["100%"], success="replied"))
    assert failed and result["msg"] == (
        "Campaign 'apn-2026-12' was created with other options (sms_message: another text; selection: was a device list of 20 device(s), now a "
        'device list of 5 device(s); waves: was [2, "50%", "100%"], now ["100%"]; success: was "delivered", now "replied"); nothing was sent. Give '
        "the campaign's own options, or start a new campaign under another name")
    assert len(fake.calls) == calls


def test_an_abort_criterion_stops_the_campaign_at_the_device_that_crosses_it(fake, run_module, state_dir):
    abort = [{"failure": "undelivered", "threshold": "50%", "min_devices": 2}]
    result, failed = run_module(vz_sms_campaign.main, **dict(CAMPAIGN, waves=[4, "100%"], success_threshold="1", abort=abort))
    assert not failed and result["devices_sent"] == 4
    first, second, third, fourth = sent_devices(fake)
    callbacks_arrive(state_dir, {first: "Delivered"})
    callbacks_arrive(state_dir, {second: "Delivered"})
    callbacks_arrive(state_dir, {third: "Undelivered"})  # 1 of 3: not yet
    callbacks_arrive(state_dir, {fourth: "Undelivered"})  # 2 of 4 = 50 %: crosses
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert failed and result["campaign_state"] == "aborted" and result["devices_sent"] == 0 and len(sms_bodies(fake)) == 1
    assert result["abort_reason"]["device"] == {"kind": "mdn", "id": fourth}
    assert (result["abort_reason"]["finished"], result["abort_reason"]["failed"]) == (4, 2)
    assert result["msg"] == ("Campaign apn-2026-12 aborted: abort criterion {failure: undelivered, threshold: 50%%, min_devices: 2} met at device "
                             "mdn:%s (2 of 4 finished devices failed)" % fourth)
    assert result["failures"]["undelivered"] == 2 and result["delivered"] == 2
    # Final: nothing is sent again, whoever steps it; with fail_on_abort: false the task reports it without failing.
    result, failed = run_module(vz_sms_campaign.main, fail_on_abort=False, **NEXT)
    assert not failed and result["campaign_state"] == "aborted" and len(sms_bodies(fake)) == 1


def test_a_paused_campaign_sends_nothing_whatever_the_gates_say(fake, run_module, state_dir):
    run_module(vz_sms_campaign.main, **CAMPAIGN)
    result, failed = run_module(vz_sms_campaign.main, name=CAMPAIGN["name"], state="paused")
    assert not failed and result["changed"] and result["campaign_state"] == "paused"
    assert result["msg"] == "Campaign apn-2026-12 paused: it sends nothing until state: started"
    deliver_all(fake, state_dir)  # the gate would pass
    result, failed = run_module(vz_sms_campaign.main, name=CAMPAIGN["name"], state="paused")
    assert not failed and not result["changed"] and result["campaign_state"] == "paused" and len(sms_bodies(fake)) == 1
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["campaign_state"] == "waiting" and result["wave"] == 2 and result["devices_sent"] == 8


def test_a_campaign_aborted_by_hand_sends_nothing_and_does_not_fail(fake, run_module, state_dir):
    run_module(vz_sms_campaign.main, **CAMPAIGN)
    result, failed = run_module(vz_sms_campaign.main, name=CAMPAIGN["name"], state="aborted")
    assert not failed and result["campaign_state"] == "aborted" and result["abort_reason"]["by_hand"]
    deliver_all(fake, state_dir)
    for state in ("started", "paused"):
        result, failed = run_module(vz_sms_campaign.main, **dict(NEXT, state=state))
        assert not failed and result["campaign_state"] == "aborted" and len(sms_bodies(fake)) == 1


def test_max_per_minute_paces_every_step_from_the_ledger(fake, run_module, state_dir):
    result, failed = run_module(vz_sms_campaign.main, **dict(CAMPAIGN, waves=["100%"], max_per_minute=12))
    # 12 a minute: batches of 2 (ten seconds' worth), the next one 10 s later.
    assert not failed and result["campaign_state"] == "running" and result["devices_sent"] == 2 and result["pending"] == 18
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["devices_sent"] == 0 and len(sms_bodies(fake)) == 1
    result, failed = run_module(vz_sms_campaign.main, **dict(NEXT, max_per_minute=1200))
    assert not failed and result["warnings"] == ["Campaign apn-2026-12: max_per_minute changed from 12 to 1200 for this and later steps"]


def test_wait_gate_stays_until_the_gate_decides(fake, run_module, state_dir):
    run_module(vz_sms_campaign.main, **CAMPAIGN)
    timer = threading.Timer(0.5, deliver_all, (fake, state_dir))
    timer.start()
    started = time.monotonic()
    result, failed = run_module(vz_sms_campaign.main, wait="gate", wait_timeout=30, **NEXT)
    timer.join()
    assert not failed and result["wave"] == 2 and result["devices_sent"] == 8 and time.monotonic() - started < 10
    result, failed = run_module(vz_sms_campaign.main, wait="gate", wait_timeout=1, **NEXT)
    assert not failed and result["campaign_state"] == "waiting" and result["warnings"] == [
        "Campaign apn-2026-12: wave 2's gate did not decide within wait_timeout (1 s); the campaign goes on at the next step"]


def test_success_replied_counts_matching_replies_and_reply_errors_fail(fake, run_module, state_dir):
    args = dict(CAMPAIGN, waves=[2, "100%"], success="replied", reply_pattern="^OK", reply_error_pattern="^ERR",
                abort=[{"failure": "reply_error", "threshold": "50%", "min_devices": 2}])
    run_module(vz_sms_campaign.main, **args)
    first, second = sent_devices(fake)
    deliver_all(fake, state_dir)
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["campaign_state"] == "waiting" and result["delivered"] == 2 and result["wave"] == 1
    reply_arrives(state_dir, first, "OK 1.2")
    reply_arrives(state_dir, second, "hello")  # neither pattern: no outcome
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["replied"] == 1 and result["wave"] == 1
    reply_arrives(state_dir, second, "ERR 5")
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert failed and result["failures"]["reply_error"] == 1 and result["abort_reason"]["device"] == {"kind": "mdn", "id": second}
    assert len(sms_bodies(fake)) == 1


def test_a_wave_timeout_times_out_devices_without_an_outcome(fake, run_module, state_dir, monkeypatch):
    run_module(vz_sms_campaign.main, **dict(CAMPAIGN, wave_timeout=60, success_threshold="50%"))
    first = sent_devices(fake)[0]
    callbacks_arrive(state_dir, {first: "Delivered"})
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    result, failed = run_module(vz_sms_campaign.main, check_mode=True, **NEXT)
    assert not failed and result["failures"]["timed_out"] == 1 and result["wave"] == 2


def test_failures_before_any_request(fake, run_module, state_dir):
    cases = [
        (dict(CAMPAIGN, waves=[2, "50%"]), "Campaign 'apn-2026-12': waves: the last wave reaches 10 of the selection's 20 devices; end the list with "
                                           '"100%" so that no device is left out; nothing was sent'),
        (dict(CAMPAIGN, abort=[{"failure": "lost"}]),
         "abort[0].failure: 'lost' is not one of undelivered, expired, rejected, timed_out, reply_error, refused, any"),
        (dict(CAMPAIGN, sms_message=None), "sms_message: needed with state: started (the ledger keeps only its hash, so a step cannot send without it)"),
        (dict(CAMPAIGN, reply_pattern="(["), "reply_pattern: '([' is not a regular expression: unterminated character set at position 1"),
        (dict(CAMPAIGN, success_threshold="0%"), "success_threshold: '0%' is neither a count of 1 or more nor a percentage such as 10% (more than 0, "
                                                 "at most 100)"),
        (dict(CAMPAIGN, max_per_minute=0), "max_per_minute: must be 1 or more"),
        (dict(NEXT), "Campaign 'apn-2026-12' does not exist yet: give its selection (devices, devices_file, or group_name, service_plan, custom_fields "
                     "with account_name); nothing was sent"),
        (dict(name="nothing", state="paused"), "Campaign 'nothing' has no record in the ledger %s under %s, so it cannot be paused; nothing was changed"
         % (state_dir / "ledger.sqlite3", API)),
        (dict(CAMPAIGN, sms_message="x" * 161),
         "sms_message: 161 septets is over the 160-septet limit of data_encoding 7-bit (characters of the GSM-7 extension table such as "
         "{ } [ ] ~ \\ | ^ € take two septets); messages are not concatenated"),
    ]
    for args, message in cases:
        result, failed = run_module(vz_sms_campaign.main, **args)
        assert failed and result["msg"] == message
    assert not [call for call in fake.calls if call[1] != "/api/ts/v1/oauth2/token" and "login" not in call[1]]


def test_an_unconfirmed_batch_fails_the_step_and_is_never_sent_again(fake, run_module, state_dir):
    fake.script("POST", r"/api/m2m/v1/sms$", (500, {"errorCode": "SERVER_ERROR", "errorMessage": "boom"}))
    result, failed = run_module(vz_sms_campaign.main, **CAMPAIGN)
    assert failed and result["unconfirmed"] == 2 and result["campaign_state"] == "waiting"
    assert result["msg"] == ("Campaign apn-2026-12, wave 1: a batch of 2 device(s) is unconfirmed: Failed to send SMS: HTTP 500 SERVER_ERROR: boom; "
                             "the request may have been processed. The ledger records them unconfirmed: the campaign never sends them again, they "
                             "count as sent for the gate, and a callback of their request settles them")
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["devices_sent"] == 0 and len(sms_bodies(fake)) == 1


def test_an_abort_recorded_while_waiting_for_the_pace_stops_the_next_batch(fake, run_module, state_dir, monkeypatch):
    now = [time.time()]
    undelivered = []

    def sleep(seconds):  # the callbacks source records the first device Undelivered while the step waits for the pace
        if not undelivered:
            undelivered.append(sent_devices(fake)[0])
            callbacks_arrive(state_dir, {undelivered[0]: "Undelivered"})
        now[0] += seconds

    monkeypatch.setattr(time, "time", lambda: now[0])
    monkeypatch.setattr(time, "sleep", sleep)
    result, failed = run_module(vz_sms_campaign.main, wait="gate", **dict(CAMPAIGN, waves=["100%"], max_per_minute=12,
                                                                          abort=[{"failure": "undelivered", "threshold": "1%"}]))
    assert failed and result["campaign_state"] == "aborted" and result["abort_reason"]["device"] == {"kind": "mdn", "id": undelivered[0]}
    assert result["devices_sent"] == 2 and len(sms_bodies(fake)) == 1


def test_devices_another_controller_is_sending_are_left_to_it(fake, run_module, state_dir, monkeypatch):
    other = Ledger(str(state_dir / "ledger.sqlite3"))  # another controller, its batch in flight (its claim held)
    other.claim(service_scope(API), CAMPAIGN["name"], ["mdn:%s" % device["id"] for device in DEVICES])
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    monkeypatch.setattr(time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    result, failed = run_module(vz_sms_campaign.main, **dict(CAMPAIGN, waves=["100%"]))
    other.close()
    assert not failed and result["campaign_state"] == "running" and result["devices_sent"] == 0 and not sms_bodies(fake)
    assert result["warnings"] == ["Campaign apn-2026-12: 20 device(s) of wave 1 are being sent by another controller; this step leaves them to it"]


def test_a_device_the_account_does_not_have_is_recorded_refused_and_the_rest_goes_on(fake, run_module, state_dir):
    fake.refuse_unknown_devices = True
    known = [{"kind": "mdn", "id": "555000%04d" % n} for n in range(1, 4)]  # in the fake's fleet
    result, failed = run_module(vz_sms_campaign.main, **dict(CAMPAIGN, devices=[*known, DEVICES[0]], waves=["100%"], success_threshold="75%"))
    assert not failed and result["campaign_state"] == "waiting" and result["devices_sent"] == 3
    assert (result["sent"], result["pending"], result["failures"]["refused"]) == (3, 0, 1)
    assert sorted(device["id"] for device in sms_bodies(fake)[-1]["deviceIds"]) == sorted(device["id"] for device in known)
    assert any("ThingSpace refused 1 device(s), not in account %s: mdn:%s" % (ACCOUNT, DEVICES[0]["id"]) in warning for warning in result["warnings"])
    # Final for the campaign: a later step does not send to it again, and the gate (3 of 4 needed) passes without it.
    callbacks_arrive(state_dir, {device["id"]: "Delivered" for device in known})
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["campaign_state"] == "completed" and result["devices_sent"] == 0 and result["failures"]["refused"] == 1


def test_the_preview_reports_inactive_devices_and_skip_inactive_leaves_them_out(fake, run_module, state_dir):
    active, suspended = DEVICES[:3], DEVICES[3:4]
    in_fleet(fake, active)
    in_fleet(fake, suspended, state="suspend")
    options = dict(CAMPAIGN, devices=active + suspended, waves=["100%"])
    result, failed = run_module(vz_sms_campaign.main, check_mode=True, **options)
    assert not failed and result["next_wave_preview"]["devices"] == 4
    assert result["next_wave_preview"]["devices_inactive"] == [dict(suspended[0], state="suspend")]
    assert any("1 device(s) this run would send to are not active (1 suspend; devices_inactive)" in warning for warning in result["warnings"])
    result, failed = run_module(vz_sms_campaign.main, check_mode=True, skip_inactive=True, **options)
    assert not failed and result["next_wave_preview"]["devices"] == 3 and not sms_bodies(fake)
    result, failed = run_module(vz_sms_campaign.main, skip_inactive=True, **dict(options, account_name=None, name="without-account"))
    assert failed and result["msg"].startswith("skip_inactive: needs account_name")
    result, failed = run_module(vz_sms_campaign.main, skip_inactive=True, **options)
    assert not failed and (result["devices_sent"], result["skipped_inactive"], result["pending"]) == (3, 1, 0)
    assert "skipped" not in result  # Ansible would show the step as skipped, and `is skipped` would hold
    assert sorted(sent_devices(fake)) == sorted(device["id"] for device in active)
    # The gate (100 %) counts the devices sent: the skipped one is left out, not failed.
    callbacks_arrive(state_dir, {device["id"]: "Delivered" for device in active})
    result, failed = run_module(vz_sms_campaign.main, **NEXT)
    assert not failed and result["campaign_state"] == "completed" and result["waves"][0]["gate"] == {"state": "passed", "needed": 3, "succeeded": 3}
