"""pydantic models of every JSON shape: vendor requests and responses, callback bodies, fleet file,
state file and the admin API."""

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from .rules import CUSTOM_FIELD_NAMES, KINDS, identifier_key, valid_identifier


class DeviceId(BaseModel):
    kind: str
    id: str


class CustomField(BaseModel):
    key: str
    value: str


# ---- errors -------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    errorCode: str
    errorMessage: str


class Fault(BaseModel):
    code: str
    message: str
    description: str


class FaultBody(BaseModel):
    fault: Fault


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str


# ---- auth ---------------------------------------------------------------------------------------


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class LoginRequest(BaseModel):
    username: Optional[str] = None
    password: Optional[str] = None


class SessionTokenBody(BaseModel):
    """Login and logout answer."""

    sessionToken: str


# ---- SMS ----------------------------------------------------------------------------------------


class DeviceIdInput(BaseModel):
    """A requested device; kind and id are checked by the service's rules, not by the schema."""

    kind: Optional[str] = None
    id: Optional[str] = None


class CustomFieldInput(BaseModel):
    key: Optional[str] = None
    value: Optional[str] = None


class SmsSendRequest(BaseModel):
    accountName: Optional[str] = None
    deviceIds: Optional[list[DeviceIdInput]] = None
    groupName: Optional[str] = None
    servicePlan: Optional[str] = None
    customFields: Optional[list[CustomFieldInput]] = None
    dataEncoding: Optional[str] = None
    smsMessage: Optional[str] = None


class SmsSendResponse(BaseModel):
    requestId: str


class SuccessResponse(BaseModel):
    success: bool


class QueuedSms(BaseModel):
    deviceIds: list[DeviceId]
    message: str
    timestamp: str


class HistoryResponse(BaseModel):
    messages: list[QueuedSms]
    hasMoreData: bool


# ---- callback registration ----------------------------------------------------------------------


class RegisterCallbackRequest(BaseModel):
    name: Optional[str] = None
    url: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None


class CallbackActionResult(BaseModel):
    accountName: str
    serviceName: str


class CallbackRegistration(BaseModel):
    accountName: str
    serviceName: str
    url: str
    username: Optional[str] = None
    password: Optional[str] = None


class CallbackList(RootModel[list[CallbackRegistration]]):
    pass


# ---- device list --------------------------------------------------------------------------------


class DeviceListRequest(BaseModel):
    accountName: Optional[str] = None
    groupName: Optional[str] = None
    servicePlan: Optional[str] = None
    customFields: Optional[list[CustomFieldInput]] = None
    currentState: Optional[str] = None
    lastSeenDeviceId: Optional[str] = None


class CarrierInformation(BaseModel):
    carrierName: str
    servicePlan: Optional[str] = None
    state: str


class ThingspaceDevice(BaseModel):
    accountName: str
    deviceIds: list[DeviceId]
    groupNames: list[str]
    customFields: list[CustomField]
    carrierInformations: list[CarrierInformation]
    connected: bool
    createdAt: str
    ipAddress: Optional[str] = None


class DeviceListResponse(BaseModel):
    hasMoreData: bool
    lastSeenDeviceId: Optional[str] = None
    devices: list[ThingspaceDevice]


# ---- callback bodies (seed send-sms.txt) --------------------------------------------------------


class DeviceActionCallback(BaseModel):
    """EnhancedConnectivityService, one per device of a POST /sms."""

    username: Optional[str] = None
    password: Optional[str] = None
    requestId: str
    deviceIds: list[DeviceId]
    comment: str
    status: str
    callbackCount: int
    maxCallbackThreshold: int


class RequestSummary(BaseModel):
    devicesRequested: int


class RequestCompleteCallback(BaseModel):
    """EnhancedConnectivityService, once per POST /sms and account."""

    username: Optional[str] = None
    password: Optional[str] = None
    requestId: str
    comment: str
    summary: RequestSummary


class SmsDeliveryResponse(BaseModel):
    confirmation: Literal["Delivered", "Undelivered", "Expired", "Rejected"]


