"""Two sends under the same idempotency key at once, as two ansible-playbook processes and as two forks of
one play, with overlapping device lists: the ledger's claims (one transaction each) let only one of them
send to a device. Counted per device on the emulator; the runs are checked to have overlapped in time."""

from __future__ import annotations

import datetime

import pytest
from harness import ACCOUNT, LOGIN_PATH, SMS_PATH, TokenGate, devices, ledger_rows, ledger_states, receipts, statuses, task, wait_until

KEY = "wave-concurrent"

pytestmark = pytest.mark.both_ledgers


def start_together(emulator, ansible, start):
    """``start()`` the runs behind a closed TokenGate: each claims its first batch, then waits for the token cache;
    once both claims are in the ledger the gate opens and they send at the same time. Each POST /sms is slowed
    down (0.3 s) so that their batches interleave."""
    emulator.fault(path="^%s$" % SMS_PATH, method="POST", count=100, latency=0.3)
    with TokenGate(ansible.state_dir):
        runs = start()
        wait_until(lambda: ledger_states(ansible).get("pending") == 20 or any(run.process.poll() is not None for run in runs),
                   "both runs to claim their first batch")
    return [run.finish() for run in runs]


def send_window(emulator, result):
    """(first, last) time the emulator accepted a request of ``result``."""
    accepted = {message["requestId"]: datetime.datetime.fromisoformat(message["receivedAt"]) for message in emulator.sms(ACCOUNT)}
    times = sorted(accepted[request_id] for request_id in result["request_ids"])
    return times[0], times[-1]


def check_exactly_once(emulator, runs, union):
    """Every device of ``union`` received the message once; the runs' sends add up; they overlapped in time."""
    for result in runs:
        assert not result.get("failed"), result.get("msg")
        assert result["devices_sent"] > 0
    assert receipts(emulator, union) == [1] * len(union)
    assert sum(receipts(emulator, devices(0, 300))) == len(union), "no device outside the lists"
    assert sum(result["devices_sent"] for result in runs) == len(union)
    overlap = sum(result["devices_requested"] for result in runs) - len(union)
    assert sum(result["devices_skipped"] for result in runs) == overlap
    (first_a, last_a), (first_b, last_b) = (send_window(emulator, result) for result in runs)
    assert max(first_a, first_b) < min(last_a, last_b), "the two sends did not overlap in time"
    assert statuses(emulator, "POST", LOGIN_PATH) == [200], "one login, shared through the token cache"
    return {
        "devices_sent": [result["devices_sent"] for result in runs],
        "devices_skipped": [result["devices_skipped"] for result in runs],
        "batches_skipped_as_claimed": sum(batch["status"] == "skipped" for result in runs for batch in result["batches"]),
        "overlap_devices": overlap,
        "union_devices": len(union),
        "receipts": sorted(set(receipts(emulator, union))),
        "sms_accepted": len(emulator.sms(ACCOUNT)),
        "overlapping_send_seconds": round((min(last_a, last_b) - max(first_a, first_b)).total_seconds(), 2),
        "logins": len(statuses(emulator, "POST", LOGIN_PATH)),
    }


def test_two_processes_with_the_same_key_send_to_each_device_once(emulator, ansible, figures):
    first, second = devices(0, 60), list(reversed(devices(20, 80)))  # they meet in the middle

    plays = start_together(emulator, ansible, lambda: [
        ansible.start([task("vz_sms_send", "send", account_name=ACCOUNT, devices=wave, sms_message="FW=4.0", idempotency_key=KEY, batch_size=10)])
        for wave in (first, second)
    ])

    for play in plays:
        assert play.returncode == 0, play.describe()
    figures.update(check_exactly_once(emulator, [play.results["send"] for play in plays], devices(0, 80)))


def test_two_forks_with_the_same_key_send_to_each_device_once(emulator, ansible, figures):
    waves = {"gw1": devices(0, 60), "gw2": list(reversed(devices(20, 80)))}
    wave = "{{ waves[inventory_hostname] }}"
    send = task("vz_sms_send", "send", account_name=ACCOUNT, devices=wave, sms_message="FW=4.0", idempotency_key=KEY, batch_size=10)

    (play,) = start_together(emulator, ansible, lambda: [ansible.start([send], hosts=list(waves), variables={"waves": waves})])

    assert play.returncode == 0, play.describe()
    figures.update(check_exactly_once(emulator, [play.by_host[host]["send"] for host in waves], devices(0, 80)))


def test_resend_unconfirmed_does_not_take_over_a_send_in_flight(emulator, ansible, figures):
    wave = devices(0, 10)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "FW=4.0", "idempotency_key": KEY}

    with TokenGate(ansible.state_dir):
        first = ansible.start([task("vz_sms_send", "send", **send)])
        wait_until(lambda: ledger_states(ansible) == {"pending": 10}, "the first run to claim its devices")
        first_claim = {claim for _target, _state, claim in ledger_rows(ansible)}
        # The first run is alive and about to send; a second run with resend_unconfirmed starts meanwhile.
        resend = ansible.start([task("vz_sms_send", "send", resend_unconfirmed=True, **send)])
        wait_until(lambda: resend.process.poll() is not None or {claim for _target, _state, claim in ledger_rows(ansible)} != first_claim,
                   "the second run to finish or to take over the claim")
    first, resend = first.finish().results["send"], resend.finish().results["send"]

    figures.update(first_devices_sent=first["devices_sent"], resend_devices_sent=resend["devices_sent"],
                   receipts=sorted(set(receipts(emulator, wave))), sms_accepted=len(emulator.sms(ACCOUNT)))
    assert first["devices_sent"] == 10
    assert receipts(emulator, wave) == [1] * 10, "a device received the message twice"
