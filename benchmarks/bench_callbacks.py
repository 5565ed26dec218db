"""Benchmark of the event source thingspace.m2m.callbacks (not a test): how many callbacks per second it takes on
loopback, recording them in memory, in the SQLite ledger (the default ledger file of a temporary state_dir) and in a
PostgreSQL ledger (a server of its own, tests/utils/postgresql.py, fsync on). The source runs in a process of its own
(this file with --serve) with a consumer that drains its queue, as ansible-rulebook would; this process posts
distinct callbacks (half delivery confirmations, half per-device "sent" messages, with listener credentials) with
aiohttp over keep-alive connections, then posts every one again (ThingSpace's retries: answered 200, queued once).
None may be lost: every callback answered 200, queued once, and in a store exactly once (its ``callbacks`` table
holds the identity of each callback posted, and nothing else). The stores take turns, ``--rounds`` times; the
median rate counts. Goal: >= 2,000/s (memory and SQLite). Prints a JSON summary.

    python benchmarks/bench_callbacks.py [--stores memory,sqlite,postgresql] [--callbacks N] [--connections C] [--rounds N]
                                         [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))
sys.path.insert(0, os.path.join(REPO, "tests", "utils"))
ACCOUNT = "0000999999-00001"
USERNAME, PASSWORD = "bench", "bench-listener-password"
GOAL = 2000.0
STORES = ("memory", "sqlite", "postgresql")
# The stores the goal applies to; PostgreSQL is reported.
GOAL_STORES = ("memory", "sqlite")


def body(number):
    """Callback ``number``: a delivery confirmation when even, a per-device "sent" message when odd; all distinct."""
    mdn = "%010d" % (7000000000 + number // 2)
    request_id = "00000000-0000-4000-8000-%012d" % (number // 2)
    if number % 2 == 0:
        return "SMSDeliveryConfirmation", {"username": USERNAME, "password": PASSWORD, "requestId": request_id,
                                           "deviceIds": [{"kind": "Mdn", "id": mdn}],
                                           "deviceResponse": {"smsDeliveryResponse": {"confirmation": "Delivered"}}}
    return "EnhancedConnectivityService", {"username": USERNAME, "password": PASSWORD, "requestId": request_id,
                                           "deviceIds": [{"kind": "Iccid", "id": "891480000%011d" % number}, {"kind": "Mdn", "id": mdn}],
                                           "comment": "SendSmsMessage,Performed action on device.", "status": "Success",
                                           "callbackCount": 1, "maxCallbackThreshold": 4}


async def serve(args):
    """The source with ``args`` (its arguments) and a consumer; on SIGUSR1 prints a JSON line with how many events it
    queued so far and the CPU seconds of this process, and stops on SIGTERM."""
    from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks

    queue = asyncio.Queue()
    consumed = 0

    async def consume():
        nonlocal consumed
        while True:
            await queue.get()
            consumed += 1

    source = asyncio.create_task(callbacks.main(queue, args))
    consumer = asyncio.create_task(consume())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps({"queued": consumed, "cpu": time.process_time()}), flush=True))
    await stop.wait()
    source.cancel()
    consumer.cancel()
    await asyncio.gather(source, consumer, return_exceptions=True)


async def post_all(port, bodies, connections):
    """Post every (service, body) with ``connections`` concurrent keep-alive connections; (seconds, statuses)."""
    statuses = {}
    pending = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker():
            for service, callback in pending:
                async with session.post("http://127.0.0.1:%d/%s/%s" % (port, ACCOUNT, service), json=callback) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _n in range(connections)))
        return time.perf_counter() - started, statuses


def wait_for_port(port, process):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the source did not start")


def identities(bodies):
    """The event_id the source gives each callback of ``bodies``."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import callback_event

    return [callback_event(service, ACCOUNT, {name: value for name, value in callback.items() if name not in ("username", "password")})["event_id"]
            for service, callback in bodies]


