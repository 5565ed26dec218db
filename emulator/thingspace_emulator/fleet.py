"""The fleet at run time: accounts, groups, plans and devices built from the fleet file, with O(1)
device lookup by identifier and selection by filters."""

import bisect
import itertools
from typing import Iterable, Optional

from .fleet_file import FleetFile, FleetUser, read_fleet_file
from .rules import callback_kind, identifier_key
from .wire import CallbackRegistration, DeviceId

FIRST_DEVICE_ID = 1_000_001  # the service's internal id of the fleet's first device


class Device:
    """One line of service, with the counters the emulator keeps for it."""

    __slots__ = ("account", "created_at", "custom", "device_id", "groups", "ids", "ip", "pending", "plan", "reachable", "sms_received", "state")

    def __init__(self, account: str, device_id: int, spec):
        self.account = account
        self.device_id = device_id  # the service's internal id, the device list's paging cursor
        self.ids = [(item.kind, item.id) for item in spec.deviceIds]
        self.groups = list(spec.groupNames)
        self.plan = spec.servicePlan
        self.state = spec.state
        self.reachable = spec.reachable
        self.custom = dict(spec.customFields)
        self.ip = spec.ipAddress
        self.created_at = spec.createdAt
        self.sms_received = 0
        self.pending = 0

    @property
    def key(self) -> tuple:
        """The first identifier, which names the device in logs and state."""
        return self.ids[0]

    def device_ids(self) -> list:
        return [DeviceId(kind=kind, id=ident) for kind, ident in self.ids]

    def callback_ids(self) -> list:
        """Every identifier, kinds capitalised as callbacks carry them."""
        return [DeviceId(kind=callback_kind(kind), id=ident) for kind, ident in self.ids]

    def phone_id(self) -> DeviceId:
        """The identifier a delivery confirmation names: the MDN, else the MSISDN, else the first."""
        by_kind = dict(self.ids)
        kind, ident = next(((kind, by_kind[kind]) for kind in ("mdn", "msisdn") if kind in by_kind), self.ids[0])
        return DeviceId(kind=callback_kind(kind), id=ident)

    def matches(self, group: Optional[str], plan: Optional[str], custom: Iterable, state: Optional[str]) -> bool:
        """Whether the device has every given criterion; custom field values and state ignore case."""
        if group is not None and group not in self.groups:
            return False
        if plan is not None and plan != self.plan:
            return False
        if state is not None and state.lower() != self.state.lower():
            return False
        return all(self.custom.get(key, "").lower() == value.lower() for key, value in custom)


class Account:
    __slots__ = ("device_ids", "devices", "groups", "name", "plans")

    def __init__(self, name: str, groups: set, plans: set):
        self.name = name
        self.groups = groups
        self.plans = plans
        self.devices: list = []
        self.device_ids: list = []  # each device's internal id, ascending

    def devices_after(self, device_id: Optional[int]) -> list:
        """The devices whose internal id is above device_id (all for None)."""
        return self.devices if device_id is None else self.devices[bisect.bisect_right(self.device_ids, device_id) :]


class Fleet:
    def __init__(self, spec: FleetFile):
        self.accounts: dict = {}
        self.index: dict = {}
        device_ids = itertools.count(FIRST_DEVICE_ID)
        for account_spec in spec.accounts:
            if account_spec.name in self.accounts:
                raise ValueError(f"account {account_spec.name} is listed twice")
            account = Account(account_spec.name, {group.name for group in account_spec.groups}, set(account_spec.servicePlans))
            self.accounts[account.name] = account
            for device_spec in account_spec.devices:
                device = Device(account.name, next(device_ids), device_spec)
                account.devices.append(device)
                account.device_ids.append(device.device_id)
                for kind_id in device.ids:
                    if kind_id in self.index:
                        raise ValueError(f"device identifier {kind_id[0]} {kind_id[1]} is listed twice")
                    self.index[kind_id] = device
        self.portal_listeners = [
            CallbackRegistration(accountName=account.name, **listener.model_dump()) for account in spec.accounts for listener in account.portalListeners
        ]
        self.clients = {client.id: client.secret for client in spec.clients}
        self.users = {user.username: user for user in spec.users}

    def lookup(self, kind: str, identifier: str) -> Optional[Device]:
        return self.index.get(identifier_key(kind, identifier))

    def by_key(self, device_id: DeviceId) -> Optional[Device]:
        return self.index.get((device_id.kind, device_id.id))

    def user_accounts(self, username: str) -> list:
        user: FleetUser = self.users[username]
        return list(self.accounts) if user.accounts is None else list(user.accounts)

    def devices(self) -> Iterable:
        for account in self.accounts.values():
            yield from account.devices

    def reset_counters(self) -> None:
        for device in self.devices():
            device.sms_received = 0
            device.pending = 0


def load_fleet(path: Optional[str] = None) -> Fleet:
    return Fleet(read_fleet_file(path))
