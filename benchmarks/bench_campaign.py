"""Issue 21's campaign figures, in-process against the emulator (100,000 generated devices, clock sped up), on the
SQLite ledger and on PostgreSQL:

1. a three-wave campaign (``["1%", "10%", "100%"]``, success: delivered) of DEVICES devices, stepped as a playbook loop
   would (``campaign.step``, wait: none), against the baseline a user without campaigns has: one ``vz_sms_send`` of
   the same devices (``send.SmsSend``, what the module runs) plus the waits, i.e. recording every delivery. The
   deliveries are recorded by the callbacks source's own recorder (``deliveries.StoreRecorder``, one transaction per
   10,000), in-process in both runs, right after each send: the network's delivery time is left out of both;
2. one gate evaluation (``campaign.reading``: every device brought forward from sends and deliveries, abort and gate
   decided) over the 100,000 devices of the finished campaign;
3. ``max_per_minute`` over a 10-minute window: a campaign of 70,000 devices at 6,000 a minute with wait: gate, on a
   compressed clock (``step``'s ``clock`` and ``sleep``; the pace reads only that clock, the sends are real); the
   densest 10-minute window of the devices' ``sent_at`` against 10 x max_per_minute.

Issue 24's gate over a million devices is behind an option (not in make bench): ``--gate-devices 1000000`` writes a
finished campaign of that many devices straight into each store (``campaign._create``, then every device delivered by
one UPDATE, the campaign at its last wave; no send) and times the same gate evaluation over it.

    python benchmarks/bench_campaign.py [--devices 100000] [--rounds 3] [--gate-devices 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import COLLECTIONS  # also puts tests/utils on sys.path
from postgresql import running_postgresql

sys.path.insert(0, COLLECTIONS)

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign
from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.send import SmsSend, plan_send
from thingspace_emulator.testing import running_emulator

ACCOUNT = "0000999999-00001"
DEVICES = 100_000
WAVES = ["1%", "10%", "100%"]
PACE, PACED_DEVICES, WINDOW = 6000, 70_000, 600.0
GOALS = {"campaign_vs_send": 1.5, "gate_seconds": 1.0, "pace_excess": 0.05}
CREDENTIALS = Credentials("emulator-client", "emulator-secret", "emulator-user", "emulator-pass", None, None)
RECORD_CHUNK = 10_000


def write_fleet(path, count):
    generator = {"count": count, "first": 0, "ids": {"mdn": "7{n:09d}"}, "groupNames": {"all": 1}, "servicePlan": {"plan": 1}}
    fleet = {"accounts": [{"name": ACCOUNT, "groups": [{"name": "all"}], "servicePlans": ["plan"], "generate": [generator]}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(fleet, handle)


def selection(count):
    return [{"kind": "mdn", "id": "7%09d" % n} for n in range(count)]


def params(name, count, **options):
    """vz_sms_campaign's parameters, as the module would pass them."""
    values = dict(name=name, account_name=ACCOUNT, devices=selection(count), devices_file=None, group_name=None, service_plan=None, custom_fields=None,
                  sms_message="FW=21", data_encoding="7-bit", waves=WAVES, success=None, reply_pattern=None, reply_error_pattern=None,
                  success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None, skip_inactive=None, fail_on_abort=True, state="started",
                  wait="none", wait_timeout=0)
    values.update(options)
    return values


class Deliveries:
    """Records a Delivered confirmation for every sent device of the ledger not confirmed yet, as the callbacks source
    would record ThingSpace's callbacks."""

    def __init__(self, location):
        self.recorder = StoreRecorder(location)
        self.done = set()

    def record(self, ledger):
        events = []
        for _scope, _key, target, _state, request_id, _claim in ledger.records():
            if request_id and target not in self.done:
                self.done.add(target)
                body = {"requestId": request_id, "deviceIds": [{"kind": "Mdn", "id": target.split(":", 1)[1]}],
                        "deviceResponse": {"smsDeliveryResponse": {"confirmation": "Delivered"}}}
                events.append(callback_event(DELIVERY_SERVICE, ACCOUNT, body))
        for start in range(0, len(events), RECORD_CHUNK):
            self.recorder.record(events[start:start + RECORD_CHUNK])
        return len(events)

    def close(self):
        self.recorder.close()


