"""Error codes the emulator answers with, and the exception that carries one to the HTTP layer."""

from typing import Optional

from pydantic import BaseModel

from .wire import ErrorBody, Fault, FaultBody, OAuthErrorBody

# The service names an answer's code starts with ("service name, a period, and the code", as the
# vendor's synchronous error page writes them).
UWS = "UnifiedWebService"
DEVICE_SERVICE = "DeviceService"

# Vendor codes (docs/emulator.md, "Decisions").
ACCOUNT_NOT_FOUND = "REQUEST_FAILED.AccountNotFound"
ACCOUNT_NOT_DEFINED = "INPUT_INVALID.Account.NotDefined"
SESSION_INVALID = "INPUT_INVALID.SessionToken.Invalid"
SESSION_FORMAT = "REQUEST_FAILED.SessionToken.Format"
SESSION_EXPIRED = "REQUEST_FAILED.SessionToken.Expired"
KIND_INVALID = "INPUT_INVALID.Device.Kind.Invalid"
IDENTIFIER_INVALID = "INPUT_INVALID.Device.Identifier.Invalid"
DEVICE_NOT_FOUND = "REQUEST_FAILED.DeviceNotFound"
GROUP_NOT_FOUND = "REQUEST_FAILED.DeviceGroupNotFound"
MESSAGE_NULL = "INPUT_INVALID.SmsMessage.Null"
MESSAGE_TOO_LONG = "INPUT_INVALID.SmsMessage.TooLong"
MAX_REQUESTS = "INPUT_INVALID.MaxRequestsExceeded"
CUSTOM_FIELD_NAME = "INPUT_INVALID.CustomField.InvalidName"
UNEXPECTED = "REQUEST_FAILED.UnexpectedError"

# Emulator choices where the vendor documents no code (docs/emulator.md, "Decision" lines).
BODY_INVALID = "INPUT_INVALID.Body.Invalid"
CONTENT_TYPE = "INPUT_INVALID.ContentType.Invalid"
ENCODING_INVALID = "INPUT_INVALID.DataEncoding.Invalid"
MESSAGE_CHARACTER = "INPUT_INVALID.SmsMessage.InvalidCharacter"
DEVICES_CONFLICT = "INPUT_INVALID.DeviceIds.Conflict"
DEVICES_NULL = "INPUT_INVALID.DeviceIds.Null"
PLAN_NOT_FOUND = "REQUEST_FAILED.ServicePlanNotFound"
LOGIN_FAILED = "REQUEST_FAILED.Login.Failed"
LOGIN_LOCKED = "REQUEST_FAILED.Login.UserLocked"
HISTORY_TOKEN = "INPUT_INVALID.HistoryToken.Invalid"
SERVICE_NAME = "INPUT_INVALID.ServiceName.Invalid"
CALLBACK_URL = "INPUT_INVALID.Url.Invalid"
CALLBACK_PORT = "INPUT_INVALID.Url.PortNotAllowed"
CALLBACK_NOT_REGISTERED = "REQUEST_FAILED.CallbackNotRegistered"


class ApiError(Exception):
    """A refusal: HTTP status, body model and extra headers."""

    def __init__(self, status: int, body: BaseModel, headers: Optional[dict] = None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(code: str, message: str, service: str = UWS) -> ErrorBody:
    return ErrorBody(errorCode=f"{service}.{code}", errorMessage=message)


def bad_request(code: str, message: str, service: str = UWS) -> ApiError:
    return ApiError(400, error_body(code, message, service))


def gateway_fault(status: int, code: str, message: str, description: str) -> ApiError:
    return ApiError(status, FaultBody(fault=Fault(code=code, message=message, description=description)))


def oauth_error(status: int, error: str, description: str) -> ApiError:
    return ApiError(status, OAuthErrorBody(error=error, error_description=description))
