"""What one task costs in a worker forked as ansible-playbook forks it, without Ansible's own work: vz_sms_send as the
action plugin runs it in the controller (ControllerModule), the floor (action_plugins/bench_floor.py: one POST /sms, one
SQLite commit) and an empty child (fork and exit), alternated, on the emulator. The parent imports the action plugin and
bench_floor first, as ansible-playbook's main process does; the token cache and the ledger are warm (one send before).

    THINGSPACE_API_URL=... THINGSPACE_CLIENT_ID=... [ANSIBLE_COLLECTIONS_PATH=DIR] python worker_cost.py [--rounds 40] [--state-dir DIR]

Prints per kind the medians of the child's wall time, its CPU time (rusage, fork and exit included) and its minor page
faults (pages copied on write). The emulator's fleet must hold the MDNs 7000000000 + n for n < rounds + 1."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# The collection of ANSIBLE_COLLECTIONS_PATH (one directory), else this checkout's.
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(os.path.dirname(BENCH_DIR), ".collections")
sys.path[:0] = [os.path.join(BENCH_DIR, "action_plugins"), COLLECTIONS]

import bench_floor  # noqa: E402
from bench_playbooks import ACCOUNT, MESSAGE, mdn  # noqa: E402

from ansible_collections.thingspace.m2m.plugins.action import vz_sms_send  # noqa: E402
from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerModule, TaskExit  # noqa: E402


def _args(n):
    return {"account_name": ACCOUNT, "devices": [{"kind": "mdn", "id": mdn(n)}], "sms_message": MESSAGE}


def collection(n):
    try:
        vz_sms_send.vz_sms_send.main(partial(ControllerModule, _args(n), False, "thingspace.m2m.vz_sms_send", inject_invocation=True))
    except TaskExit as done:
        if not done.result.get("changed"):
            raise RuntimeError(done.result.get("msg"))


def floor(n):
    bench_floor.send_and_record(_args(n))


def empty(n):
    pass


def in_child(work, n):
    """(wall seconds, CPU seconds, minor faults) of ``work(n)`` in a forked child."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work(n)
        except BaseException:  # any failure of the child is reported by its exit status
            code = 1
        os._exit(code)
    _pid, status, usage = os.wait4(pid, 0)
    if status:
        raise RuntimeError("%s failed for device %d" % (work.__name__, n))
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_minflt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--state-dir", help="default: a new temporary directory")
    args = parser.parse_args()
    os.environ["THINGSPACE_STATE_DIR"] = args.state_dir or tempfile.mkdtemp(prefix="thingspace-worker-")
    kinds = (collection, floor, empty)
    for work in kinds:
        in_child(work, args.rounds)  # warm: tokens, ledger, the floor's file
    runs = {work.__name__: [] for work in kinds}
    for index in range(args.rounds):
        for work in kinds if index % 2 == 0 else kinds[::-1]:
            runs[work.__name__].append(in_child(work, index))
    result = {name: {"wall_ms": statistics.median(r[0] for r in values) * 1000, "cpu_ms": statistics.median(r[1] for r in values) * 1000,
                     "minor_faults": statistics.median(r[2] for r in values)} for name, values in runs.items()}
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
