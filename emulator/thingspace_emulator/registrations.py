"""Callback listener registrations: one per account and service, kept by POST, GET and DELETE
/callbacks and read when a callback is sent. A listener registered through the vendor's portal or
SOAP API (seeded by the fleet file or the admin API) receives callbacks, but REST neither lists,
replaces nor removes it."""

import threading
from typing import Callable, Optional

from .wire import CallbackRegistration


class Registrations:
    def __init__(self, on_change: Callable[[], None], portal_seeds: list):
        self.on_change = on_change
        self.portal_seeds = portal_seeds
        self.lock = threading.Lock()
        self.by_key: dict = {}  # (account, service) -> CallbackRegistration
        self.portal: set = set()  # keys of by_key registered through the portal or SOAP
        self._seed()

    def _seed(self) -> None:
        for registration in self.portal_seeds:
            self._put(registration, portal=True)

    def _put(self, registration: CallbackRegistration, portal: bool) -> None:
        """Add or replace the account's listener for the service (a replaced one is listed last)."""
        key = (registration.accountName, registration.serviceName)
        self.by_key.pop(key, None)
        self.by_key[key] = registration
        if portal:
            self.portal.add(key)
        else:
            self.portal.discard(key)

    def register(self, registration: CallbackRegistration, portal: bool = False) -> None:
        with self.lock:
            self._put(registration, portal)
        self.on_change()

    def is_portal(self, account: str, service: str) -> bool:
        with self.lock:
            return (account, service) in self.portal

    def deregister(self, account: str, service: str) -> bool:
        """Remove a REST registration; False when there is none."""
        with self.lock:
            key = (account, service)
            found = key in self.by_key and key not in self.portal
            if found:
                del self.by_key[key]
        if found:
            self.on_change()
        return found

    def get(self, account: str, service: str) -> Optional[CallbackRegistration]:
        """The listener a callback goes to, however it was registered."""
        with self.lock:
            return self.by_key.get((account, service))

    def _listed(self, portal: bool) -> list:
        return [registration for key, registration in self.by_key.items() if (key in self.portal) == portal]

    def of_account(self, account: str) -> list:
        """The account's registrations as GET /callbacks lists them (portal ones left out)."""
        with self.lock:
            return [registration for registration in self._listed(portal=False) if registration.accountName == account]

    def portal_listeners(self) -> list:
        with self.lock:
            return self._listed(portal=True)

    def clear(self) -> None:
        """Back to the fleet's portal listeners."""
        with self.lock:
            self.by_key.clear()
            self.portal.clear()
            self._seed()

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"registrations": self._listed(portal=False), "portalListeners": self._listed(portal=True)}

    def restore(self, state, accounts) -> None:
        with self.lock:
            for registration in state.registrations:
                if registration.accountName in accounts:
                    self._put(registration, portal=False)
            for registration in state.portalListeners:
                if registration.accountName in accounts:
                    self._put(registration, portal=True)
