"""Issue 21's guarantees of a staged campaign, each through ansible-playbook against the emulator (its request log and
per-device counters are the judge):

- each device gets the campaign's SMS exactly once under SIGKILL at seeded points of every wave, resumed by later steps;
- two controllers (two ansible-playbook processes, their own state dirs) stepping the same campaign at once on one
  PostgreSQL ledger send each device once and report the same figures, as does a third controller afterwards;
- the gate is read from the ledger: a step on another controller sees the figures the first one left;
- an abort criterion stops the campaign at the device that crosses it (failures placed by device behaviours), and no
  SMS goes after it;
- a paused or aborted campaign sends nothing, whatever its gate says.

test_campaign.py has the paced three-wave abort on a suspended device and a SIGKILL while a batch is held in flight."""

from __future__ import annotations

import random
import sys
import time

import pytest
from harness import ACCOUNT, SMS_PATH, Ansible, device, kill_tree, received, task, wait_until
from test_receiver_kill import Receiver, free_port, register_receiver

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope

# Figures every controller must report alike (not what its own run sent).
SHARED = ("campaign_state", "wave", "waves_total", "devices_total", "waves", "sent", "unconfirmed", "delivered", "replied", "failures", "pending",
          "abort_reason")
# Seeds of the kill points: CI runs these, KILL_SEEDS in the environment would not be reproducible.
KILL_SEEDS = (21, 2112)
UNTIL_COMPLETED = "step.campaign_state | default('') == 'completed'"


def step_task(name, fleet, register="step", **options):
    """A step of campaign ``name`` over ``fleet`` (device dicts), message FW=21."""
    return task("vz_sms_campaign", register, name=name, account_name=ACCOUNT, devices=fleet, sms_message="FW=21", **options)


def shared(result):
    return {field: result.get(field) for field in SHARED}


def stored(ansible, name):
    """The campaign as a step would find it now, read from the ledger of ``ansible``."""
    ledger = Ledger(ansible.ledger, read_only=True)
    try:
        return campaign.reading(ledger, service_scope(ansible.api_url), name)
    finally:
        ledger.close()


def posts(emulator):
    return len(emulator.requests(method="POST", path=SMS_PATH))


def kill_at(emulator, running, wave, where, delay, points):
    """SIGKILL ``running`` ``delay`` seconds after wave ``wave``'s batch (the wave-th request) reached the emulator (``where``:
    ``in flight``, held there 2 s and processed after the kill) or was answered (``after``)."""
    ahead = wave - 1 - posts(emulator)
    if ahead:
        emulator.fault(path=r"^%s$" % SMS_PATH, method="POST", count=ahead, latency=0)
    if where == "in flight":
        held = emulator.fault(path=r"^%s$" % SMS_PATH, method="POST", count=1, latency=2)
        wait_until(lambda: held not in {item["id"] for item in emulator.faults()} or running.process.poll() is not None, "wave %d to be held" % wave,
                   timeout=60)
    else:
        wait_until(lambda: posts(emulator) >= wave or running.process.poll() is not None, "wave %d to be answered" % wave, timeout=60)
    time.sleep(delay)
    assert running.process.poll() is None, "%s\n%s" % (points, running.finish().describe())
    kill_tree(running)
    wait_until(lambda: posts(emulator) >= wave, "the held batch to be processed")
    emulator.clear_faults()


@pytest.fixture
def receiver(tmp_path, ansible):
    """The callbacks source recording into the ledger of ``ansible``, registered for the account."""
    Ledger(ansible.ledger).close()  # created, as the receiver would
    port = free_port()
    running = Receiver(ansible, port, tmp_path / "events", tmp_path / "receiver.log")
    running.start()
    play = ansible.run(register_receiver(port))
    assert all(not result.get("failed") for result in play.results.values()), play.describe()
    yield running
    running.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_killed_at_seeded_points_of_every_wave_each_device_gets_its_sms_exactly_once(emulator, ansible, receiver, seed):
    """Three waves (one batch each, paced), one SIGKILL in each wave at a point the seed draws: while the wave's batch is
    held at the emulator (which processes it after the client died), or at a seeded delay after its answer (in the
    ledger writes or the pace's sleep). The steps after each kill finish the campaign; the emulator got one SMS per
    device of the selection, none for the others."""
    draw = random.Random(seed)
    fleet = [device(n) for n in range(30)]
    name = "kill-%d" % seed
    # 300 a minute: batches of up to 50, the next one 0.2 s per device of the last later (0.8 s after wave 1's 4).
    step = step_task(name, fleet, waves=[4, 12, "100%"], max_per_minute=300, wait="gate", wait_timeout=60)
    points = [(wave, draw.choice(["in flight", "after"]), round(draw.uniform(0.0, 0.3), 2)) for wave in (1, 2, 3)]
    for wave, where, delay in points:
        if posts(emulator) < wave:  # else an earlier kill point's run got further: this wave is sent already
            kill_at(emulator, ansible.start([dict(step, until=UNTIL_COMPLETED, retries=3, delay=0)]), wave, where, delay, points)

    play = ansible.run([dict(step, until=UNTIL_COMPLETED, retries=3, delay=0)])
    result = play.results["step"]
    assert not result.get("failed") and result["campaign_state"] == "completed", "%s\n%s" % (points, play.describe())
    # The batches in flight when killed are unconfirmed until their delivery callbacks settled them: all delivered.
    assert (result["sent"], result["delivered"], result["pending"], result["devices_total"]) == (30, 30, 0, 30), points
    counts = received(emulator)
    assert sorted(counts[d["id"]] for d in fleet) == [1] * 30, points
    assert sum(counts.values()) == 30 and posts(emulator) == 3, points


