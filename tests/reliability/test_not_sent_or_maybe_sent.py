"""What the ledger must tell apart, as a user meets it against the emulator: a failure before ``POST /sms`` means
"not sent" (the next run sends), a 5xx answer to it means "maybe sent" (the emulator processed it; the next run
does not send it again), and an idempotency key reused for another message is refused, not "already sent"."""

from __future__ import annotations

import pytest
from harness import ACCOUNT, SMS_PATH, TOKEN_PATH, devices, ledger_states, receipts, statuses, task

pytestmark = pytest.mark.both_ledgers


def test_a_failed_token_request_is_not_sent_and_the_next_run_sends(emulator, ansible, figures):
    emulator.fault(path=TOKEN_PATH, method="POST", count=1, status=502)
    wave = devices(0, 10)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "CFG=8", "idempotency_key": "wave-token"}

    play = ansible.run([dict(task("vz_sms_send", "first", **send), ignore_errors=True), task("vz_sms_send", "second", **send)])

    first, second = play.results["first"], play.results["second"]
    assert first["failed"] and "nothing of it was sent" in first["msg"] and first["devices_unconfirmed"] == []
    assert not second.get("failed") and second["changed"] and second["devices_sent"] == 10 and not second.get("warnings")
    assert statuses(emulator, "POST", TOKEN_PATH) == [502, 200] and statuses(emulator, "POST", SMS_PATH) == [200]
    assert receipts(emulator, wave) == [1] * 10 and ledger_states(ansible) == {"sent": 10}
    figures.update(token_statuses=statuses(emulator, "POST", TOKEN_PATH), post_sms_statuses=statuses(emulator, "POST", SMS_PATH),
                   second_run_devices_sent=second["devices_sent"], receipts=sorted(set(receipts(emulator, wave))))


def test_a_500_after_processing_is_unconfirmed_and_not_sent_again(emulator, ansible, figures):
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, status=500, process=True)
    wave = devices(0, 10)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "CFG=9", "idempotency_key": "wave-500"}

    play = ansible.run([dict(task("vz_sms_send", "first", **send), ignore_errors=True), task("vz_sms_send", "rerun", **send)])

    first, rerun = play.results["first"], play.results["rerun"]
    assert first["failed"] and first["batches"][0]["status"] == "unconfirmed" and first["devices_unconfirmed"] == wave
    assert not rerun.get("failed") and not rerun["changed"] and any("unconfirmed" in warning for warning in rerun["warnings"])
    assert statuses(emulator, "POST", SMS_PATH) == [500] and len(emulator.sms(ACCOUNT)) == 1
    assert receipts(emulator, wave) == [1] * 10 and ledger_states(ansible) == {"unknown": 10}
    figures.update(post_sms_statuses=statuses(emulator, "POST", SMS_PATH), accepted_by_emulator=len(emulator.sms(ACCOUNT)),
                   rerun_changed=rerun["changed"], receipts=sorted(set(receipts(emulator, wave))), ledger=ledger_states(ansible))


def test_a_key_reused_for_another_message_is_refused(emulator, ansible, figures):
    wave = devices(0, 10)
    send = {"account_name": ACCOUNT, "devices": wave, "idempotency_key": "wave-apn"}

    play = ansible.run([task("vz_sms_send", "old", sms_message="APN=old", **send),
                        dict(task("vz_sms_send", "corrected", sms_message="APN=corrected", **send), ignore_errors=True),
                        task("vz_sms_send", "forced", sms_message="APN=corrected", force=True, **send)])

    corrected, forced = play.results["corrected"], play.results["forced"]
    assert corrected["failed"] and "'wave-apn' was used for another send (message: another text)" in corrected["msg"]
    assert forced["changed"] and forced["devices_sent"] == 10
    assert [message["smsMessage"] for message in emulator.sms(ACCOUNT)] == ["APN=old", "APN=corrected"]
    assert receipts(emulator, wave) == [2] * 10
    figures.update(accepted_by_emulator=[message["smsMessage"] for message in emulator.sms(ACCOUNT)], refused_msg=corrected["msg"])
