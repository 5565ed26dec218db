"""Helpers for test suites and demos (standard library only): run the emulator as a subprocess, talk
to its admin API, and listen for its callbacks on loopback."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, NamedTuple, Optional
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen


class AdminClient:
    """The admin API (/_emulator/) of an emulator at url."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, params: Optional[dict] = None) -> Any:
        query = urlencode({name: value for name, value in (params or {}).items() if value is not None})
        data = None if body is None else json.dumps(body).encode()
        request = Request(f"{self.url}/_emulator/{path}" + (f"?{query}" if query else ""), data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except HTTPError as exc:
            raise RuntimeError(f"{method} /_emulator/{path}: HTTP {exc.code} {exc.read().decode(errors='replace')}") from None

    def health(self) -> dict:
        return self.call("GET", "health")

    def reset(self) -> None:
        self.call("POST", "reset")

    def config(self, **changes) -> dict:
        """Change timings (accessTokenTtl, sessionIdleTtl, smsExpiry, deliveryDelay, devicePageSize, callbackRetryDelays, clockSpeed); returns all."""
        return self.call("POST", "config", changes)

    def expire(self, kind: str = "all") -> int:
        return self.call("POST", "expire", {"tokens": kind})["expired"]

    def unlock(self, username: str) -> None:
        self.call("POST", "unlock", {"username": username})

    def fault(self, **spec) -> str:
        """Add a fault (path, method, count, status, retryAfter, body, latency, drop, process); returns its id."""
        return self.call("POST", "faults", spec)["id"]

    def faults(self) -> list:
        return self.call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def requests(self, method: Optional[str] = None, path: Optional[str] = None) -> list:
        return self.call("GET", "requests", params={"method": method, "path": path})["requests"]

    def sms(self, account: Optional[str] = None) -> list:
        return self.call("GET", "sms", params={"account": account})["messages"]

    def devices(self, account: Optional[str] = None) -> list:
        return self.call("GET", "devices", params={"account": account})["devices"]

    def callbacks(self) -> list:
        return self.call("GET", "callbacks")["attempts"]

    def behaviour(
        self,
        *,
        device: Optional[tuple] = None,
        share=None,
        seed: str = "",
        outcome: Optional[str] = None,
        reply: Optional[str] = None,
        reply_delay: float = 0.0,
    ) -> list:
        """Add a device behaviour: device (kind, id), else a share ("10%" or 0.1), else every device;
        outcome (delivered, undelivered, expired, rejected, none), reply text after reply_delay
        emulated seconds. Returns every rule in force."""
        rule = {"seed": seed, "replyDelay": reply_delay}
        if device is not None:
            rule["device"] = {"kind": device[0], "id": device[1]}
        for name, value in (("share", share), ("outcome", outcome), ("reply", reply)):
            if value is not None:
                rule[name] = value
        return self.call("POST", "behaviours", rule)["behaviours"]

    def behaviours(self) -> list:
        return self.call("GET", "behaviours")["behaviours"]

    def clear_behaviours(self) -> None:
        """Back to the fleet file's behaviours."""
        self.call("DELETE", "behaviours")

    def inject_mo(self, account: str, kind: str, id: str, message: str) -> dict:
        return self.call("POST", "mo", {"accountName": account, "deviceId": {"kind": kind, "id": id}, "message": message})

    def inject_mo_batch(self, injections: list) -> list:
        """Several injections at once: dicts of accountName, deviceId {kind, id}, message."""
        return self.call("POST", "mo", injections)

    def portal_listener(self, account: str, service: str, url: str, username: Optional[str] = None, password: Optional[str] = None) -> dict:
        """Register a listener as if through the vendor's portal or SOAP API (REST cannot list or replace it)."""
        body = {"accountName": account, "serviceName": service, "url": url, "username": username, "password": password}
        return self.call("POST", "portal-listeners", {name: value for name, value in body.items() if value is not None})

    def portal_listeners(self) -> list:
        return self.call("GET", "portal-listeners")["listeners"]

    def listener(self, name: str) -> list:
        """Bodies the built-in listener at /_emulator/listener/{name} received, oldest first."""
        return [entry["body"] for entry in self.call("GET", f"listener/{name}")["received"]]

    def state(self) -> dict:
        return self.call("GET", "state")


class RunningEmulator(AdminClient):
    """An emulator subprocess: .url, .process, .log_path (its standard output and error), admin calls."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: str):
        super().__init__(url)
        self.process = process
        self.log_path = log_path


@contextlib.contextmanager
def running_emulator(*args: str, env: Optional[dict] = None, timeout: float = 20.0) -> Iterator[RunningEmulator]:
    """Run `python -m thingspace_emulator --port 0 ... *args` until the block ends (SIGTERM, then kill)."""
    workdir = tempfile.mkdtemp(prefix="thingspace-emulator-")
    url_file = os.path.join(workdir, "url")
    log_path = os.path.join(workdir, "emulator.log")
    command = [sys.executable, "-m", "thingspace_emulator", "--port", "0", "--url-file", url_file, *args]
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(url_file):
                if process.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, encoding="utf-8", errors="replace") as log:
                        raise RuntimeError(f"the emulator did not start (exit {process.poll()}):\n{log.read()}")
                time.sleep(0.02)
            with open(url_file, encoding="utf-8") as handle:
                yield RunningEmulator(handle.read().strip(), process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Received(NamedTuple):
    path: str
    body: Any  # the parsed JSON, or the text when it is not JSON
    status: int  # what the listener answered


class CallbackListener:
    """A loopback HTTP listener that records every POSTed body; answers 200, or fail_status for the
    next fail_count requests."""

    def __init__(self, fail_count: int = 0, fail_status: int = 500, host: str = "127.0.0.1"):
        self.received: list = []
        self.fail_count = fail_count
        self.fail_status = fail_status
        self.changed = threading.Condition()
        self.answering = threading.Event()  # cleared by hold()
        self.answering.set()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.answering.wait()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with listener.changed:
                    status = 200
                    if listener.fail_count > 0:
                        listener.fail_count -= 1
                        status = listener.fail_status
                    listener.received.append(Received(self.path, body, status))
                    listener.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def start(self) -> "CallbackListener":
        threading.Thread(target=self.server.serve_forever, args=(0.05,), name="callback-listener", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "CallbackListener":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def hold(self) -> None:
        """Leave every request unanswered (and unrecorded) until release()."""
        self.answering.clear()

    def release(self) -> None:
        self.answering.set()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.changed:
            self.fail_count = count
            self.fail_status = status

    @property
    def bodies(self) -> list:
        with self.changed:
            return [item.body for item in self.received]

    def wait_for(self, predicate: Callable[[list], bool], timeout: float = 10.0) -> list:
        """Wait until predicate(received) holds; returns the received list, or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"callbacks received so far: {self.received!r}")
                self.changed.wait(remaining)
            return list(self.received)

    def wait_count(self, count: int, timeout: float = 10.0) -> list:
        return self.wait_for(lambda received: len(received) >= count, timeout)
