"""vz_sms_delivery_info over a fleet (issue 24, item 2): a ledger of DEVICES devices sent under one idempotency key, in
batches of 10,000 (``Ledger.claim`` and ``settle``, as the send writes them), with the callbacks the source records for
each device (its "sent" notice naming its four identifiers, its delivery confirmation naming its MDN: Delivered) and a
Request Complete per request, recorded through ``deliveries.StoreRecorder`` as the source records them, on SQLite and on
PostgreSQL (a server of its own, tests/utils/postgresql.py, fsync on); the bytes each table takes on disk. Then the
module reads it: each run is a new process that runs ``vz_sms_delivery_info``'s ``main`` with ``idempotency_key`` (its
arguments as Ansible passes them; the result printed as a module prints it), and its wall time, CPU and peak resident
memory (VmHWM) are taken: ``after`` lists every device, ``counted`` (``list_states: []``) only counts them. ``--before
REF`` runs the module of the collection at REF on the same ledgers (every device listed), alternated with this
checkout's.

    python benchmarks/bench_delivery_info.py [--devices N] [--rounds N] [--before REF] [--sqlite-only] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import COLLECTIONS, PYTHON, before_collection, emit, peak_kb, summary  # also puts tests/utils on sys.path
from postgresql import running_postgresql

DEVICES = int(os.environ.get("BENCH_DEVICES") or 1_000_000)
BATCH = 10_000
KEY = "fleet-apn-v1"
API_URL = "http://127.0.0.1:8443"
ACCOUNT = "0000123456-00001"
GOAL_SECONDS = 2.0
# Callbacks per call of the recorder, as the source records those that arrive together under load.
RECORDED_TOGETHER = 1000


def _collection(collections):
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.thingspace.m2m.plugins.module_utils import callback_events, deliveries, ledger

    return callback_events, deliveries, ledger


def build(location, devices):
    """Write the fleet's ledger at ``location`` (a path or a ``_store_postgresql.Database``); its bytes per table."""
    callback_events, deliveries, ledger_mod = _collection(COLLECTIONS)
    ledger = ledger_mod.Ledger(location)
    recorder = deliveries.StoreRecorder(location)
    scope = ledger_mod.service_scope(API_URL)
    try:
        for start in range(0, devices, BATCH):
            numbers = range(start, min(devices, start + BATCH))
            claim_id, claimed = ledger.claim(scope, KEY, ["mdn:7%09d" % n for n in numbers])
            assert len(claimed) == len(numbers)
            request_id = str(uuid.uuid4())
            ledger.settle(claim_id, ledger_mod.SENT, request_id)
            events = [event for n in numbers for event in _callbacks(callback_events, request_id, n)]
            events.append(callback_events.callback_event(callback_events.SMS_SERVICE, ACCOUNT, dict(
                requestId=request_id, comment="SendSmsMessage,Request Completed Processing.", summary={"devicesRequested": len(numbers)})))
            for first in range(0, len(events), RECORDED_TOGETHER):
                some = events[first:first + RECORDED_TOGETHER]
                recorder.record(some, queued=[event["event_id"] for event in some])
    finally:
        recorder.close()
        ledger.close()
    return _sizes(location)


def _callbacks(callback_events, request_id, number):
    """The callbacks of fleet device ``number`` as the source records them: its "sent" notice, naming its four
    identifiers, and its delivery confirmation, naming its MDN."""
    ids = [{"kind": "Iccid", "id": "8914800001%09d0" % number}, {"kind": "Mdn", "id": "7%09d" % number},
           {"kind": "Imei", "id": "35999999%07d" % number}, {"kind": "Msisdn", "id": "17%09d" % number}]
    sent = dict(requestId=request_id, deviceIds=ids, status="Success", comment="SendSmsMessage,Performed action on device.")
    confirmed = dict(requestId=request_id, deviceIds=ids[1:2], deviceResponse={"smsDeliveryResponse": {"confirmation": "Delivered"}})
    return [callback_events.callback_event(callback_events.SMS_SERVICE, ACCOUNT, sent),
            callback_events.callback_event(callback_events.DELIVERY_SERVICE, ACCOUNT, confirmed)]