def client(url):
    return ThingSpaceClient(url, CREDENTIALS, retries=0)


def plain_send(url, location, count):
    """vz_sms_send of the selection, then every delivery recorded: seconds."""
    started = time.perf_counter()
    ledger, deliveries = Ledger(location), Deliveries(location)
    try:
        plan = plan_send(dict(params("plain", count), idempotency_key="plain", filter_tracking="device", unknown_devices="fail",
                              batch_size=10000, max_devices=None, allow_empty=False, skip_inactive=False))
        result, failure = SmsSend(plan, client(url), ledger, service_scope(url), duplicate_window=0).run()
        assert failure is None and result["devices_sent"] == count, failure
        assert deliveries.record(ledger) == count
    finally:
        deliveries.close()
        ledger.close()
    return time.perf_counter() - started


def staged(url, location, count):
    """The three-wave campaign, stepped until completed, each wave's deliveries recorded after its send: (seconds, steps)."""
    started, steps = time.perf_counter(), 0
    ledger, deliveries = Ledger(location), Deliveries(location)
    try:
        while True:
            steps += 1
            result, failure = campaign.step(params("staged", count), client(url), ledger, service_scope(url))
            assert failure is None, failure
            if result["campaign_state"] == "completed":
                break
            deliveries.record(ledger)
            assert steps < 10, result["msg"]
        assert result["delivered"] == count, result["msg"]
    finally:
        deliveries.close()
        ledger.close()
    return time.perf_counter() - started, steps


def written_gate(location, count, rounds):
    """The gate evaluation over a finished campaign of ``count`` devices written into the store without sending:
    seconds of each round."""
    ledger = Ledger(location)
    try:
        definition = dict(campaign.DEFAULT_DEFINITION, waves=WAVES, message="hash", data_encoding="7-bit", selection={"devices": count})
        created = campaign._create(ledger, "http://127.0.0.1:9", "written", ACCOUNT, definition, dict(campaign.DEFAULT_POLICY),
                                   ["mdn:7%09d" % n for n in range(count)], time.time(), False)
        with ledger.store.transaction():
            ledger.store.execute("UPDATE campaign_devices SET state = 'delivered', request_id = 'r', sent_at = ?, finished_at = ? WHERE campaign_id = ?",
                                 (time.time(), time.time(), created.id))
            campaign._recount(ledger.store, created.id)
            # At its last wave, as a campaign whose last confirmations came in: a step reads that wave's devices through the table.
            ledger.store.execute("UPDATE campaigns SET wave = ?, state = 'waiting' WHERE id = ?", (len(created.ends), created.id))
    finally:
        ledger.close()
    ledger = Ledger(location, read_only=True)
    try:
        times = []
        for _round in range(rounds):
            started = time.perf_counter()
            found = campaign.reading(ledger, "http://127.0.0.1:9", "written", whole=False)
            times.append(time.perf_counter() - started)
            assert found.state == "completed" and found.states()["delivered"] == count
        return times
    finally:
        ledger.close()


def gate_seconds(url, location, rounds, count):
    """campaign.reading over the finished campaign's devices: seconds of each round."""
    ledger = Ledger(location, read_only=True)
    try:
        times = []
        for _round in range(rounds):
            started = time.perf_counter()
            found = campaign.reading(ledger, service_scope(url), "staged", whole=False)
            times.append(time.perf_counter() - started)
            assert found.state == "completed" and found.states()["delivered"] == count
        return times
    finally:
        ledger.close()


