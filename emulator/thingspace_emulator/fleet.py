"""The fleet at run time: accounts, groups, plans and devices built from the fleet file, with O(1)
device lookup by identifier and selection by filters."""

import bisect
import itertools
import random
from typing import Iterable, Optional

from .behaviours import share_fraction
from .fleet_file import FleetFile, FleetGenerator, FleetUser, read_fleet_file
from .rules import KIND_PATTERNS, callback_kind, device_state, identifier_key
from .wire import CallbackRegistration, DeviceId

FIRST_DEVICE_ID = 1_000_001  # the service's internal id of the fleet's first device


class Device:
    """One line of service, with the counters the emulator keeps for it."""

    __slots__ = ("account", "created_at", "custom", "device_id", "groups", "ids", "ip", "pending", "plan", "reachable", "sms_received", "state")

    def __init__(self, account: str, device_id: int, ids: list, groups: list, plan, state: str, reachable: bool, custom: dict, ip, created_at: str):
        self.account = account
        self.device_id = device_id  # the service's internal id, the device list's paging cursor
        self.ids = ids  # [(kind, id)], lookup keys
        self.groups = groups
        self.plan = plan
        self.state = state
        self.reachable = reachable
        self.custom = custom
        self.ip = ip
        self.created_at = created_at
        self.sms_received = 0
        self.pending = 0

    @classmethod
    def listed(cls, account: str, device_id: int, spec) -> "Device":
        """A device the fleet file lists (a FleetDevice)."""
        ids = [(item.kind, item.id) for item in spec.deviceIds]
        groups = list(spec.groupNames)
        return cls(account, device_id, ids, groups, spec.servicePlan, spec.state, spec.reachable, dict(spec.customFields), spec.ipAddress, spec.createdAt)

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
        if state is not None and device_state(state) != self.state:
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
            listed = (Device.listed(account.name, next(device_ids), spec) for spec in account_spec.devices)
            generated = (device for generator in account_spec.generate for device in generate(account.name, generator, device_ids))
            for device in itertools.chain(listed, generated):
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
        self.behaviours = list(spec.behaviours)
        unknown = [rule.device for rule in self.behaviours if rule.device is not None and self.lookup(rule.device.kind, rule.device.id) is None]
        if unknown:
            raise ValueError(f"behaviour for device {unknown[0].kind} {unknown[0].id}, which is not in the fleet")

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


def luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def identifiers(kind: str, pattern: str, numbers: range) -> list:
    """The identifiers a generator's pattern makes, each checked as the fleet file checks a listed one."""
    luhn = pattern.endswith("{luhn}")
    base = pattern[: -len("{luhn}")] if luhn else pattern
    made = [base.format(n=n) for n in numbers]
    if luhn:
        made = [text + luhn_digit(text) for text in made]
    check = KIND_PATTERNS[kind].fullmatch
    for text in made:
        if check(text) is None:
            raise ValueError(f"generated {text!r} (pattern {pattern!r}) is not a valid {kind}")
    return [identifier_key(kind, text)[1] for text in made]


def generate(account: str, spec: FleetGenerator, device_ids) -> Iterable:
    """The devices of one generator, in order of n."""
    numbers = range(spec.first, spec.first + spec.count)
    columns = [[(kind, ident) for ident in identifiers(kind, pattern, numbers)] for kind, pattern in spec.ids.items()]
    draw = random.Random(f"{account}\x00{spec.seed}")

    def drawn(weights: dict) -> list:
        return draw.choices(list(weights), list(weights.values()), k=spec.count) if weights else [None] * spec.count

    groups = drawn(spec.groupNames)
    plans = drawn(spec.servicePlan)
    states = drawn(spec.state)
    unreachable = share_fraction(spec.unreachable)
    reachable = [draw.random() >= unreachable for _n in numbers]
    custom = {name: drawn(values) for name, values in spec.customFields.items()}
    for index, (ids, device_id) in enumerate(zip(zip(*columns), device_ids)):
        fields = {name: values[index] for name, values in custom.items()}
        group = [] if groups[index] is None else [groups[index]]
        yield Device(account, device_id, list(ids), group, plans[index], states[index], reachable[index], fields, None, spec.createdAt)


def load_fleet(path: Optional[str] = None) -> Fleet:
    return Fleet(read_fleet_file(path))
