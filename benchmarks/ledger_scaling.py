"""Ledger scaling: the ledger work of vz_sms_send for 1,000, 10,000 and 100,000 devices, with the collection's own
code (module_utils from this checkout): checking the device list (``plan_send``), the diff against an empty ledger
(first run, ``SmsSend.run`` in check mode), claiming and settling the 10 batches (``Ledger.claim``/``settle``) and
the diff of a re-run where every device is recorded as sent (``SmsSend.run``, nothing to send), and for reference the
same dictionary work without a ledger. No HTTP. On a new
SQLite file per size and round, or with ``--postgresql`` in a new schema of a PostgreSQL server it starts
(tests/utils/postgresql.py, fsync on).

    python benchmarks/ledger_scaling.py [--rounds N] [--postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from common import COLLECTIONS
from postgresql import running_postgresql

SIZES = (1000, 10000, 100000)
BATCHES = 10
PHASES = ("plan", "first_diff", "claim_settle", "rerun_diff", "open_full", "reference", "bytes_per_device")


def _import():
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.thingspace.m2m.plugins.module_utils import ledger, send

    return ledger, send


def _params(count):
    return {
        # No account: check mode would read the account's device list to check the devices against it.
        "account_name": None,
        "devices": [{"kind": "mdn", "id": "%d" % (7000000000 + n)} for n in range(count)],
        "devices_file": None,
        "group_name": None,
        "service_plan": None,
        "custom_fields": None,
        "sms_message": "benchmark",
        "data_encoding": "7-bit",
        "idempotency_key": None,
        "force": False,
        "resend_unconfirmed": False,
        "max_devices": None,
        "allow_empty": False,
        "unknown_devices": "fail",
        "skip_inactive": False,
        "batch_size": min(count // BATCHES, 10000),  # 10 batches, at most 10,000 devices each (the API's limit): 100 at 1,000,000
        "ledger_path": None,
    }


class _NoClient:
    def __getattr__(self, name):
        raise AssertionError("the ledger benchmark must not reach the client")


def measure(count, location):
    """Seconds of each phase for ``count`` devices, in the new ledger at ``location`` (a path or a Database)."""
    ledger_mod, send_mod = _import()
    params = _params(count)
    scope = "http://127.0.0.1"
    times = {}

    started = time.perf_counter()
    plan = send_mod.plan_send(params)
    times["plan"] = time.perf_counter() - started

    ledger = ledger_mod.Ledger(location)
    try:
        started = time.perf_counter()
        result, failure = send_mod.SmsSend(plan, _NoClient(), ledger, scope, check_mode=True, batch_size=params["batch_size"]).run()
        times["first_diff"] = time.perf_counter() - started
        assert failure is None and result["devices_sent"] == count, result.get("msg")

        targets = ["%s:%s" % device for device in plan.devices]
        size = params["batch_size"]
        started = time.perf_counter()
        for start in range(0, count, size):
            claim_id, claimed = ledger.claim(scope, plan.key, targets[start:start + size])
            ledger.settle(claim_id, ledger_mod.SENT, str(uuid.uuid4()))
        times["claim_settle"] = time.perf_counter() - started
        assert len(claimed) == size

        started = time.perf_counter()
        result, failure = send_mod.SmsSend(plan, _NoClient(), ledger, scope, batch_size=params["batch_size"]).run()
        times["rerun_diff"] = time.perf_counter() - started
        assert failure is None and result["devices_sent"] == 0 and result["devices_skipped"] == count, result.get("msg")

        started = time.perf_counter()
        ledger_mod.Ledger(location).close()
        times["open_full"] = time.perf_counter() - started

        # The machine's own growth for the diff's in-memory work, no ledger: a dict of the targets' states built from
        # rows, then looked up for every target.
        rows = [(target, ledger_mod.SENT, None) for target in targets]
        started = time.perf_counter()
        states = {target: state for target, state, _request_id in rows}
        missing = [target for target in targets if states.get(target) is None]
        times["reference"] = time.perf_counter() - started
        assert not missing
    finally:
        ledger.close()
    times["bytes_per_device"] = _size(location) / count
    return times


def _size(location):
    """The ledger's size on disk in bytes: the SQLite file (its WAL is checkpointed into it when the last connection
    closes), or the PostgreSQL tables of the sends with their indexes and TOAST (pg_total_relation_size)."""
    if isinstance(location, str):
        return os.path.getsize(location) + (os.path.getsize(location + "-wal") if os.path.exists(location + "-wal") else 0)
    ledger_mod, _send = _import()
    ledger = ledger_mod.Ledger(location)
    try:
        return sum(ledger.store.rows("SELECT pg_total_relation_size(?::regclass)", ('"%s".%s' % (location.schema, table),))[0][0]
                   for table in ("sends", "send_keys"))
    finally:
        ledger.close()


def run(rounds=3, sizes=SIZES, server=None):
    """Median seconds per phase and size, and the growth factor of each phase from one size to the next: on SQLite
    files, or in new schemas of ``server`` (a running tests/utils/postgresql.py Server)."""
    workdir = tempfile.mkdtemp(prefix="bench-ledger-")
    if server is None:
        def location(count):
            return os.path.join(workdir, "ledger-%d-%s.sqlite3" % (count, uuid.uuid4().hex[:8]))
    else:
        _import()
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        def location(count):
            return Database(server.url(), server.password, server.new_schema())
    try:
        runs = {count: {phase: [] for phase in PHASES} for count in sizes}
        for _round in range(rounds):
            for count in sizes:
                for phase, seconds in measure(count, location(count)).items():
                    runs[count][phase].append(seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {str(count): {phase: statistics.median(values) for phase, values in phases.items()} for count, phases in runs.items()}
    growth = {}
    for smaller, larger in zip(sizes, sizes[1:]):
        growth["%d->%d" % (smaller, larger)] = {phase: medians[str(larger)][phase] / medians[str(smaller)][phase] for phase in PHASES}
    runs = {str(count): phases for count, phases in runs.items()}
    return {"sizes": list(sizes), "batches": BATCHES, "rounds": rounds, "seconds": medians, "runs": runs, "growth": growth}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgresql", action="store_true", help="measure the PostgreSQL ledger (starts a server)")
    parser.add_argument("--sizes", type=lambda text: tuple(int(size) for size in text.split(",")), default=SIZES,
                        help="device counts, comma-separated (default %s)" % ",".join(str(size) for size in SIZES))
    args = parser.parse_args()
    if not args.postgresql:
        print(json.dumps(run(args.rounds, args.sizes), indent=2))
        return
    with running_postgresql(durable=True) as server:
        print(json.dumps(run(args.rounds, args.sizes, server=server), indent=2))


if __name__ == "__main__":
    main()
