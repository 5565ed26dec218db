"""Benchmark of the event source thingspace.m2m.callbacks (not a test): how many callbacks per second it takes on
loopback. The source runs in a process of its own (this file with --serve) with the in-memory recorder and a
consumer that drains its queue, as ansible-rulebook would; this process posts distinct callbacks (half delivery
confirmations, half per-device "sent" messages, with listener credentials) with aiohttp over keep-alive
connections, then posts every one again (ThingSpace's retries: answered 200, queued once). Goal: >= 2,000/s.
Prints a JSON summary.

    python benchmarks/bench_callbacks.py [--callbacks N] [--connections C] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = "0000999999-00001"
USERNAME, PASSWORD = "bench", "bench-listener-password"
GOAL = 2000.0


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


async def serve(port):
    """The source with a consumer; on SIGUSR1 prints a JSON line with how many events it queued so far and the CPU
    seconds of this process, and stops on SIGTERM."""
    sys.path.insert(0, os.path.join(REPO, ".collections"))
    from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks

    queue = asyncio.Queue()
    consumed = 0

    async def consume():
        nonlocal consumed
        while True:
            await queue.get()
            consumed += 1

    source = asyncio.create_task(callbacks.main(queue, {"port": port, "check_port": False, "username": USERNAME, "password": PASSWORD}))
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


def measure(count, connections):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", str(port)], stdout=subprocess.PIPE, text=True)

    def snapshot():
        """(events queued, CPU seconds) of the source process."""
        server.send_signal(signal.SIGUSR1)
        line = json.loads(server.stdout.readline())
        return line["queued"], line["cpu"]

    try:
        wait_for_port(port, server)
        bodies = [body(number) for number in range(count)]
        _queued, cpu_before = snapshot()
        seconds, statuses = asyncio.run(post_all(port, bodies, connections))
        queued, cpu_new = snapshot()
        repeat_seconds, repeat_statuses = asyncio.run(post_all(port, bodies, connections))
        queued_after_repeats, cpu_repeats = snapshot()
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    rate = count / seconds
    return {
        "callbacks": count,
        "connections": connections,
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
        "goal_callbacks_per_second": GOAL,
        "met": rate >= GOAL and statuses == {200: count} and repeat_statuses == {200: count} and queued == queued_after_repeats == count,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json-out")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(serve(options.serve))
        return
    result = measure(options.callbacks, options.connections)
    print(json.dumps(result, indent=2))
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