@pytest.mark.parametrize("ledger_backend", ["postgresql"])
def test_two_controllers_at_once_then_a_third_send_each_device_once_and_report_the_same(tmp_path, emulator, ansible, receiver):
    """Controllers A and B (their own state dirs and token caches, one PostgreSQL ledger) run the same three-wave
    campaign with wait: gate at the same time; a third, C, steps it afterwards. Each device got one SMS; all three
    report the same figures, and the ledger's own reading gives them too."""
    fleet = [device(n) for n in range(30)]
    step = dict(step_task("twin", fleet, waves=[3, 10, "100%"], max_per_minute=600, wait="gate", wait_timeout=60),
                until="step.campaign_state | default('') in ['completed', 'aborted']", retries=5, delay=0)
    other = Ansible(tmp_path / "b", ansible.api_url, ansible.ledger)
    first, second = ansible.start([step]), other.start([step])
    plays = [first.finish(timeout=300), second.finish(timeout=300)]
    results = [play.results["step"] for play in plays]
    for play, result in zip(plays, results):
        assert not result.get("failed") and result["campaign_state"] == "completed", play.describe()
    assert results[0]["request_ids"] or results[1]["request_ids"]
    assert shared(results[0]) == shared(results[1])
    assert (results[0]["sent"], results[0]["delivered"], results[0]["pending"]) == (30, 30, 0)
    counts = received(emulator)
    assert sorted(counts[d["id"]] for d in fleet) == [1] * 30 and sum(counts.values()) == 30

    third = Ansible(tmp_path / "c", ansible.api_url, ansible.ledger)
    play = third.run([step_task("twin", fleet, register="again")])
    again = play.results["again"]
    assert not again.get("failed") and again["devices_sent"] == 0 and not again["changed"], play.describe()
    assert shared(again) == shared(results[0]) == shared(campaign.figures(stored(ansible, "twin")))
    assert posts(emulator) == 3  # one request per wave, whoever sent it


@pytest.mark.parametrize("ledger_backend", ["postgresql"])
def test_the_gate_is_read_from_the_ledger_by_a_step_on_another_controller(tmp_path, emulator, ansible, receiver):
    """Controller A sends wave 1 and returns; once its deliveries are in the ledger, a check-mode step on A and one on B
    (another state dir, never part of the campaign) give the same figures, the gate passed and wave 2 as the next; B
    continues the campaign to its end and C reports what B did."""
    fleet = [device(n) for n in range(20)]
    step = step_task("relay", fleet, waves=[4, "100%"])
    play = ansible.run([step])
    started = play.results["step"]
    assert not started.get("failed") and started["devices_sent"] == 4 and started["campaign_state"] == "waiting", play.describe()
    wait_until(lambda: stored(ansible, "relay").state == "running", "wave 1's deliveries to pass its gate", timeout=30)

    other = Ansible(tmp_path / "b", ansible.api_url, ansible.ledger)
    here, there = (runner.run([dict(step, check_mode=True)]).results["step"] for runner in (ansible, other))
    assert shared(here) == shared(there) and here["next_wave_preview"] == there["next_wave_preview"]
    assert here["waves"][0]["gate"] == {"needed": 4, "succeeded": 4, "state": "passed"} and here["wave"] == 2
    assert here["next_wave_preview"]["devices"] == 16 and posts(emulator) == 1

    play = other.run([dict(step_task("relay", fleet, wait="gate", wait_timeout=60), until=UNTIL_COMPLETED, retries=3, delay=0)])
    done = play.results["step"]
    assert not done.get("failed") and done["campaign_state"] == "completed" and done["devices_sent"] == 16, play.describe()
    after = Ansible(tmp_path / "c", ansible.api_url, ansible.ledger).run([step_task("relay", fleet, register="after")]).results["after"]
    assert shared(after) == shared(done) and after["devices_sent"] == 0
    assert sorted(received(emulator)[d["id"]] for d in fleet) == [1] * 20