class Clock:
    """A compressed clock: sleeping moves it on at once."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(0.0, seconds)


def paced(url, location):
    """A campaign of PACED_DEVICES at PACE a minute, wait: gate, on the compressed clock: the densest WINDOW of sent_at."""
    clock = Clock()
    ledger = Ledger(location)
    try:
        options = params("paced", PACED_DEVICES, waves=["100%"], max_per_minute=PACE, wait="gate", wait_timeout=1)
        started = time.perf_counter()
        result, failure = campaign.step(options, client(url), ledger, service_scope(url), clock=clock, sleep=clock.sleep)
        real = time.perf_counter() - started
        assert failure is None and result["sent"] == PACED_DEVICES, result["msg"]
        sent = sorted(device.sent_at for device in campaign.load(ledger, service_scope(url), "paced").devices)
    finally:
        ledger.close()
    densest, first = 0, 0
    for last, at in enumerate(sent):
        while at - sent[first] >= WINDOW:
            first += 1
        densest = max(densest, last - first + 1)
    allowed = PACE * WINDOW / 60
    return {"max_per_minute": PACE, "devices": PACED_DEVICES, "window_seconds": WINDOW, "densest_window": densest, "allowed": allowed,
            "excess": densest / allowed - 1, "emulated_seconds": round(sent[-1] - sent[0], 1), "real_seconds": round(real, 1)}


def run_written(count, rounds=3):
    """The gate evaluation over ``count`` written devices on both stores: {store: median seconds}."""
    results = {"gate_devices": count}
    with tempfile.TemporaryDirectory(prefix="thingspace-bench-campaign-") as workdir, running_postgresql(durable=True) as server:
        for store, location in (("sqlite", os.path.join(workdir, "written.db")), ("postgresql", Database(server.url(), server.password, server.new_schema()))):
            results[store] = statistics.median(written_gate(location, count, rounds))
            print("%s: gate over %d written devices %.2f s" % (store, count, results[store]), flush=True)
    return results


def run(server=None, count=DEVICES, rounds=3):
    results = {"devices": count, "waves": WAVES}
    with tempfile.TemporaryDirectory(prefix="thingspace-bench-campaign-") as workdir, contextlib.ExitStack() as stack:
        fleet = os.path.join(workdir, "fleet.json")
        write_fleet(fleet, max(count, PACED_DEVICES))
        if server is None:
            server = stack.enter_context(running_postgresql(durable=True))
        emulator = stack.enter_context(running_emulator("--fleet", fleet, "--quiet", "--delivery-delay", "0", "--clock-speed", "3600", timeout=300))
        stores = {"sqlite": lambda name: os.path.join(workdir, name + ".db"),
                  "postgresql": lambda name: Database(server.url(), server.password, server.new_schema())}
        for store, location in stores.items():
            emulator.reset()
            figures = results[store] = {}
            figures["send_seconds"] = plain_send(emulator.url, location("plain"), count)
            emulator.reset()
            where = location("staged")
            figures["campaign_seconds"], figures["steps"] = staged(emulator.url, where, count)
            figures["ratio"] = figures["campaign_seconds"] / figures["send_seconds"]
            figures["gate_seconds"] = statistics.median(gate_seconds(emulator.url, where, rounds, count))
            emulator.reset()
            figures["pace"] = paced(emulator.url, location("paced"))
            print("%s: %s" % (store, json.dumps(figures)), flush=True)
    results["goals"] = GOALS
    return results


def check_goals(results):
    """Whether every figure meets its goal."""
    return all(results[store]["ratio"] <= GOALS["campaign_vs_send"] and results[store]["gate_seconds"] < GOALS["gate_seconds"]
               and abs(results[store]["pace"]["excess"]) <= GOALS["pace_excess"] for store in ("sqlite", "postgresql"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rounds", type=int, default=3, help="gate evaluations, the median is reported")
    parser.add_argument("--gate-devices", type=int, help="only the gate evaluation, over a campaign of this many devices written into the store")
    args = parser.parse_args()
    if args.gate_devices:
        print(json.dumps(run_written(args.gate_devices, args.rounds), indent=2))
        return 0
    results = run(count=args.devices, rounds=args.rounds)
    print(json.dumps(results, indent=2))
    return 0 if check_goals(results) else 1


if __name__ == "__main__":
    sys.exit(main())