def recorded(location):
    """(rows, distinct event ids) of the ``callbacks`` table of the ledger at ``location``."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

    ledger = Ledger(location, read_only=True)
    try:
        event_ids = [event_id for (event_id,) in ledger.store.rows("SELECT event_id FROM callbacks")]
    finally:
        ledger.close()
    return len(event_ids), set(event_ids)


def measure(count, connections, store="memory", server=None):
    """One pass of ``count`` distinct callbacks and one of their repeats into the source recording in ``store``
    (``server``: a running tests/utils/postgresql.py Server, for postgresql)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = {"port": port, "check_port": False, "username": USERNAME, "password": PASSWORD}
    env = {name: value for name, value in os.environ.items() if not name.startswith("THINGSPACE_")}
    state_dir = location = None
    if store == "memory":
        args["store"] = "memory"
    elif store == "sqlite":
        from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import LEDGER_NAME

        args["state_dir"] = state_dir = tempfile.mkdtemp(prefix="thingspace-bench-callbacks-")
        location = os.path.join(state_dir, LEDGER_NAME)
    else:
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        location = Database(server.url(), server.password, server.new_schema())
        env.update(THINGSPACE_LEDGER_URL=location.url, THINGSPACE_LEDGER_PASSWORD=location.password, THINGSPACE_LEDGER_SCHEMA=location.schema)
    source = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", json.dumps(args)], stdout=subprocess.PIPE, text=True, env=env)

    def snapshot():
        """(events queued, CPU seconds) of the source process."""
        source.send_signal(signal.SIGUSR1)
        line = json.loads(source.stdout.readline())
        return line["queued"], line["cpu"]

    try:
        wait_for_port(port, source)
        bodies = [body(number) for number in range(count)]
        _queued, cpu_before = snapshot()
        seconds, statuses = asyncio.run(post_all(port, bodies, connections))
        queued, cpu_new = snapshot()
        repeat_seconds, repeat_statuses = asyncio.run(post_all(port, bodies, connections))
        queued_after_repeats, cpu_repeats = snapshot()
    finally:
        source.send_signal(signal.SIGTERM)
        source.communicate(timeout=30)
    try:
        rows, stored = recorded(location) if location is not None else (None, None)
    finally:
        if state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    rate = count / seconds
    none_lost = statuses == {200: count} and repeat_statuses == {200: count} and queued == queued_after_repeats == count
    if location is not None:
        none_lost = none_lost and rows == count and stored == set(identities(bodies))
    return {
        "seconds": round(seconds, 3),
        "callbacks_per_second": round(rate),
        # Less sensitive to other load on a shared machine than the wall-clock rate.
        "callbacks_per_source_cpu_second": round(count / (cpu_new - cpu_before)),
        "statuses": statuses,
        "repeats_per_second": round(count / repeat_seconds),
        "repeats_per_source_cpu_second": round(count / (cpu_repeats - cpu_new)),
        "repeat_statuses": repeat_statuses,
        "queued": queued,
        "queued_after_repeats": queued_after_repeats,
        "rows_recorded": rows,
        "none_lost": none_lost,
    }


def run(stores=STORES, count=20000, connections=16, rounds=3, server=None):
    """store → the passes of ``rounds`` rounds (the stores in turn each round) and their medians; PostgreSQL on
    ``server`` (one is started when not given). The goal holds when the median rate reaches it and no round lost
    a callback."""
    with contextlib.ExitStack() as stack:
        if "postgresql" in stores and server is None:
            from postgresql import running_postgresql

            server = stack.enter_context(running_postgresql(durable=True))
        passes = {store: [] for store in stores}
        for _round in range(rounds):
            for store in stores:
                passes[store].append(measure(count, connections, store, server))
    results = {}
    for store, runs in passes.items():
        rate = statistics.median(run["callbacks_per_second"] for run in runs)
        none_lost = all(run["none_lost"] for run in runs)
        results[store] = {
            "callbacks": count,
            "connections": connections,
            "rounds": runs,
            "callbacks_per_second": rate,
            "callbacks_per_second_min": min(run["callbacks_per_second"] for run in runs),
            "callbacks_per_second_max": max(run["callbacks_per_second"] for run in runs),
            "callbacks_per_source_cpu_second": statistics.median(run["callbacks_per_source_cpu_second"] for run in runs),
            "repeats_per_second": statistics.median(run["repeats_per_second"] for run in runs),
            "none_lost": none_lost,
            "goal_callbacks_per_second": GOAL if store in GOAL_STORES else None,
            "met": none_lost and (rate >= GOAL or store not in GOAL_STORES),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        }
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated, of %s (default: all)" % ", ".join(STORES))
    parser.add_argument("--callbacks", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="passes per store, the stores in turn (default %(default)s)")
    parser.add_argument("--json-out")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(serve(json.loads(options.serve)))
        return
    stores = [store.strip() for store in options.stores.split(",") if store.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error("unknown store(s) %s; the stores are %s" % (", ".join(unknown), ", ".join(STORES)))
    result = run(stores, options.callbacks, options.connections, options.rounds)
    print(json.dumps(result, indent=2))
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