def _sizes(location):
    """Bytes on disk per table of the ledger (with its indexes): the sends (``sends`` and ``send_keys``), ``deliveries``
    and ``callbacks``."""
    tables = {"sends": ("sends", "send_keys"), "deliveries": ("deliveries",), "callbacks": ("callbacks",)}
    _events, _deliveries, ledger_mod = _collection(COLLECTIONS)
    ledger = ledger_mod.Ledger(location)
    try:
        if isinstance(location, str):
            rows = ledger.store.rows("SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name")
        else:
            rows = [(table, ledger.store.rows("SELECT pg_total_relation_size(?::regclass)", ('"%s".%s' % (location.schema, table),))[0][0])
                    for names in tables.values() for table in names]
    finally:
        ledger.close()
    found = dict(rows)
    return {name: sum(found.get(table, 0) for table in names) for name, names in tables.items()}


def module_args(location, listed=None):
    args = {"idempotency_key": KEY, "api_url": API_URL}
    if listed is not None:
        args["list_states"] = listed
    if isinstance(location, str):
        args["ledger_path"] = location
    else:
        args.update(ledger_url=location.url, ledger_password=location.password, ledger_schema=location.schema)
    return args


def measure(collections, location, devices, out_path, listed=None):
    """One run of the module of ``collections`` in a new process (``list_states``: ``listed``): wall, CPU, peak resident
    memory (MB, the process's VmHWM, which it writes as its last line on stderr)."""
    with open(out_path, "wb") as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([PYTHON, os.path.abspath(__file__), "--driver", collections, json.dumps(module_args(location, listed))],
                                   stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        err.seek(0)
        peak = int(err.read().split()[-1])
    with open(out_path, encoding="utf-8") as handle:
        result = json.loads(handle.read())
    if os.waitstatus_to_exitcode(status) or result.get("failed") or result["states"]["Delivered"] != devices:
        raise RuntimeError("vz_sms_delivery_info did not report %d devices Delivered: %s" % (devices, result.get("msg")))
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": peak / 1024}


def driver(collections, args):
    """In the measured process: the module's main with ``args``, as Ansible runs a module (its result printed as JSON),
    then its peak resident memory (kB) on stderr."""
    sys.path.insert(0, collections)
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_delivery_info

    code = 0
    with patch_module_args(json.loads(args)):
        try:
            vz_sms_delivery_info.main()
        except SystemExit as exit:
            code = exit.code
    sys.stderr.write("\n%d\n" % peak_kb())
    return code


def run(devices=DEVICES, rounds=3, server=None, before=None, workdir=None):
    """The module's runs over a ledger of ``devices``, per backend (SQLite, and PostgreSQL on ``server``): build time,
    ledger size, and per variant (``after``: this checkout, ``before``: the collection at ``before``) the runs, the
    order alternated every round."""
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="bench-delivery-info-")
    try:
        variants = {"after": (COLLECTIONS, None), "counted": (COLLECTIONS, [])}
        if before:
            variants["before"] = (before_collection(workdir, before)[0], None)
        _collection(COLLECTIONS)
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        locations = {"sqlite": os.path.join(workdir, "ledger.sqlite3")}
        if server is not None:
            locations["postgresql"] = Database(server.url(), server.password, server.new_schema())
        results = {"devices": devices, "rounds": rounds, "goal_seconds": GOAL_SECONDS, "before": before}
        for backend, location in locations.items():
            started = time.perf_counter()
            sizes = build(location, devices)
            built = time.perf_counter() - started
            runs, load = {name: [] for name in variants}, [os.getloadavg()[0]]
            for index in range(rounds):
                for name in list(variants) if index % 2 == 0 else list(variants)[::-1]:
                    collections, listed = variants[name]
                    runs[name].append(measure(collections, location, devices, os.path.join(workdir, "out.json"), listed))
                load.append(os.getloadavg()[0])
            results[backend] = {
                "build_seconds": built,
                "ledger_bytes": sum(sizes.values()),
                "table_bytes": sizes,
                "load": [round(value, 2) for value in load],
                "wall": {name: summary([entry["wall"] for entry in values]) for name, values in runs.items()},
                "cpu": {name: summary([entry["cpu"] for entry in values]) for name, values in runs.items()},
                "maxrss_mb": {name: max(entry["maxrss_mb"] for entry in values) for name, values in runs.items()},
            }
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--driver":
        return driver(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", metavar="REF", help="also the module of the collection at this git ref, on the same ledgers")
    parser.add_argument("--sqlite-only", action="store_true", help="no PostgreSQL server")
    parser.add_argument("--json-out", metavar="FILE")
    args = parser.parse_args()
    if args.sqlite_only:
        emit(run(args.devices, args.rounds, before=args.before), args.json_out)
        return 0
    with running_postgresql(durable=True) as server:
        emit(run(args.devices, args.rounds, server=server, before=args.before), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
