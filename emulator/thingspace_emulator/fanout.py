"""Callback fan-out: worker threads POST callback bodies to the registered listeners over kept-alive
connections, retrying each body up to MAX_ATTEMPTS times; a timer thread runs delayed work."""

import heapq
import http.client
import ipaddress
import itertools
import json
import queue
import threading
import time
from collections import deque
from typing import Callable, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel

from .admin_models import CallbackAttempt
from .clock import now_iso

MAX_ATTEMPTS = 4  # the vendor's maxCallbackThreshold
RETRY_DELAYS = (0.05, 0.1, 0.2)  # the default waits before attempts 2, 3 and 4 (the vendor waits minutes)
HTTP_TIMEOUT = 5.0


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Delivery:
    """One callback body for one listener; a body with callbackCount carries the attempt number."""

    __slots__ = ("attempt", "body", "generation", "on_done", "service", "url")

    def __init__(self, service: str, url: str, body: BaseModel, on_done: Optional[Callable[[bool], None]] = None):
        self.service = service
        self.url = url
        self.body = body
        self.on_done = on_done
        self.attempt = 1
        self.generation = 0

    def payload(self) -> bytes:
        body = self.body
        if "callbackCount" in type(body).model_fields:
            body = body.model_copy(update={"callbackCount": self.attempt})
        return body.model_dump_json(exclude_none=True).encode()


class CallbackLog:
    """The latest attempts, bounded; bodies are kept as the bytes sent."""

    def __init__(self, size: int):
        self.entries: deque = deque(maxlen=size)

    def add(self, service: str, url: str, status: Optional[int], error: Optional[str], attempt: int, body: bytes) -> None:
        self.entries.append((service, url, status, error, attempt, body, now_iso()))

    def clear(self) -> None:
        self.entries.clear()

    def view(self) -> list:
        return [CallbackAttempt(service=s, url=u, status=st, error=e, attempt=a, body=json.loads(b), time=t) for s, u, st, e, a, b, t in list(self.entries)]


class Dispatcher:
    def __init__(self, log: CallbackLog, config):
        """config: the emulator's Config (callback_workers, allow_remote; callback_retry_delays is read at each retry)."""
        self.log = log
        self.config = config
        self.allow_remote = config.allow_remote
        self.generation = 0
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.timers: list = []
        self.timer_seq = itertools.count()
        self.timer_cond = threading.Condition()
        self.stopping = False
        self.local = threading.local()
        self.threads = [threading.Thread(target=self._work, name=f"callback-{n}", daemon=True) for n in range(config.callback_workers)]
        self.threads.append(threading.Thread(target=self._timer, name="callback-timer", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        with self.timer_cond:
            self.stopping = True
            self.timer_cond.notify()
        for _thread in range(len(self.threads) - 1):
            self.queue.put(None)

    def reset(self) -> None:
        """Forget queued, scheduled and retrying work (in-flight attempts finish unlogged)."""
        with self.timer_cond:
            self.generation += 1
            self.timers.clear()

    # ---- submitting work ----------------------------------------------------------------------

    def submit(self, delivery: Delivery) -> None:
        delivery.generation = self.generation
        self.queue.put(delivery)

    def run_task(self, task: Callable[[], None]) -> None:
        """Run task on a worker thread."""
        self.queue.put((self.generation, task))

    def schedule(self, delay: float, task: Callable[[], None]) -> None:
        """Run task on a worker thread after delay seconds."""
        with self.timer_cond:
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self.timer_seq), (self.generation, task)))
            self.timer_cond.notify()

    def deliver_now(self, delivery: Delivery) -> bool:
        """Deliver in the calling thread, with the same attempts and backoff; True once a 2xx came."""
        generation = self.generation
        for attempt in range(1, MAX_ATTEMPTS + 1):
            delivery.attempt = attempt
            ok, final = self._attempt(delivery, generation)
            if ok or final:
                return ok
            if attempt < MAX_ATTEMPTS:
                time.sleep(self.config.callback_retry_delays[attempt - 1])
        return False

    # ---- threads ------------------------------------------------------------------------------

    def _timer(self) -> None:
        with self.timer_cond:
            while not self.stopping:
                now = time.monotonic()
                while self.timers and self.timers[0][0] <= now:
                    self.queue.put(heapq.heappop(self.timers)[2])
                timeout = self.timers[0][0] - now if self.timers else None
                self.timer_cond.wait(timeout)

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, Delivery):
                self._deliver(item)
            elif item[0] == self.generation:
                item[1]()

    def _deliver(self, delivery: Delivery) -> None:
        if delivery.generation != self.generation:
            return
        ok, final = self._attempt(delivery, delivery.generation)
        if ok or final or delivery.attempt >= MAX_ATTEMPTS:
            if delivery.on_done is not None:
                delivery.on_done(ok)
            return
        delay = self.config.callback_retry_delays[delivery.attempt - 1]
        delivery.attempt += 1
        with self.timer_cond:
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self.timer_seq), delivery))
            self.timer_cond.notify()

    def _attempt(self, delivery: Delivery, generation: int) -> tuple:
        """POST one attempt and log it: (succeeded, no point retrying)."""
        body = delivery.payload()
        parts = urlsplit(delivery.url)
        status = error = None
        final = False
        if not (self.allow_remote or is_loopback_host(parts.hostname or "")):
            error = f"not sent: {parts.hostname} is not a loopback address (start the emulator with --allow-remote)"
            final = True
        else:
            try:
                status = self._post(parts, body)
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
        if generation == self.generation:
            self.log.add(delivery.service, delivery.url, status, error, delivery.attempt, body)
        return status is not None and 200 <= status < 300, final

    def _post(self, parts, body: bytes) -> int:
        connections = getattr(self.local, "connections", None)
        if connections is None:
            connections = self.local.connections = {}
        key = (parts.scheme, parts.hostname, parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        connection = connections.pop(key, None)
        reused = connection is not None
        while True:
            if connection is None:
                factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                connection = factory(parts.hostname, parts.port, timeout=HTTP_TIMEOUT)
            try:
                connection.request("POST", target, body, headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                if not reused:
                    raise
                # The listener closed a kept-alive connection: one fresh connection, same attempt.
                connection, reused = None, False
                continue
            if response.will_close:
                connection.close()
            else:
                connections[key] = connection
            return response.status
