"""The fleet file (YAML or JSON): accounts, groups, plans, devices, OAuth clients and users, checked
when the emulator starts."""

import json
from importlib import resources
from typing import Annotated, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .behaviours import Behaviour, share_fraction
from .rules import CUSTOM_FIELD_NAMES, DEVICE_STATES, KINDS, SERVICE_NAMES, device_state, identifier_key, valid_identifier

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FleetDeviceId(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    id: str

    @model_validator(mode="after")
    def _check(self):
        self.kind = self.kind.lower()
        if self.kind not in KINDS:
            raise ValueError(f"unknown device kind {self.kind!r}")
        if not valid_identifier(self.kind, self.id):
            raise ValueError(f"{self.id!r} is not a valid {self.kind}")
        self.id = identifier_key(self.kind, self.id)[1]
        return self


def known_state(name: str) -> str:
    state = device_state(name)
    if state not in DEVICE_STATES:
        raise ValueError(f"device state {name!r} is not one of {', '.join(DEVICE_STATES)}")
    return state


def custom_field_names(value: dict) -> dict:
    for key in value:
        if key not in CUSTOM_FIELD_NAMES:
            raise ValueError(f"custom field {key!r} is not one of {', '.join(CUSTOM_FIELD_NAMES)}")
    return value


State = Annotated[str, AfterValidator(known_state)]
DEFAULT_CREATED_AT = "2024-01-02T09:00:00-05:00"


class FleetDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deviceIds: list[FleetDeviceId] = Field(min_length=1)
    groupNames: list[str] = []
    servicePlan: Optional[str] = None
    state: State = "active"
    reachable: bool = True
    customFields: Annotated[dict[str, str], AfterValidator(custom_field_names)] = {}
    ipAddress: Optional[str] = None
    createdAt: str = DEFAULT_CREATED_AT


Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def known_kinds(value: dict) -> dict:
    for kind, template in value.items():
        if kind not in KINDS:
            raise ValueError(f"unknown device kind {kind!r}")
        if "{n" not in template:
            raise ValueError(f"ids.{kind}: {template!r} does not use {{n}}")
        if "{luhn}" in template and not template.endswith("{luhn}"):
            raise ValueError(f"ids.{kind}: {{luhn}} must end the pattern")
    return value


def known_states(value: dict) -> dict:
    return {known_state(name): weight for name, weight in value.items()}


class FleetGenerator(BaseModel):
    """count devices made from patterns, for fleets too large to list: device n (first, first+1, ...)
    gets each identifier by formatting its pattern with n ({n:09d}; a final {luhn} appends a Luhn
    check digit), and each property drawn by weight with a generator seeded by the account name and
    seed, so a fleet file always makes the same fleet."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=1, le=1_000_000)
    first: int = Field(default=1, ge=0)
    seed: str = ""
    ids: Annotated[dict[str, str], AfterValidator(known_kinds)] = Field(min_length=1)
    groupNames: dict[str, Weight] = {}  # one group per device
    servicePlan: dict[str, Weight] = {}
    state: Annotated[dict[str, Weight], AfterValidator(known_states)] = {"active": 1}
    unreachable: Union[str, float] = 0  # share of the devices marked reachable: false
    customFields: Annotated[dict[str, dict[str, Weight]], AfterValidator(custom_field_names)] = {}
    createdAt: str = DEFAULT_CREATED_AT

    @field_validator("unreachable")
    @classmethod
    def _share(cls, value):
        share_fraction(value)
        return value


class FleetGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: Optional[str] = None


def known_service(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise ValueError(f"{name!r} is not a callback service name")
    return name


class FleetPortalListener(BaseModel):
    """A listener registered through the vendor's portal or SOAP API: REST neither lists nor replaces it."""

    model_config = ConfigDict(extra="forbid")
    serviceName: Annotated[str, AfterValidator(known_service)]
    url: str
    username: Optional[str] = None
    password: Optional[str] = None


class FleetAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    groups: list[FleetGroup] = []
    servicePlans: list[str] = []
    devices: list[FleetDevice] = []
    generate: list[FleetGenerator] = []
    portalListeners: list[FleetPortalListener] = []

    @model_validator(mode="after")
    def _references(self):
        groups = {group.name for group in self.groups}
        plans = set(self.servicePlans)
        for device in self.devices:
            for name in device.groupNames:
                if name not in groups:
                    raise ValueError(f"account {self.name}: device group {name!r} is not declared")
            if device.servicePlan is not None and device.servicePlan not in plans:
                raise ValueError(f"account {self.name}: service plan {device.servicePlan!r} is not declared")
        for generator in self.generate:
            for name in generator.groupNames:
                if name not in groups:
                    raise ValueError(f"account {self.name}: generated group {name!r} is not declared")
            for name in generator.servicePlan:
                if name not in plans:
                    raise ValueError(f"account {self.name}: generated service plan {name!r} is not declared")
        return self


class FleetClient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    secret: str


class FleetUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str
    accounts: Optional[list[str]] = None  # None: every account of the fleet


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: list[FleetAccount] = Field(min_length=1)
    clients: list[FleetClient] = [FleetClient(id="emulator-client", secret="emulator-secret")]
    users: list[FleetUser] = [FleetUser(username="emulator-user", password="emulator-pass")]
    behaviours: list[Behaviour] = []

    @model_validator(mode="after")
    def _user_accounts(self):
        names = {account.name for account in self.accounts}
        for user in self.users:
            for name in user.accounts or ():
                if name not in names:
                    raise ValueError(f"user {user.username}: account {name!r} is not in the fleet")
        return self


def read_fleet_file(path: Optional[str]) -> FleetFile:
    """Parse and validate a fleet file (.json as JSON, anything else as YAML); None: the demo fleet."""
    if path is None:
        text = (resources.files(__package__) / "fleets" / "demo.yml").read_text(encoding="utf-8")
        return FleetFile.model_validate(yaml.load(text, Loader=YAML_LOADER))
    with open(path, encoding="utf-8") as handle:
        if path.endswith(".json"):
            return FleetFile.model_validate(json.load(handle))
        return FleetFile.model_validate(yaml.load(handle, Loader=YAML_LOADER))
