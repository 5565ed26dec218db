"""A staged campaign through ansible-playbook against the emulator, with the callbacks source recording into the ledger:
three waves, paced, with wait: gate; a suspended device in the second wave's first batch is Undelivered, and the abort
criterion stops the campaign at it, before the second batch; the emulator's request log shows no SMS after it, and a
later step sends nothing. And a campaign killed with SIGKILL while a batch is in flight sends no device twice."""

from __future__ import annotations

import json
import sys

import pytest
from harness import ACCOUNT, SMS_PATH, Ansible, device, kill_tree, received, task, wait_until
from test_receiver_kill import Receiver, free_port, register_receiver

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from thingspace_emulator.testing import running_emulator

NAME = "fw-7-rollout"
SIZE = 30
WAVES = [3, 10, "100%"]
ABORT = [{"failure": "undelivered", "threshold": "10%", "min_devices": 4}]
# 30 a minute: batches of 5 devices, the next one 2 s per device of the last later (wave 1: 3 devices, then 5 and 2).
PACE = 30


def fleet(path, suspended):
    """The account's SIZE devices (ICCID and MDN), those numbered in ``suspended`` suspended (ThingSpace answers their
    SMS Undelivered)."""
    devices = [{"deviceIds": [device(n), {"kind": "mdn", "id": "555%07d" % n}], "groupNames": ["all"], "servicePlan": "m2m-basic",
                "state": "suspended" if n in suspended else "active"} for n in range(SIZE)]
    path.write_text(json.dumps({"accounts": [{"name": ACCOUNT, "groups": [{"name": "all"}], "servicePlans": ["m2m-basic"], "devices": devices}]}))


def campaign_rows(ansible):
    ledger = Ledger(ansible.ledger, read_only=True)
    try:
        return campaign.load(ledger, service_scope(ansible.api_url), NAME)
    finally:
        ledger.close()


@pytest.mark.both_ledgers
def test_a_three_wave_campaign_aborts_at_the_device_that_crosses_and_sends_nothing_after(tmp_path, ledger_backend, request):
    targets = ["iccid:%s" % device(n)["id"] for n in range(SIZE)]
    order = campaign.ordered(NAME, targets)
    # The first device of the second wave (positions 3 to 9) is suspended; the wave goes out in two batches (3-7, 8-9).
    suspended = {targets.index(order[3])}
    fleet(tmp_path / "fleet.json", suspended)
    with running_emulator("--fleet", str(tmp_path / "fleet.json"), "--allow-any-callback-port", "--quiet", "--delivery-delay", "0.2") as emulator:
        ansible = Ansible(tmp_path, emulator.url, request.getfixturevalue("database") if ledger_backend == "postgresql" else None)
        Ledger(ansible.ledger).close()  # created, as the receiver would
        port = free_port()
        receiver = Receiver(ansible, port, tmp_path / "events", tmp_path / "receiver.log")
        receiver.start()
        try:
            register = register_receiver(port)
            step = dict(task("vz_sms_campaign", "step", name=NAME, account_name=ACCOUNT, devices=[device(n) for n in range(SIZE)],
                             sms_message="FW=7.1", waves=WAVES, abort=ABORT, max_per_minute=PACE, wait="gate",
                             wait_timeout=60),
                        until="step.campaign_state in ['completed', 'aborted']", retries=5, delay=0)
            play = ansible.run([*register, step])
            result = play.results["step"]
            assert result["campaign_state"] == "aborted" and result["failed"], play.describe()
            assert result["wave"] == 2 and [wave["sent"] for wave in result["waves"]] == [3, 5, 0]

            # The device that crossed: the suspended one, with the counts at it.
            stored = campaign_rows(ansible)
            finished = sorted((d for d in stored.devices if d.finished_at is not None), key=lambda d: (d.finished_at, d.position))
            crossing = next(index for index, d in enumerate(finished) if d.state == "undelivered")
            assert result["abort_reason"]["device"] == {"kind": "iccid", "id": finished[crossing].target.split(":")[1]}
            assert finished[crossing].target == order[3] and result["abort_reason"]["failed"] == 1
            assert result["abort_reason"]["finished"] == crossing + 1 >= 4  # min_devices: the three of wave 1 finished first
            assert result["msg"].startswith("Campaign %s aborted: abort criterion {failure: undelivered, threshold: 10%%, min_devices: 4} met at "
                                            "device %s" % (NAME, finished[crossing].target))

            # No SMS after it: the emulator got the first eight devices of the order once each, the rest nothing.
            counts = received(emulator)
            assert [counts[order[position].split(":")[1]] for position in range(SIZE)] == [1] * 8 + [0] * 22
            posts = len(emulator.requests(method="POST", path=SMS_PATH))
            assert posts == 2

            # Any later step, from any controller, sends nothing more.
            play = ansible.run([dict(task("vz_sms_campaign", "again", name=NAME, sms_message="FW=7.1", fail_on_abort=False))])
            again = play.results["again"]
            assert not again.get("failed") and again["campaign_state"] == "aborted" and again["devices_sent"] == 0, play.describe()
            assert again["abort_reason"] == result["abort_reason"]
            assert len(emulator.requests(method="POST", path=SMS_PATH)) == posts
        finally:
            receiver.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.both_ledgers
def test_killed_while_a_batch_is_in_flight_then_stepped_again_each_device_gets_its_sms_once(emulator, ansible):
    """A paced campaign (two batches of 20, 10 s apart) is killed with SIGKILL while its second batch is in flight; the
    emulator processes it anyway. The next step sends nothing again: the first batch is sent, the second unconfirmed."""
    fleet_devices = [device(n) for n in range(40)]
    step = task("vz_sms_campaign", "step", name="kill-campaign", account_name=ACCOUNT, devices=fleet_devices, sms_message="FW=7.2",
                max_per_minute=120, wait="gate", wait_timeout=60)
    emulator.fault(path=r"^%s$" % SMS_PATH, method="POST", count=1, latency=0)
    held = emulator.fault(path=r"^%s$" % SMS_PATH, method="POST", count=1, latency=3)
    running = ansible.start([step])
    wait_until(lambda: held not in {item["id"] for item in emulator.faults()} or running.process.poll() is not None, "batch 2 to reach the emulator",
               timeout=60)
    assert running.process.poll() is None, running.finish().describe()
    kill_tree(running)
    wait_until(lambda: len(emulator.sms(ACCOUNT)) == 2, "the held batch to be processed")

    play = ansible.run([dict(step, **{"thingspace.m2m.vz_sms_campaign": dict(step["thingspace.m2m.vz_sms_campaign"], wait="none")})])
    again = play.results["step"]
    assert not again.get("failed") and again["devices_sent"] == 0 and (again["sent"], again["unconfirmed"], again["pending"]) == (40, 20, 0), play.describe()
    assert again["campaign_state"] == "waiting"
    assert sorted(received(emulator)[d["id"]] for d in fleet_devices) == [1] * 40
    assert len(emulator.sms(ACCOUNT)) == 2