@pytest.mark.both_ledgers
def test_an_abort_criterion_stops_at_the_crossing_device_placed_by_behaviours(emulator, ansible, receiver):
    """Devices at positions 5, 7 and 8 of the campaign's order are Rejected (device behaviours), the rest Delivered. The
    criterion {rejected, 20%, min_devices: 10} is met by no share before the 10th finished device: the campaign aborts at
    the first device where at least 10 finished and the rejected share is 20% or more, found here from the ledger's
    order of finishing, and sends nothing after (wave 3 stays unsent)."""
    fleet = [device(n) for n in range(30)]
    order = campaign.ordered("behaved", ["iccid:%s" % d["id"] for d in fleet])
    for position in (5, 7, 8):
        emulator.behaviour(device=("iccid", order[position].split(":")[1]), outcome="rejected")
    criterion = {"failure": "rejected", "threshold": "20%", "min_devices": 10}
    step = dict(step_task("behaved", fleet, waves=[5, 15, "100%"], success_threshold="50%", abort=[criterion], wait="gate", wait_timeout=60),
                until="step.campaign_state | default('') in ['completed', 'aborted']", retries=5, delay=0)
    play = ansible.run([step])
    result = play.results["step"]
    assert result["failed"] and result["campaign_state"] == "aborted" and result["wave"] == 2, play.describe()

    finished = sorted((d for d in stored(ansible, "behaved").devices if d.finished_at is not None), key=lambda d: (d.finished_at, d.position))
    rejected = 0
    for count, entry in enumerate(finished, 1):
        rejected += entry.state == "rejected"
        if count >= 10 and rejected * 5 >= count:
            break
    else:
        pytest.fail("the criterion is met at no device of %s" % [(d.position, d.state) for d in finished])
    assert result["abort_reason"]["device"] == {"kind": "iccid", "id": entry.target.split(":")[1]}
    assert (result["abort_reason"]["finished"], result["abort_reason"]["failed"]) == (count, rejected)
    assert sorted(d.position for d in finished if d.state == "rejected") == [5, 7, 8]

    counts = received(emulator)
    assert [counts[order[position].split(":")[1]] for position in range(30)] == [1] * 15 + [0] * 15
    assert posts(emulator) == 2
    play = ansible.run([dict(step_task("behaved", fleet, register="again", fail_on_abort=False))])
    assert play.results["again"]["devices_sent"] == 0 and posts(emulator) == 2, play.describe()


def test_a_paused_or_aborted_campaign_sends_nothing_whatever_its_gate_says(emulator, ansible, receiver):
    """Wave 1 sent and delivered (its gate passed, wave 2 due): a step with state: paused, then steps of the paused
    campaign (paused again, check mode), send nothing; state: started resumes and sends wave 2. Aborted by hand with
    wave 3 due, no step sends again, not even state: started."""
    fleet = [device(n) for n in range(12)]
    step = step_task("held", fleet, waves=[2, 6, "100%"])
    assert ansible.run([step]).results["step"]["devices_sent"] == 2
    wait_until(lambda: stored(ansible, "held").state == "running", "wave 1's gate to pass", timeout=30)

    play = ansible.run([step_task("held", fleet, register="pause", state="paused"), step_task("held", fleet, register="still", state="paused")])
    for name in ("pause", "still"):
        assert play.results[name]["campaign_state"] == "paused" and play.results[name]["devices_sent"] == 0, play.describe()
    checked = ansible.run([dict(step_task("held", fleet, state="paused"), check_mode=True)]).results["step"]
    assert checked["campaign_state"] == "paused" and checked["waves"][0]["gate"]["state"] == "passed" and posts(emulator) == 1
    time.sleep(1)  # a paused campaign's gate has long passed: still nothing
    assert posts(emulator) == 1 and sum(received(emulator).values()) == 2

    resumed = ansible.run([step]).results["step"]
    assert resumed["wave"] == 2 and resumed["devices_sent"] == 4 and resumed["sent"] == 6 and posts(emulator) == 2, resumed
    wait_until(lambda: stored(ansible, "held").wave == 3, "wave 2's gate to pass", timeout=30)

    play = ansible.run([step_task("held", fleet, register="abort", state="aborted"), step_task("held", fleet, register="restart"),
                        step_task("held", fleet, register="pause", state="paused")])
    assert play.results["abort"]["campaign_state"] == "aborted" and play.results["abort"]["abort_reason"]["by_hand"], play.describe()
    for name in ("restart", "pause"):
        assert play.results[name]["campaign_state"] == "aborted" and play.results[name]["devices_sent"] == 0, play.describe()
    assert posts(emulator) == 2 and sum(received(emulator).values()) == 6