class DeliveryDeviceResponse(BaseModel):
    smsDeliveryResponse: SmsDeliveryResponse


class DeliveryConfirmationCallback(BaseModel):
    """SMSDeliveryConfirmation, one per device of a POST /sms."""

    username: Optional[str] = None
    password: Optional[str] = None
    requestId: str
    deviceIds: list[DeviceId]
    deviceResponse: DeliveryDeviceResponse


class SmsResponse(BaseModel):
    message: str
    timestamp: str


class MoDeviceResponse(BaseModel):
    smsResponse: SmsResponse


class MoSmsCallback(BaseModel):
    """EnhancedConnectivityService, one per mobile-originated SMS (shape chosen by the emulator)."""

    username: Optional[str] = None
    password: Optional[str] = None
    requestId: str
    deviceIds: list[DeviceId]
    deviceResponse: MoDeviceResponse
    callbackCount: int
    maxCallbackThreshold: int


# ---- fleet file ---------------------------------------------------------------------------------


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


class FleetDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deviceIds: list[FleetDeviceId] = Field(min_length=1)
    groupNames: list[str] = []
    servicePlan: Optional[str] = None
    state: str = "active"
    reachable: bool = True
    customFields: dict[str, str] = {}
    ipAddress: Optional[str] = None
    createdAt: str = "2024-01-02T09:00:00-05:00"

    @field_validator("customFields")
    @classmethod
    def _field_names(cls, value: dict) -> dict:
        for key in value:
            if key not in CUSTOM_FIELD_NAMES:
                raise ValueError(f"custom field {key!r} is not one of {', '.join(CUSTOM_FIELD_NAMES)}")
        return value


class FleetGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: Optional[str] = None


class FleetAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    groups: list[FleetGroup] = []
    servicePlans: list[str] = []
    devices: list[FleetDevice] = []

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

    @model_validator(mode="after")
    def _user_accounts(self):
        names = {account.name for account in self.accounts}
        for user in self.users:
            for name in user.accounts or ():
                if name not in names:
                    raise ValueError(f"user {user.username}: account {name!r} is not in the fleet")
        return self


# ---- state file ---------------------------------------------------------------------------------


class SentSms(BaseModel):
    requestId: str
    accountName: str
    smsMessage: str
    dataEncoding: str
    devices: list[DeviceId]
    receivedAt: str


class DeviceCounters(BaseModel):
    device: DeviceId
    smsReceived: int
    pending: int


class PendingBatch(BaseModel):
    requestId: str
    accountName: str
    devices: list[DeviceId]
    expiresAt: float


class Lockout(BaseModel):
    username: str
    failures: int
    locked: bool


class StoredAccessToken(BaseModel):
    token: str
    expiresAt: float


class StoredSession(BaseModel):
    token: str
    username: str
    lastUsed: float


class StateFile(BaseModel):
    version: Literal[1] = 1
    registrations: list[CallbackRegistration] = []
    queues: dict[str, list[QueuedSms]] = {}
    sent: list[SentSms] = []
    counters: list[DeviceCounters] = []
    pending: list[PendingBatch] = []
    lockouts: list[Lockout] = []
    accessTokens: list[StoredAccessToken] = []
    sessions: list[StoredSession] = []


# ---- admin API ----------------------------------------------------------------------------------


class Health(BaseModel):
    status: str


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accessTokenTtl: Optional[float] = Field(default=None, gt=0)
    sessionIdleTtl: Optional[float] = Field(default=None, gt=0)
    smsExpiry: Optional[float] = Field(default=None, gt=0)
    deliveryDelay: Optional[float] = Field(default=None, ge=0)
    devicePageSize: Optional[int] = Field(default=None, ge=1)


class ConfigView(BaseModel):
    accessTokenTtl: float
    sessionIdleTtl: float
    smsExpiry: float
    deliveryDelay: float
    devicePageSize: int
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

    @model_validator(mode="after")
    def _one_outcome(self):
        if self.drop and self.status is not None:
            raise ValueError("a fault either answers a status or drops the connection, not both")
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
