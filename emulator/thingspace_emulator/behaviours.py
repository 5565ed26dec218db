"""Device behaviours: what a device does with an SMS sent to it (the delivery outcome, and a reply after
a delay), set per device or per share of the fleet in the fleet file or through the admin API."""

import hashlib
import threading
from typing import Literal, NamedTuple, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .wire import DeviceId

# The outcomes a behaviour can force: the vendor's four confirmations, or none at all.
OUTCOMES = ("delivered", "undelivered", "expired", "rejected", "none")
# Outcomes after which the device holds the message, so a reply can follow.
RECEIVED = ("delivered", "none")


def share_fraction(value: Union[str, float]) -> float:
    """A share of the fleet: "10%" or a fraction 0..1."""
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(f"share {value!r} is neither a percentage such as '10%' nor a fraction 0..1")
        try:
            fraction = float(text[:-1]) / 100
        except ValueError:
            raise ValueError(f"share {value!r} is not a percentage such as '10%'") from None
    else:
        fraction = float(value)
    if not 0 <= fraction <= 1:
        raise ValueError(f"share {value!r} is outside 0% .. 100%")
    return fraction


class Behaviour(BaseModel):
    """One rule: which devices (device, else share, else every device) and what they do."""

    model_config = ConfigDict(extra="forbid")
    device: Optional[DeviceId] = None
    share: Optional[Union[str, float]] = None
    seed: str = ""
    outcome: Optional[Literal["delivered", "undelivered", "expired", "rejected", "none"]] = None
    reply: Optional[str] = None
    replyDelay: float = Field(default=0.0, ge=0, allow_inf_nan=False)  # emulated seconds after delivery

    @field_validator("share")
    @classmethod
    def _share(cls, value):
        if value is not None:
            share_fraction(value)
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.device is not None and self.share is not None:
            raise ValueError("a behaviour names a device or a share of the fleet, not both")
        if self.outcome is None and self.reply is None:
            raise ValueError("a behaviour needs an outcome, a reply, or both")
        if self.device is not None:
            self.device = DeviceId(kind=self.device.kind.lower(), id=self.device.id)
        return self


class Plan(NamedTuple):
    """What one device does with one SMS: outcome None follows its state; reply None sends nothing."""

    outcome: Optional[str]
    reply: Optional[str]
    reply_delay: float


NO_PLAN = Plan(None, None, 0.0)


def in_share(seed: str, device_key: tuple, fraction: float) -> bool:
    """Whether a device falls in a share: a stable hash of the seed and its first identifier, so a
    fleet and a seed always pick the same devices; a larger share with the same seed holds a smaller one."""
    digest = hashlib.blake2b(f"{seed}\x00{device_key[0]}\x00{device_key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


class Behaviours:
    """The rules in force: the fleet file's, then those added at run time. For each of outcome and
    reply, a rule naming the device beats a share rule, and among equals the later rule wins."""

    def __init__(self, fleet_rules: list, lookup):
        """lookup(kind, id): the fleet's device, or None."""
        self.fleet_rules = list(fleet_rules)
        self.lookup = lookup
        self.lock = threading.Lock()
        self.rules: list = list(self.fleet_rules)

    def check(self, rule: Behaviour) -> None:
        """Raise ValueError for a rule naming a device the fleet lacks."""
        if rule.device is not None and self.lookup(rule.device.kind, rule.device.id) is None:
            raise ValueError(f"device {rule.device.kind} {rule.device.id} is not in the fleet")

    def add(self, rules: list) -> None:
        for rule in rules:
            self.check(rule)
        with self.lock:
            self.rules = self.rules + list(rules)

    def clear(self) -> None:
        """Back to the fleet file's rules."""
        with self.lock:
            self.rules = list(self.fleet_rules)

    def view(self) -> list:
        with self.lock:
            return list(self.rules)

    def compiled(self):
        """A function device -> Plan for the rules in force now (evaluate one send with it)."""
        with self.lock:
            rules = self.rules
        if not rules:
            return lambda device: NO_PLAN
        by_device = {}
        shares = []
        for rule in rules:
            if rule.device is not None:
                target = self.lookup(rule.device.kind, rule.device.id)
                if target is not None:
                    by_device.setdefault(id(target), []).append(rule)
            else:
                shares.append((rule, 1.0 if rule.share is None else share_fraction(rule.share)))

        def plan(device) -> Plan:
            outcome = reply = None
            delay = 0.0
            for rule, fraction in shares:
                if fraction >= 1 or (fraction > 0 and in_share(rule.seed, device.key, fraction)):
                    outcome = rule.outcome or outcome
                    if rule.reply is not None:
                        reply, delay = rule.reply, rule.replyDelay
            for rule in by_device.get(id(device), ()):
                outcome = rule.outcome or outcome
                if rule.reply is not None:
                    reply, delay = rule.reply, rule.replyDelay
            return Plan(outcome, reply, delay)

        return plan
