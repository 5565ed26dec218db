"""Callback listener registrations: one per account and service, kept by POST, GET and DELETE
/callbacks and read when a callback is sent."""

import threading
from typing import Callable, Optional

from .wire import CallbackRegistration


class Registrations:
    def __init__(self, on_change: Callable[[], None]):
        self.on_change = on_change
        self.lock = threading.Lock()
        self.by_key: dict = {}  # (account, service) -> CallbackRegistration

    def register(self, registration: CallbackRegistration) -> None:
        """Add or replace the account's listener for the service (a replaced one is listed last)."""
        key = (registration.accountName, registration.serviceName)
        with self.lock:
            self.by_key.pop(key, None)
            self.by_key[key] = registration
        self.on_change()

    def deregister(self, account: str, service: str) -> bool:
        with self.lock:
            found = self.by_key.pop((account, service), None) is not None
        if found:
            self.on_change()
        return found

    def get(self, account: str, service: str) -> Optional[CallbackRegistration]:
        with self.lock:
            return self.by_key.get((account, service))

    def of_account(self, account: str) -> list:
        with self.lock:
            return [registration for (name, _service), registration in self.by_key.items() if name == account]

    def clear(self) -> None:
        with self.lock:
            self.by_key.clear()

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"registrations": list(self.by_key.values())}

    def restore(self, state, accounts) -> None:
        with self.lock:
            self.by_key = {(r.accountName, r.serviceName): r for r in state.registrations if r.accountName in accounts}
