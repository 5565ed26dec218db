"""A send over the fleet as inventory, in AWX job slices (issue 24, item 4): HOSTS hosts through the thingspace.m2m.devices
plugin (100,000 by default; BENCH_SLICE_HOSTS or --hosts), one ansible-playbook per slice with its ``--limit``, each
sending to its hosts with ``run_once`` (tests/utils/slices.py, the play docs/design.md describes), on one PostgreSQL
ledger (a new schema per run). Measured: one slice alone (a quarter of the hosts; its ansible-playbook still reads the
whole inventory, as a job slice does), then the 4 slices started together; the wall of each, every device checked once
in the emulator and sent in the ledger, and the longest time between two requests of one slice, alone and beside the
others: a slice waits for another's claim at most as long as that claim's transaction.

    python benchmarks/bench_slices.py [--hosts N] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_emulator
from bench_playbooks import ACCOUNT
from common import COLLECTIONS, PYTHON, ansible_env, emit
from postgresql import running_postgresql
from slices import limits, longest_gap, request_times, run_slices, sent_devices, write

from thingspace_emulator.testing import running_emulator

HOSTS = int(os.environ.get("BENCH_SLICE_HOSTS") or 100_000)
SLICES = 4
BATCH = 10_000


def run(server, hosts=HOSTS):
    """The walls of one slice alone and of the 4 slices at once, and the longest gap between two requests of a slice."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
    from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

    workdir = tempfile.mkdtemp(prefix="bench-slices-")
    try:
        fleet = os.path.join(workdir, "slices-fleet.json")
        bench_emulator.write_fleet(fleet, hosts)
        bin_dir = os.path.dirname(PYTHON)
        load = [os.getloadavg()[0]]
        figures = {"hosts": hosts, "slices": SLICES, "batch": BATCH}
        with running_emulator("--fleet", fleet, "--quiet", "--delivery-delay", "0", "--log-size", "1000", timeout=900) as emulator:
            for variant, slice_limits in (("one", limits(hosts, SLICES)[:1]), ("four", limits(hosts, SLICES))):
                database = Database(server.url(), server.password, server.new_schema())
                Ledger(database).close()  # the inventory plugin reads the ledger too: it must exist
                play = write(workdir, ACCOUNT, "SLICED", "bench-slices-%s" % variant, BATCH)
                env = ansible_env(workdir, emulator.url, THINGSPACE_LEDGER_URL=database.url, THINGSPACE_LEDGER_PASSWORD=database.password,
                                  THINGSPACE_LEDGER_SCHEMA=database.schema)
                emulator.reset()
                wall, results = run_slices(workdir, play, bin_dir, env, slice_limits, variant)
                expected = hosts * len(slice_limits) // SLICES
                sent = sent_devices(emulator)
                recorded = server.execute('SELECT state, count(*) FROM "%s".sends GROUP BY state' % database.schema)
                if len(sent) != expected or set(sent.values()) != {1} or recorded != [("sent", expected)]:
                    raise RuntimeError("%s: %d devices expected once each; the emulator has %d (%r times), the ledger %r"
                                       % (variant, expected, len(sent), set(sent.values()), recorded))
                gaps = [longest_gap(request_times(emulator, result["request_ids"])) for result in results]
                figures[variant] = {"wall": wall, "longest_gap": max(gaps), "devices_sent": [result["devices_sent"] for result in results]}
                load.append(os.getloadavg()[0])
        figures["load"] = load
        figures["ratio"] = figures["four"]["wall"] / figures["one"]["wall"]
        return figures
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=HOSTS)
    parser.add_argument("--json-out", metavar="FILE")
    args = parser.parse_args()
    with running_postgresql(durable=True) as server:
        result = run(server, args.hosts)
    emit(result, args.json_out)


if __name__ == "__main__":
    main()
