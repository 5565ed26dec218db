"""The admin API's JSON shapes (pydantic), under /_emulator/."""

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from .behaviours import Behaviour
from .fleet_file import FleetPortalListener
from .persistence import SentSms
from .wire import CallbackRegistration, DeviceId


class Health(BaseModel):
    status: str


RetryDelay = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accessTokenTtl: Optional[float] = Field(default=None, gt=0)
    sessionIdleTtl: Optional[float] = Field(default=None, gt=0)
    smsExpiry: Optional[float] = Field(default=None, gt=0)
    deliveryDelay: Optional[float] = Field(default=None, ge=0)
    devicePageSize: Optional[int] = Field(default=None, ge=1)
    # Seconds before attempts 2, 3 and 4 of a callback.
    callbackRetryDelays: Optional[tuple[RetryDelay, RetryDelay, RetryDelay]] = None
    clockSpeed: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)


class ConfigView(BaseModel):
    accessTokenTtl: float
    sessionIdleTtl: float
    smsExpiry: float
    deliveryDelay: float
    devicePageSize: int
    callbackRetryDelays: tuple[float, float, float]
    clockSpeed: float
    allowAnyCallbackPort: bool
    allowRemote: bool


class ExpireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: Literal["session", "access", "all"]


class ExpireResult(BaseModel):
    expired: int


class UnlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str


class UnlockResult(BaseModel):
    username: str
    locked: bool


class PortalListener(FleetPortalListener):
    """POST /_emulator/portal-listeners: a fleet file's portal listener, with its account."""

    accountName: str


class PortalListenerList(BaseModel):
    listeners: list[CallbackRegistration]


class BehaviourBatch(RootModel[list[Behaviour]]):
    """POST /_emulator/behaviours also takes a JSON array of rules."""


class BehaviourList(BaseModel):
    behaviours: list[Behaviour]


class MoInject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accountName: str
    deviceId: DeviceId
    message: str


class MoInjectBatch(RootModel[list[MoInject]]):
    """POST /_emulator/mo also takes a JSON array of injections."""


class MoResult(BaseModel):
    delivered: bool
    queued: bool


class MoResultBatch(RootModel[list[MoResult]]):
    pass


class SinkEntry(BaseModel):
    """One body the built-in listener received."""

    body: Any
    time: str


class SinkReceived(BaseModel):
    received: list[SinkEntry]


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    method: Optional[str] = None
    count: int = Field(default=1, ge=1)
    status: Optional[int] = Field(default=None, ge=100, le=599)
    retryAfter: Optional[int] = Field(default=None, ge=0)
    body: Any = None
    latency: Optional[float] = Field(default=None, ge=0)
    drop: bool = False
    process: bool = False  # with status: handle the request, then answer status instead

    @model_validator(mode="after")
    def _one_outcome(self):
        if self.drop and self.status is not None:
            raise ValueError("a fault either answers a status or drops the connection, not both")
        if self.process and self.status is None:
            raise ValueError("process goes with status (drop always processes)")
        if not self.drop and self.status is None and self.latency is None:
            raise ValueError("a fault needs status, latency or drop")
        return self


class FaultCreated(BaseModel):
    id: str


class FaultView(FaultSpec):
    id: str
    remaining: int


class FaultList(BaseModel):
    faults: list[FaultView]


class RequestLogEntry(BaseModel):
    method: str
    path: str
    query: str
    status: Optional[int]
    time: str


class RequestLog(BaseModel):
    requests: list[RequestLogEntry]


class SentSmsView(SentSms):
    deviceCount: int


class SentSmsList(BaseModel):
    messages: list[SentSmsView]


class DeviceView(BaseModel):
    accountName: str
    deviceIds: list[DeviceId]
    state: str
    reachable: bool
    smsReceived: int
    pending: int


class DeviceViewList(BaseModel):
    devices: list[DeviceView]


class CallbackAttempt(BaseModel):
    service: str
    url: str
    status: Optional[int]
    error: Optional[str]
    attempt: int
    body: Any
    time: str


class CallbackAttemptList(BaseModel):
    attempts: list[CallbackAttempt]


class ResetResult(BaseModel):
    reset: bool


class AdminError(BaseModel):
    error: str


class RawJson(RootModel[Any]):
    """A body given verbatim, such as an injected fault's."""
