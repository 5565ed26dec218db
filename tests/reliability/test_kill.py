"""SIGKILL in the middle of a multi-batch send (ansible-playbook, its workers and the module process, or the worker
that runs the task in the controller), then a re-run: the ledger, written in a transaction before and after each
batch, shows what was in flight, and every device ends up with the message exactly once, counted on the emulator."""

from __future__ import annotations

import sys

import pytest
from harness import ACCOUNT, AS_MODULE, SMS_PATH, TokenGate, devices, kill_tree, ledger_states, receipts, task, wait_until

pytestmark = [
    pytest.mark.both_ledgers,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc"),
    pytest.mark.parametrize("run_as", ["controller", "module"]),
]


def killed_send(run_as, **send):
    """The task killed mid-send: run in the controller's worker, or as a module."""
    return dict(task("vz_sms_send", "send", **send), **(AS_MODULE if run_as == "module" else {}))


def kill_when(running, condition, what, run_as):
    """SIGKILL the run (its whole process tree) as soon as ``condition()`` holds."""
    wait_until(lambda: condition() or running.process.poll() is not None, what)
    assert running.process.poll() is None, "the run ended before the kill:\n%s" % running.finish().describe()
    killed, output = kill_tree(running)
    module_killed = any("AnsiballZ_vz_sms_send" in line for line in killed)
    assert module_killed == (run_as == "module"), "a module process was killed: %s\n%s\n%s" % (module_killed, killed, output)
    return killed


def test_killed_while_a_batch_is_in_flight_then_rerun_sends_each_device_once(emulator, ansible, figures, run_as):
    wave = devices(0, 60)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "FW=3.0 REBOOT", "idempotency_key": "wave-kill", "batch_size": 10}
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=2, latency=0)
    held = emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, latency=3)

    running = ansible.start([killed_send(run_as, **send)])
    killed = kill_when(running, lambda: held not in {item["id"] for item in emulator.faults()}, "batch 3 to reach the emulator", run_as)

    # Batches 1-2 settled, batch 3 claimed and in flight, batches 4-6 untouched.
    after_kill_ledger = ledger_states(ansible)
    assert after_kill_ledger == {"sent": 20, "pending": 10}
    # The emulator still processes the held request: batch 3 reached the service although its sender died.
    wait_until(lambda: len(emulator.sms(ACCOUNT)) == 3, "the held batch to be processed")
    after_kill = receipts(emulator, wave)
    assert after_kill == [1] * 30 + [0] * 30

    rerun = ansible.run([task("vz_sms_send", "rerun", **send)]).results["rerun"]

    assert not rerun.get("failed") and rerun["devices_sent"] == 30 and rerun["devices_skipped"] == 30
    assert rerun["devices_unconfirmed"] == wave[20:30]
    assert any("unconfirmed" in warning for warning in rerun["warnings"])
    assert receipts(emulator, wave) == [1] * 60
    assert sum(receipts(emulator, devices(60, 300))) == 0
    assert [message["deviceCount"] for message in emulator.sms(ACCOUNT)] == [10] * 6
    assert ledger_states(ansible) == {"sent": 50, "pending": 10}

    figures.update(
        processes_killed=len(killed), ledger_after_kill=after_kill_ledger, receipts_after_kill={"1": after_kill.count(1), "0": after_kill.count(0)},
        rerun_devices_sent=rerun["devices_sent"], rerun_devices_unconfirmed=len(rerun["devices_unconfirmed"]),
        sms_accepted=len(emulator.sms(ACCOUNT)), sms_intended=6, receipts_final=sorted(set(receipts(emulator, wave))),
        post_sms_requests=len(emulator.requests(method="POST", path=SMS_PATH)),
    )


def test_killed_before_the_request_left_then_resend_unconfirmed_sends_it_once(emulator, ansible, figures, run_as):
    wave = devices(100, 130)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "FW=3.0 REBOOT", "idempotency_key": "wave-kill-early", "batch_size": 10}
    # The client gets its tokens after batch 1 is claimed: stop the run there and kill it.
    with TokenGate(ansible.state_dir):
        running = ansible.start([killed_send(run_as, **send)])
        kill_when(running, lambda: ledger_states(ansible) == {"pending": 10}, "batch 1 to be claimed", run_as)

    after_kill_ledger = ledger_states(ansible)
    assert after_kill_ledger == {"pending": 10}
    assert emulator.requests(method="POST", path=SMS_PATH) == []

    play = ansible.run([
        task("vz_sms_send", "rerun", **send),
        task("vz_sms_send", "resend", resend_unconfirmed=True, **send),
        task("vz_sms_send", "again", **send),
    ])
    rerun, resend, again = (play.results[name] for name in ("rerun", "resend", "again"))

    # At most once by default: the claimed batch is skipped and named; resend_unconfirmed sends it once.
    assert rerun["devices_sent"] == 20 and rerun["devices_unconfirmed"] == wave[:10]
    assert resend["devices_sent"] == 10 and resend.get("warnings") is None
    assert not again["changed"] and again["devices_sent"] == 0
    assert receipts(emulator, wave) == [1] * 30
    assert [message["deviceCount"] for message in emulator.sms(ACCOUNT)] == [10, 10, 10]
    assert all(entry["status"] == 200 for entry in emulator.requests(method="POST", path=SMS_PATH))

    figures.update(ledger_after_kill=after_kill_ledger, post_sms_before_rerun=0, rerun_devices_sent=rerun["devices_sent"],
                   resend_unconfirmed_devices_sent=resend["devices_sent"], sms_accepted=len(emulator.sms(ACCOUNT)), sms_intended=3,
                   receipts_final=sorted(set(receipts(emulator, wave))))
