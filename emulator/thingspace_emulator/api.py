"""The vendor endpoints: checks, error codes and JSON shapes as the vendor documents them
(docs/emulator.md lists the choices made where it does not)."""

import json
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ValidationError

from . import errors
from .core import Emulator
from .fanout import is_loopback_host
from .rules import (
    ALLOWED_PORTS,
    CUSTOM_FIELD_NAMES,
    DATA_ENCODINGS,
    DEFAULT_ENCODING,
    KINDS,
    MAX_DEVICES,
    SERVICE_NAMES,
    UnsupportedCharacter,
    message_units,
    unit_limit,
    valid_identifier,
)
from .wire import (
    CallbackActionResult,
    CallbackList,
    CallbackRegistration,
    CarrierInformation,
    CustomField,
    DeviceListRequest,
    DeviceListResponse,
    HistoryResponse,
    LoginRequest,
    RegisterCallbackRequest,
    SessionTokenBody,
    SmsSendRequest,
    SmsSendResponse,
    SuccessResponse,
    ThingspaceDevice,
)

CARRIER = "Verizon Wireless"


class Request(NamedTuple):
    """What a handler sees of an HTTP request."""

    method: str
    path: str
    query: str
    params: dict
    headers: Any
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)


class Reply:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Optional[BaseModel], headers: Optional[dict] = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def body_invalid(message: str) -> errors.ApiError:
    return errors.bad_request(errors.BODY_INVALID, message)


