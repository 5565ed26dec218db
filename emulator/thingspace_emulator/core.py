"""The emulator: its configuration and the parts that hold its state (tokens, registrations, AO and MO
SMS, faults, logs), started, reset and saved together."""

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from .ao_sms import Outbox
from .behaviours import Behaviours
from .clock import now_iso
from .fanout import RETRY_DELAYS, CallbackLog, Dispatcher
from .faults import FaultRegistry
from .fleet import Fleet
from .mo_sms import Inbox
from .persistence import StateFile, StateStore
from .registrations import Registrations
from .tokens import TokenStore


@dataclass
class Config:
    access_token_ttl: float = 3600.0
    session_idle_ttl: float = 1200.0
    sms_expiry: float = 432000.0
    delivery_delay: float = 0.05
    device_page_size: int = 500
    allow_any_callback_port: bool = False
    allow_remote: bool = False
    callback_workers: int = 8
    log_size: int = 100_000
    callback_retry_delays: tuple = RETRY_DELAYS
    clock_speed: float = 1.0  # emulated seconds per real second, for delivery delay, expiry and reply delays


class Emulator:
    def __init__(self, config: Config, fleet: Fleet, state_path: Optional[str] = None, clock: Callable[[], float] = time.time):
        """clock: epoch seconds, as token lifetimes are counted (tests pass one they move)."""
        self.config = config
        self.fleet = fleet
        self.tokens = TokenStore(fleet, config, clock)
        self.callback_log = CallbackLog(config.log_size)
        self.dispatcher = Dispatcher(self.callback_log, config)
        self.faults = FaultRegistry()
        self.requests: deque = deque(maxlen=config.log_size)
        self.registrations = Registrations(self.changed, fleet.portal_listeners)
        self.behaviours = Behaviours(fleet.behaviours, fleet.lookup)
        self.inbox = Inbox(fleet, self.registrations, self.dispatcher, self.changed)
        self.outbox = Outbox(config, fleet, self.registrations, self.dispatcher, self.behaviours, self.inbox, self.changed)
        self.sink_lock = threading.Lock()
        self.sink: dict = {}  # listener name -> [SinkEntry], the built-in callback listener
        self.store = StateStore(state_path, self.snapshot) if state_path else None

    def start(self) -> None:
        if self.store is not None:
            state = self.store.load()
            if state is not None:
                self.restore(state)
        self.dispatcher.start()
        self.outbox.start()
        if self.store is not None:
            self.store.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        if self.store is not None:
            self.store.stop()

    def changed(self) -> None:
        if self.store is not None:
            self.store.mark_dirty()

    def reset(self) -> None:
        """Back to the loaded fleet and its behaviours; the configuration stays."""
        self.dispatcher.reset()
        self.tokens.clear()
        self.faults.clear()
        self.behaviours.clear()
        self.callback_log.clear()
        self.requests.clear()
        self.registrations.clear()
        self.outbox.clear()
        self.inbox.clear()
        with self.sink_lock:
            self.sink.clear()
        self.changed()

    def sink_receive(self, name: str, body) -> None:
        with self.sink_lock:
            self.sink.setdefault(name, []).append((body, now_iso()))

    def sink_entries(self, name: str) -> list:
        """(body, time) of what the built-in listener name received, oldest first."""
        with self.sink_lock:
            return list(self.sink.get(name, ()))

    def log_request(self, method: str, path: str, query: str, status: Optional[int]) -> None:
        self.requests.append((method, path, query, status, now_iso()))

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> StateFile:
        return StateFile(**self.registrations.snapshot(), **self.inbox.snapshot(), **self.outbox.snapshot(), **self.tokens.snapshot())

    def restore(self, state: StateFile) -> None:
        """Take over a saved state; entries naming devices or accounts the fleet lacks are dropped."""
        self.tokens.restore(state)
        self.registrations.restore(state, self.fleet.accounts)
        self.inbox.restore(state)
        self.outbox.restore(state)
