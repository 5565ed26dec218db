"""The vendor's JSON shapes (pydantic): requests and responses of the vendor endpoints, error bodies
and the bodies of the callbacks the emulator sends."""

from typing import Literal, Optional

from pydantic import BaseModel, Field, RootModel, StrictInt, field_validator


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


class Selection(BaseModel):
    """The account and filters that select devices, in POST /sms and the device list."""

    accountName: Optional[str] = None
    groupName: Optional[str] = None
    servicePlan: Optional[str] = None
    customFields: Optional[list[CustomFieldInput]] = None


class SmsSendRequest(Selection):
    deviceIds: Optional[list[DeviceIdInput]] = None
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
    """A listener as GET /callbacks lists it: credentials not given are empty strings (vendor SDK model
    ConnectivityManagementCallback)."""

    accountName: str
    serviceName: str
    url: str
    username: str = ""
    password: str = ""

    @field_validator("username", "password", mode="before")
    @classmethod
    def _absent_is_empty(cls, value):
        return "" if value is None else value


class CallbackList(RootModel[list[CallbackRegistration]]):
    pass


# ---- device list --------------------------------------------------------------------------------


class DeviceListRequest(Selection):
    """Vendor SDK model AccountDeviceListRequest; fields it does not have are ignored, as the service does."""

    currentState: Optional[str] = None
    largestDeviceIdSeen: Optional[StrictInt] = Field(default=None, ge=0)


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
    extendedAttributes: list[CustomField]


class DeviceListResponse(BaseModel):
    hasMoreData: bool
    devices: list[ThingspaceDevice]


# ---- callback bodies (seed send-sms.txt) --------------------------------------------------------


class CallbackBody(BaseModel):
    """What every callback body starts with: the registration's credentials (empty strings when none
    were registered) and the request id."""

    username: str
    password: str
    requestId: str


class DeviceActionCallback(CallbackBody):
    """EnhancedConnectivityService, one per device of a POST /sms."""

    deviceIds: list[DeviceId]
    comment: str
    status: str
    callbackCount: int
    maxCallbackThreshold: int


class RequestSummary(BaseModel):
    devicesRequested: int


class RequestCompleteCallback(CallbackBody):
    """EnhancedConnectivityService, once per POST /sms and account."""

    comment: str
    summary: RequestSummary


class SmsDeliveryResponse(BaseModel):
    confirmation: Literal["Delivered", "Undelivered", "Expired", "Rejected"]


class DeliveryDeviceResponse(BaseModel):
    smsDeliveryResponse: SmsDeliveryResponse


class DeliveryConfirmationCallback(CallbackBody):
    """SMSDeliveryConfirmation, one per device of a POST /sms."""

    deviceIds: list[DeviceId]
    deviceResponse: DeliveryDeviceResponse


class SmsResponse(BaseModel):
    message: str
    timestamp: str


class MoDeviceResponse(BaseModel):
    smsResponse: SmsResponse


class MoSmsCallback(CallbackBody):
    """EnhancedConnectivityService, one per mobile-originated SMS (shape chosen by the emulator)."""

    deviceIds: list[DeviceId]
    deviceResponse: MoDeviceResponse
    callbackCount: int
    maxCallbackThreshold: int