def parse_body(request: Request, model: type, error: Callable[[str], errors.ApiError] = body_invalid):
    """The JSON body as model; error(message) builds the refusal of a body that is not one."""
    try:
        data = json.loads(request.body)
    except ValueError:
        raise error("The request body is not valid JSON.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise error(f"{where}: {first['msg']}") from None


def json_body(request: Request, model: type):
    """The body of a vendor call as model; the call must say it is JSON, as the vendor requires."""
    media_type = (request.header("Content-Type") or "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise errors.bad_request(errors.CONTENT_TYPE, "Content-Type must be application/json.")
    return parse_body(request, model)


def session_user(emulator: Emulator, request: Request) -> str:
    """Both tokens of an M2M call: the bearer first (gateway), then the session."""
    emulator.tokens.check_bearer(request.header("Authorization"))
    return emulator.tokens.check_session(request.header("VZ-M2M-Token"))


def user_account(emulator: Emulator, username: str, name: str):
    """An account the user may use; unknown and foreign accounts look alike."""
    if name in emulator.fleet.user_accounts(username):
        return emulator.fleet.accounts[name]
    raise errors.bad_request(errors.ACCOUNT_NOT_FOUND, f"Account {name} was not found.")


def custom_criteria(fields: Optional[list], service: str = errors.UWS) -> list:
    criteria = []
    for field in fields or ():
        if field.key not in CUSTOM_FIELD_NAMES:
            raise errors.bad_request(errors.CUSTOM_FIELD_NAME, f"Custom field name {field.key!r} is not one of {', '.join(CUSTOM_FIELD_NAMES)}.", service)
        if field.value is None:
            raise errors.bad_request(errors.BODY_INVALID, f"customFields: {field.key} has no value.", service)
        criteria.append((field.key, field.value))
    return criteria


def check_filters(account, group: Optional[str], plan: Optional[str], service: str = errors.UWS) -> None:
    if group is not None and group not in account.groups:
        raise errors.bad_request(errors.GROUP_NOT_FOUND, f"Device group {group!r} was not found in account {account.name}.", service)
    if plan is not None and plan not in account.plans:
        raise errors.bad_request(errors.PLAN_NOT_FOUND, f"Service plan {plan!r} was not found in account {account.name}.", service)


# ---- auth ---------------------------------------------------------------------------------------


def token(emulator: Emulator, request: Request) -> Reply:
    issued = emulator.tokens.issue_access_token(request.header("Authorization"), request.body)
    return Reply(200, issued, {"Cache-Control": "no-store"})


def login(emulator: Emulator, request: Request) -> Reply:
    emulator.tokens.check_bearer(request.header("Authorization"))
    body = json_body(request, LoginRequest)
    return Reply(200, SessionTokenBody(sessionToken=emulator.tokens.login(body.username, body.password)))


def logout(emulator: Emulator, request: Request) -> Reply:
    session_user(emulator, request)
    session = request.header("VZ-M2M-Token").strip()
    emulator.tokens.logout(session)
    return Reply(200, SessionTokenBody(sessionToken=session))


# ---- SMS ----------------------------------------------------------------------------------------


def send_sms(emulator: Emulator, request: Request) -> Reply:
    username = session_user(emulator, request)
    body: SmsSendRequest = json_body(request, SmsSendRequest)
    if not body.smsMessage:
        raise errors.bad_request(errors.MESSAGE_NULL, "smsMessage is required.")
    encoding = next((name for name in DATA_ENCODINGS if name.lower() == (body.dataEncoding or DEFAULT_ENCODING).lower()), None)
    if encoding is None:
        raise errors.bad_request(errors.ENCODING_INVALID, f"dataEncoding must be one of {', '.join(DATA_ENCODINGS)}.")
    try:
        units = message_units(body.smsMessage, encoding)
    except UnsupportedCharacter as exc:
        raise errors.bad_request(errors.MESSAGE_CHARACTER, f"{exc} ({encoding}).") from None
    if units > unit_limit(encoding):
        unit = "septets" if encoding == "7-bit" else "bytes"
        raise errors.bad_request(errors.MESSAGE_TOO_LONG, f"The message takes {units} {unit}; {encoding} allows {unit_limit(encoding)}.")
    filtered = body.groupName is not None or body.servicePlan is not None or bool(body.customFields)
    if body.deviceIds and filtered:
        raise errors.bad_request(errors.DEVICES_CONFLICT, "Give deviceIds or groupName/servicePlan/customFields, not both.")
    if not body.deviceIds and not filtered:
        raise errors.bad_request(errors.DEVICES_NULL, "Give deviceIds or at least one of groupName, servicePlan, customFields.")
    requested = body.deviceIds or []
    if len(requested) > MAX_DEVICES:
        raise errors.bad_request(errors.MAX_REQUESTS, f"{len(requested)} devices requested; at most {MAX_DEVICES} are allowed.")
    for device_id in requested:
        kind = (device_id.kind or "").lower()
        if kind not in KINDS:
            raise errors.bad_request(errors.KIND_INVALID, f"Device kind {device_id.kind!r} is not valid.")
        if device_id.id is None or not valid_identifier(kind, device_id.id):
            raise errors.bad_request(errors.IDENTIFIER_INVALID, f"{device_id.id!r} is not a valid {kind}.")
    criteria = custom_criteria(body.customFields)
    allowed = emulator.fleet.user_accounts(username)
    if body.accountName is not None:
        allowed = [user_account(emulator, username, body.accountName).name]
    elif filtered and len(allowed) != 1:
        raise errors.bad_request(errors.ACCOUNT_NOT_DEFINED, "accountName is required: the user has access to several accounts.")
    if filtered:
        account = emulator.fleet.accounts[allowed[0]]
        check_filters(account, body.groupName, body.servicePlan)
        selected = [device for device in account.devices if device.matches(body.groupName, body.servicePlan, criteria, None)]
        by_account = {account.name: selected}
    else:
        by_account = {}
        seen = set()
        for device_id in requested:
            device = emulator.fleet.lookup(device_id.kind, device_id.id)
            if device is None or device.account not in allowed:
                raise errors.bad_request(errors.DEVICE_NOT_FOUND, f"Device {device_id.kind} {device_id.id} was not found.")
            if id(device) not in seen:
                seen.add(id(device))
                by_account.setdefault(device.account, []).append(device)
    return Reply(200, SmsSendResponse(requestId=emulator.outbox.accept(by_account, body.smsMessage, encoding)))


def start_callbacks(emulator: Emulator, request: Request, account: str) -> Reply:
    username = session_user(emulator, request)
    emulator.inbox.start_callbacks(user_account(emulator, username, account).name)
    return Reply(200, SuccessResponse(success=True))


def history(emulator: Emulator, request: Request, account: str) -> Reply:
    username = session_user(emulator, request)
    name = user_account(emulator, username, account).name
    given = request.params.get("next")
    invalid = errors.bad_request(errors.HISTORY_TOKEN, f"next={given} is not a token this account was given, or it was used.")
    if given is not None and not (given.isascii() and given.isdigit()):
        raise invalid
    try:
        messages, next_token = emulator.inbox.history_page(name, None if given is None else int(given))
    except KeyError:
        raise invalid from None
    if next_token is None:
        return Reply(200, HistoryResponse(messages=messages, hasMoreData=False))
    # Relative to the M2M base, as the vendor SDK's SMS controller documents it.
    location = f"/sms/{quote(name, safe='')}/history?next={next_token}"
    return Reply(202, HistoryResponse(messages=messages, hasMoreData=True), {"Location": location})


# ---- callback registration ----------------------------------------------------------------------


def register_callback(emulator: Emulator, request: Request, account: str) -> Reply:
    username = session_user(emulator, request)
    name = user_account(emulator, username, account).name
    body: RegisterCallbackRequest = json_body(request, RegisterCallbackRequest)
    if body.name not in SERVICE_NAMES:
        raise errors.bad_request(errors.SERVICE_NAME, f"{body.name!r} is not a callback service name.")
    check_callback_url(emulator, body.url)
    if emulator.registrations.is_portal(name, body.name):
        # The vendor documents no code for this refusal: its generic one.
        message = (
            f"The {body.name} listener of account {name} was registered through the ThingSpace portal or the SOAP API and cannot be replaced through REST."
        )
        raise errors.bad_request(errors.UNEXPECTED, message)
    emulator.registrations.register(CallbackRegistration(accountName=name, serviceName=body.name, url=body.url, username=body.username, password=body.password))
    return Reply(200, CallbackActionResult(accountName=name, serviceName=body.name))


def check_callback_url(emulator: Emulator, url: Optional[str]) -> None:
    invalid = errors.bad_request(errors.CALLBACK_URL, f"{url!r} is not an http or https URL.")
    try:
        parts = urlsplit(url or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise invalid from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid
    if port not in ALLOWED_PORTS and not (emulator.config.allow_any_callback_port and is_loopback_host(parts.hostname)):
        raise errors.bad_request(errors.CALLBACK_PORT, f"Port {port} is not allowed; use 80, 443, 9001-9006, 50551-50559 or 28200-28220.")


def list_callbacks(emulator: Emulator, request: Request, account: str) -> Reply:
    username = session_user(emulator, request)
    name = user_account(emulator, username, account).name
    return Reply(200, CallbackList(emulator.registrations.of_account(name)))


def deregister_callback(emulator: Emulator, request: Request, account: str, service: str) -> Reply:
    username = session_user(emulator, request)
    name = user_account(emulator, username, account).name
    if service not in SERVICE_NAMES:
        raise errors.bad_request(errors.SERVICE_NAME, f"{service!r} is not a callback service name.")
    if not emulator.registrations.deregister(name, service):
        raise errors.bad_request(errors.CALLBACK_NOT_REGISTERED, f"No {service} listener is registered for account {name}.")
    return Reply(200, CallbackActionResult(accountName=name, serviceName=service))


# ---- device list --------------------------------------------------------------------------------


def list_devices(emulator: Emulator, request: Request) -> Reply:
    username = session_user(emulator, request)
    body: DeviceListRequest = json_body(request, DeviceListRequest)
    if body.accountName is None:
        raise errors.bad_request(errors.ACCOUNT_NOT_DEFINED, "accountName is required.")
    account = user_account(emulator, username, body.accountName)
    criteria = custom_criteria(body.customFields, errors.DEVICE_SERVICE)
    check_filters(account, body.groupName, body.servicePlan, errors.DEVICE_SERVICE)
    page_size = emulator.config.device_page_size
    page = []
    more = False
    for device in account.devices_after(body.largestDeviceIdSeen):
        if device.matches(body.groupName, body.servicePlan, criteria, body.currentState):
            if len(page) == page_size:
                more = True
                break
            page.append(device)
    devices = [
        ThingspaceDevice(
            accountName=device.account,
            deviceIds=device.device_ids(),
            groupNames=device.groups,
            customFields=[CustomField(key=key, value=value) for key, value in sorted(device.custom.items())],
            carrierInformations=[CarrierInformation(carrierName=CARRIER, servicePlan=device.plan, state=device.state)],
            connected=device.state == "active" and device.reachable,
            createdAt=device.created_at,
            ipAddress=device.ip,
            extendedAttributes=[CustomField(key="DeviceId", value=str(device.device_id))],
        )
        for device in page
    ]
    if more:
        return Reply(202, DeviceListResponse(hasMoreData=True, devices=devices))
    return Reply(200, DeviceListResponse(hasMoreData=False, devices=devices))
