"""Benchmark of the ThingSpace emulator (not a test): POST /sms latency with 10,000 device ids, 100,000
devices in 10 requests, and callback fan-out to a loopback listener in another process while the API
keeps answering. Prints a JSON summary; goals: < 1 s, < 5 s, >= 2,000 callbacks/s.

    python benchmarks/bench_emulator.py [--json-out FILE]
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from thingspace_emulator.testing import running_emulator

ACCOUNT = "0000999999-00001"
DEVICES = 100_000
BATCH = 10_000
GOALS = {"sms_10k_seconds": 1.0, "sms_100k_in_10_seconds": 5.0, "callbacks_per_second": 2000.0}


def write_fleet(path: str, count: int = DEVICES) -> None:
    """One account of ``count`` active devices (at most 1,000,000: the IMEI pattern), each with iccid, imei, mdn and msisdn, in 4 groups,
    made from patterns (the fleet file's generated devices)."""
    generator = {
        "count": count,
        "first": 0,
        "ids": {"iccid": "8914800001{n:09d}{luhn}", "imei": "35999999{n:06d}{luhn}", "mdn": "7{n:09d}", "msisdn": "17{n:09d}"},
        "groupNames": {f"group-{g}": 1 for g in range(4)},
        "servicePlan": {"plan": 1},
    }
    fleet = {"accounts": [{"name": ACCOUNT, "groups": [{"name": f"group-{g}"} for g in range(4)], "servicePlans": ["plan"], "generate": [generator]}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(fleet, handle)


class Client:
    """A keep-alive connection that follows the vendor's documentation."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {}

    def request(self, method: str, path: str, body=None, headers=None) -> tuple:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.connection.request(method, path, data, {"Content-Type": "application/json", **self.headers, **(headers or {})})
        response = self.connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None

    def authenticate(self) -> None:
        basic = b64encode(b"emulator-client:emulator-secret").decode()
        form = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
        token = self.request("POST", "/api/ts/v1/oauth2/token", b"grant_type=client_credentials", form)[1]
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}
        session = self.request("POST", "/api/m2m/v1/session/login", {"username": "emulator-user", "password": "emulator-pass"})[1]
        self.headers["VZ-M2M-Token"] = session["sessionToken"]

    def timed(self, method: str, path: str, body=None) -> float:
        started = time.perf_counter()
        status, answer = self.request(method, path, body)
        elapsed = time.perf_counter() - started
        assert status == 200, (status, answer)
        return elapsed


def send_body(first: int, count: int) -> bytes:
    ids = [{"kind": "mdn", "id": f"{7000000000 + n}"} for n in range(first, first + count)]
    return json.dumps({"accountName": ACCOUNT, "deviceIds": ids, "smsMessage": "benchmark"}).encode()


def run_listener(port_file: str) -> None:
    """Listener process: answers 200 to every POST; GET /count returns how many came."""
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                count[0] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            payload = json.dumps({"count": count[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


def start_listener(workdir: str) -> tuple:
    port_file = os.path.join(workdir, "listener-port")
    process = subprocess.Popen([sys.executable, __file__, "--listener", port_file])
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the callback listener did not start")
        time.sleep(0.02)
    with open(port_file) as handle:
        return process, int(handle.read())


def bench_sends(client: Client) -> dict:
    latencies = [client.timed("POST", "/api/m2m/v1/sms", send_body(0, BATCH)) for _attempt in range(5)]
    bodies = [send_body(first, BATCH) for first in range(0, DEVICES, BATCH)]
    started = time.perf_counter()
    for body in bodies:
        client.timed("POST", "/api/m2m/v1/sms", body)
    total = time.perf_counter() - started
    return {
        "sms_10k_seconds": max(latencies),
        "sms_10k_median_seconds": statistics.median(latencies),
        "sms_100k_in_10_seconds": total,
    }


def bench_fan_out(client: Client, emulator, workdir: str) -> dict:
    listener, port = start_listener(workdir)
    try:
        counter = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def received() -> int:
            counter.request("GET", "/count")
            return json.loads(counter.getresponse().read())["count"]

        for service in ("EnhancedConnectivityService", "SMSDeliveryConfirmation"):
            status = client.request("POST", f"/api/m2m/v1/callbacks/{ACCOUNT}", {"name": service, "url": f"http://127.0.0.1:{port}/{service}"})[0]
            assert status == 200
        expected = 2 * BATCH + 1
        before = received()
        probe = Client(emulator.url)
        probe.headers = client.headers
        started = time.perf_counter()
        client.timed("POST", "/api/m2m/v1/sms", send_body(0, BATCH))
        health, api = [], []
        while received() - before < expected:
            health.append(probe.timed("GET", "/_emulator/health"))
            api.append(probe.timed("GET", f"/api/m2m/v1/callbacks/{ACCOUNT}"))
            time.sleep(0.02)
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"only {received() - before} of {expected} callbacks in 120 s")
        elapsed = time.perf_counter() - started
        return {
            "callbacks": expected,
            "fan_out_seconds": elapsed,
            "callbacks_per_second": expected / elapsed,
            "health_during_fan_out_ms": {"median": 1000 * statistics.median(health), "max": 1000 * max(health), "samples": len(health)},
            "api_during_fan_out_ms": {"median": 1000 * statistics.median(api), "max": 1000 * max(api), "samples": len(api)},
        }
    finally:
        listener.terminate()
        listener.wait()


def run_on(emulator, workdir: str) -> dict:
    """Both measurements on an emulator that already serves write_fleet()'s fleet (started with
    --allow-any-callback-port and --delivery-delay 0); resets it first and in between."""
    emulator.reset()
    client = Client(emulator.url)
    client.authenticate()
    summary = bench_sends(client)
    emulator.reset()
    client.authenticate()
    summary.update(bench_fan_out(client, emulator, workdir))
    emulator.reset()
    return summary


def check_goals(summary: dict) -> bool:
    """Add summary["goals"]; True when every goal is met."""
    met = {name: summary[name] >= goal if name == "callbacks_per_second" else summary[name] < goal for name, goal in GOALS.items()}
    summary["goals"] = {name: {"goal": goal, "met": met[name]} for name, goal in GOALS.items()}
    return all(met.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", metavar="FILE", help="also write the summary here")
    parser.add_argument("--listener", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listener:
        run_listener(args.listener)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as workdir:
        fleet = os.path.join(workdir, "fleet.json")
        write_fleet(fleet)
        started = time.perf_counter()
        with running_emulator("--fleet", fleet, "--quiet", "--allow-any-callback-port", "--delivery-delay", "0", timeout=120) as emulator:
            summary = {"devices_in_fleet": DEVICES, "startup_seconds": time.perf_counter() - started, "python": sys.version.split()[0]}
            summary.update(run_on(emulator, workdir))
    all_met = check_goals(summary)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
