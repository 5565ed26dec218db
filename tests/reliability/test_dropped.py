"""A connection dropped after the emulator processed the request: the answer is lost, the effect is not.
A send (device list or filters) reports the batch unconfirmed and the ledger keeps it, so a re-run does not
send it again unless ``force: true``; no device gets the message twice. A dropped SMS history read must not
lose messages, and a dropped listener removal must not fail the task."""

from __future__ import annotations

import pytest
from harness import ACCOUNT, SMS_PATH, devices, ledger_states, receipts, statuses, task


@pytest.mark.both_ledgers
def test_dropped_send_is_unconfirmed_and_never_repeated_without_force(emulator, ansible, figures):
    # Batch 1 passes, batch 2 is processed and its connection dropped, batch 3 is never attempted.
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, latency=0)
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, drop=True)
    wave = devices(0, 30)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "CFG=7", "idempotency_key": "wave-drop", "batch_size": 10}

    dropped = ansible.run([task("vz_sms_send", "dropped", **send)]).results["dropped"]

    assert dropped["failed"]
    assert [batch["status"] for batch in dropped["batches"]] == ["sent", "unconfirmed"]
    assert dropped["devices_unconfirmed"] == wave[10:20]
    assert "Batch 2 of 3 is unconfirmed" in dropped["msg"] and "may have been processed" in dropped["msg"]
    assert statuses(emulator, "POST", SMS_PATH) == [200, None]
    assert ledger_states(ansible) == {"sent": 10, "unknown": 10}
    assert receipts(emulator, wave) == [1] * 20 + [0] * 10

    play = ansible.run([task("vz_sms_send", "rerun", **send), task("vz_sms_send", "again", **send)])
    rerun, again = play.results["rerun"], play.results["again"]
    # The re-run sends only batch 3 and names the unconfirmed devices; then nothing is left to send.
    assert not rerun.get("failed") and rerun["changed"] and rerun["devices_sent"] == 10
    assert rerun["devices_unconfirmed"] == wave[10:20] and rerun["devices_skipped"] == 20
    assert any("unconfirmed" in warning for warning in rerun["warnings"])
    assert not again["changed"] and again["devices_sent"] == 0
    before_force = receipts(emulator, wave)
    assert before_force == [1] * 30
    accepted_before_force = len(emulator.sms(ACCOUNT))

    forced = ansible.run([task("vz_sms_send", "forced", force=True, **send)]).results["forced"]
    assert forced["devices_sent"] == 30 and receipts(emulator, wave) == [2] * 30, "force sends everything again, by request"
    assert ledger_states(ansible) == {"sent": 30}

    figures.update(
        intended_batches=3, post_sms_statuses_first_run=[200, None], devices_unconfirmed=len(dropped["devices_unconfirmed"]),
        ledger_after_drop={"sent": 10, "unknown": 10}, rerun_devices_sent=rerun["devices_sent"], second_rerun_devices_sent=again["devices_sent"],
        sms_accepted_before_force=accepted_before_force, receipts_before_force=sorted(set(before_force)), force_devices_sent=forced["devices_sent"],
    )


@pytest.mark.both_ledgers
def test_dropped_group_send_is_unconfirmed_and_not_repeated(emulator, ansible, figures):
    # A filter send tracked as a selection is one ledger target: the whole selection (here the 300 devices of group "all").
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, drop=True)
    send = {"account_name": ACCOUNT, "group_name": "all", "sms_message": "FW=5.0", "idempotency_key": "group-drop", "filter_tracking": "selection"}

    play = ansible.run([task("vz_sms_send", "dropped", **send), task("vz_sms_send", "rerun", **send)])

    dropped, rerun = play.results["dropped"], play.results["rerun"]
    assert dropped["failed"] and dropped["selection_unconfirmed"] and "unconfirmed" in dropped["msg"]
    assert not rerun.get("failed") and not rerun["changed"] and rerun["selection_unconfirmed"]
    assert any("unconfirmed" in warning for warning in rerun["warnings"])
    assert statuses(emulator, "POST", SMS_PATH) == [None]
    assert ledger_states(ansible) == {"unknown": 1}
    assert set(receipts(emulator, devices(0, 300))) == {1}

    figures.update(post_sms_statuses=statuses(emulator, "POST", SMS_PATH), receipts=sorted(set(receipts(emulator, devices(0, 300)))),
                   devices_reached=300, rerun_changed=rerun["changed"], ledger=ledger_states(ansible))


def test_dropped_history_read_loses_no_message(emulator, ansible, figures):
    queued = 250  # blocks of 100, 100, 50
    emulator.inject_mo_batch([{"accountName": ACCOUNT, "deviceId": devices(n % 10, n % 10 + 1)[0], "message": "MO-%03d" % n} for n in range(queued)])
    # The first read passes; the second (next=…, which acknowledges block 1) is processed and its answer dropped.
    emulator.fault(path=r"/history$", method="GET", count=1, latency=0)
    emulator.fault(path=r"/history$", method="GET", count=1, drop=True)

    play = ansible.run([task("vz_sms_receive", "dropped", account_name=ACCOUNT), task("vz_sms_receive", "rerun", account_name=ACCOUNT)])

    got = [message["message"] for name in ("dropped", "rerun") for message in play.results[name]["messages"]]
    figures.update(queued=queued, returned=len(got), distinct=len(set(got)), lost=queued - len(set(got)),
                   history_statuses=statuses(emulator, "GET", "/api/m2m/v1/sms/%s/history" % ACCOUNT))
    assert play.results["dropped"]["failed"]
    assert sorted(set(got)) == ["MO-%03d" % n for n in range(queued)], "%d of %d messages lost" % (queued - len(set(got)), queued)


def test_dropped_listener_removal_reports_success(emulator, ansible, figures):
    listener = emulator.url + "/_emulator/listener/reliability"
    callback = {"account_name": ACCOUNT, "service_name": "SMSDeliveryConfirmation"}
    ansible.run([task("vz_callback", "register_listener", callback_url=listener, **callback)])
    emulator.fault(path=r"/name/SMSDeliveryConfirmation$", method="DELETE", count=1, drop=True)

    removed = ansible.run([task("vz_callback", "remove", state="absent", **callback)]).results["remove"]

    delete_path = "/api/m2m/v1/callbacks/%s/name/SMSDeliveryConfirmation" % ACCOUNT
    registered = [item["serviceName"] for item in emulator.state()["registrations"]]
    figures.update(delete_statuses=statuses(emulator, "DELETE", delete_path), registered_after=registered,
                   error=removed.get("msg") if removed.get("failed") else None)
    assert registered == []
    assert not removed.get("failed"), removed.get("msg")
    assert removed["changed"]
