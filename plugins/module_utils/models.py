# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pydantic models of the ThingSpace wire format: what the client sends and what it accepts back.

Attributes are snake_case; the JSON names (camelCase) come from the alias generator, so a model
dumps and parses exactly the vendor's field names.
"""

from __future__ import annotations

from typing import List, Optional

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

try:
    from pydantic import BaseModel, ConfigDict, RootModel
    from pydantic.alias_generators import to_camel
    from typing_extensions import TypedDict  # pydantic's own dependency; before Python 3.12 pydantic needs this TypedDict
except ImportError:
    # Placeholders so this file imports; ThingSpaceModule fails with missing_required_lib when it starts.
    BaseModel = RootModel = object
    ConfigDict = TypedDict = dict

    def to_camel(name):
        return name


def parse(model, response, what):
    """Validate a JSON answer against ``model``; ThingSpaceError naming ``what`` when it does not fit. pydantic reads the
    bytes itself: a third less CPU than ``json.loads`` then validating the objects (a device list page of 2,000 devices)."""
    try:
        return model.model_validate_json(response.content)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ThingSpaceError("Unexpected content in %s (HTTP %d): %s" % (what, response.status_code, exc), status=response.status_code)


class Wire(BaseModel):
    """Base of every model: camelCase on the wire, unknown fields ignored (the API adds fields over time)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self):
        """The JSON body for a request."""
        return self.model_dump(by_alias=True, exclude_none=True)


class DeviceId(Wire):
    kind: str
    id: str


class CustomField(Wire):
    key: str
    value: str


# --- auth ---------------------------------------------------------------------------------------


class OAuthToken(BaseModel):
    """POST /api/ts/v1/oauth2/token (OAuth names, not camelCase)."""

    model_config = ConfigDict(extra="ignore")
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = 3600


class LoginRequest(Wire):
    username: str
    password: str


class SessionToken(Wire):
    session_token: str


# --- SMS ------------------------------------------------------------------------------------------


class RequestDeviceId(TypedDict):
    """A device of a send request, validated as a dict: a model object per device cost 0.1 s per 100,000 devices."""

    kind: str
    id: str


class SendSmsRequest(Wire):
    sms_message: str
    device_ids: Optional[List[RequestDeviceId]] = None
    account_name: Optional[str] = None
    group_name: Optional[str] = None
    service_plan: Optional[str] = None
    custom_fields: Optional[List[CustomField]] = None
    data_encoding: Optional[str] = None


class RequestId(Wire):
    request_id: str


class Success(Wire):
    success: bool


class MoMessage(Wire):
    device_ids: List[DeviceId] = []
    message: str = ""
    timestamp: Optional[str] = None


class SmsHistory(Wire):
    messages: List[MoMessage] = []
    has_more_data: bool = False


# --- callback listeners ---------------------------------------------------------------------------


class CallbackRegistration(Wire):
    """Body of POST /callbacks/{accountName}."""

    name: str
    url: str
    username: Optional[str] = None
    password: Optional[str] = None


class CallbackListener(Wire):
    """One entry of GET /callbacks/{accountName}."""

    account_name: Optional[str] = None
    service_name: str
    url: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None


class CallbackListeners(RootModel):
    """GET /callbacks/{accountName} answers a bare JSON array."""

    root: List[CallbackListener]


class CallbackName(Wire):
    """Answer of POST and DELETE on /callbacks."""

    account_name: Optional[str] = None
    service_name: Optional[str] = None


# --- devices --------------------------------------------------------------------------------------


class DeviceListRequest(Wire):
    account_name: str
    group_name: Optional[str] = None
    service_plan: Optional[str] = None
    custom_fields: Optional[List[CustomField]] = None
    current_state: Optional[str] = None
    # The paging cursor: the largest internal device id of the pages read so far.
    largest_device_id_seen: Optional[int] = None


class CarrierInformation(Wire):
    service_plan: Optional[str] = None
    state: Optional[str] = None


class ExtendedAttribute(Wire):
    key: str
    value: Optional[str] = None


class DeviceState(Wire):
    """What counting a device needs: its state (first carrier information) and its paging cursor; a page of these
    (DeviceStateList) skips the other fields of each device, half the CPU of a DeviceList page."""

    carrier_informations: List[CarrierInformation] = []
    extended_attributes: List[ExtendedAttribute] = []

    def internal_id(self):
        """The service's own id of the device (extended attribute ``DeviceId``), the device list's paging
        cursor; None when absent or not a number."""
        for attribute in self.extended_attributes:
            if attribute.key == "DeviceId" and attribute.value and attribute.value.isdigit():
                return int(attribute.value)
        return None


class Device(DeviceState):
    account_name: Optional[str] = None
    device_ids: List[DeviceId] = []
    group_names: List[str] = []
    custom_fields: List[CustomField] = []
    ip_address: Optional[str] = None


class DeviceList(Wire):
    devices: List[Device] = []
    has_more_data: bool = False


class DeviceStateList(Wire):
    devices: List[DeviceState] = []
    has_more_data: bool = False
