# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ThingSpace's callbacks say, as events: the body shapes, one normalized event per callback, the identity
that tells a repeat from a new callback, and the recorder interface a source records events through.

Used by the event sources ``thingspace.m2m.callbacks`` and ``thingspace.m2m.sms_history``. The shapes are those
of the vendor's POST /sms page; the device SMS callback, of which the vendor publishes no example, follows
its other callbacks (docs/emulator.md, "Decisions").

An event is a dict with every key of ``EVENT_KEYS`` (None where it does not apply):

``event_id``
  the identity (``event_identity``): the same callback sent again has the same one.
``type``
  ``sms_sent`` (EnhancedConnectivityService: the network sent the SMS to a device), ``request_complete``
  (EnhancedConnectivityService: a send's devices were all processed), ``sms_delivery``
  (SMSDeliveryConfirmation) or ``device_sms`` (an SMS a device sent).
``service``, ``via``
  the callback service, and ``callback`` or ``history`` (read from GET /sms/{account}/history, no service).
``account``, ``request_id``, ``devices``
  the account the listener URL names, the send's request id, the device's identifiers ``[{kind, id}]`` with
  kinds in lower case (MEIDs in upper case), in the body's order.
``state``
  of ``sms_delivery``: ``Delivered``, ``Undelivered``, ``Expired`` or ``Rejected``.
``status``, ``comment``, ``devices_requested``
  of ``sms_sent`` (status, comment) and ``request_complete`` (comment, devices_requested).
``message``, ``sent_at``
  of ``device_sms``: the text and the timestamp ThingSpace gives it.
``received_at``
  when the source received it (ISO 8601, UTC).
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections import OrderedDict
from datetime import datetime, timezone
from typing import List, Literal, Optional

from ansible_collections.thingspace.m2m.plugins.module_utils.models import Wire
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import spelling

try:
    from pydantic import Field
except ImportError:
    # A placeholder so this file imports without pydantic; the sources need it and fail when it is missing.
    def Field(**kwargs):
        return None


SMS_SERVICE = "EnhancedConnectivityService"
DELIVERY_SERVICE = "SMSDeliveryConfirmation"
# The event types each service's callbacks carry.
SERVICE_TYPES = {
    SMS_SERVICE: ("sms_sent", "request_complete", "device_sms"),
    DELIVERY_SERVICE: ("sms_delivery",),
}
DELIVERY_STATES = ("Delivered", "Undelivered", "Expired", "Rejected")
# A target no callback has named yet, whose request ThingSpace took (the ledger has it sent).
ACCEPTED = "accepted"
# A target the ledger does not know to be sent (pending, unknown or in flight): no callback will name it.
UNCONFIRMED = "unconfirmed"
EVENT_KEYS = ("event_id", "type", "service", "via", "account", "request_id", "devices", "state", "status", "comment",
              "devices_requested", "message", "sent_at", "received_at")
# The event fields that make up the identity of each type (beside the type itself). A device is every
# identifier the body names, in sorted order; callbackCount, which counts the attempts, is never part of it.
IDENTITY_FIELDS = {
    "sms_sent": ("account", "request_id", "devices", "status"),
    "request_complete": ("account", "request_id"),
    "sms_delivery": ("account", "request_id", "devices", "state"),
    # No request id: ThingSpace gives a queued SMS a new one when it sends it again, and history has none.
    "device_sms": ("account", "devices", "message", "sent_at"),
}


# --- the body shapes --------------------------------------------------------------------------------
# Listener credentials are not fields: the source takes them out of the body before validating it.


class CallbackDeviceId(Wire):
    kind: str = Field(min_length=1)
    id: str = Field(min_length=1)


class SmsSent(Wire):
    request_id: str = Field(min_length=1)
    device_ids: List[CallbackDeviceId] = Field(min_length=1)
    status: str = Field(min_length=1)
    comment: Optional[str] = None
    callback_count: Optional[int] = None
    max_callback_threshold: Optional[int] = None


class RequestSummary(Wire):
    devices_requested: int = Field(ge=0)


class RequestComplete(Wire):
    request_id: str = Field(min_length=1)
    summary: RequestSummary
    comment: Optional[str] = None


class SmsDeliveryResponse(Wire):
    confirmation: Literal[DELIVERY_STATES]


class DeliveryResponse(Wire):
    sms_delivery_response: SmsDeliveryResponse


class SmsDelivery(Wire):
    request_id: str = Field(min_length=1)
    device_ids: List[CallbackDeviceId] = Field(min_length=1)
    device_response: DeliveryResponse


class SmsResponse(Wire):
    message: str
    timestamp: str = Field(min_length=1)


class DeviceSmsResponse(Wire):
    sms_response: SmsResponse


class DeviceSms(Wire):
    request_id: Optional[str] = None
    device_ids: List[CallbackDeviceId] = Field(min_length=1)
    device_response: DeviceSmsResponse
    callback_count: Optional[int] = None
    max_callback_threshold: Optional[int] = None


SHAPES = {"sms_sent": SmsSent, "request_complete": RequestComplete, "sms_delivery": SmsDelivery, "device_sms": DeviceSms}


class CallbackError(ValueError):
    """A body that is not a callback of the service it was posted for. The message never quotes the body."""


def _shape_of(body):
    """The event type a body has the shape of, by the field that only that shape has; None for none."""
    response = body.get("deviceResponse")
    if "summary" in body:
        return "request_complete"
    if isinstance(response, dict) and "smsDeliveryResponse" in response:
        return "sms_delivery"
    if isinstance(response, dict) and "smsResponse" in response:
        return "device_sms"
    if "status" in body and response is None:
        return "sms_sent"
    return None


def parse_callback(service, body):
    """(event type, validated model) of ``body`` posted for ``service``; CallbackError when the service is not one
    whose callbacks are understood or the body is not one of its shapes."""
    if service not in SERVICE_TYPES:
        raise CallbackError("%r is not a callback service this source takes; it takes %s" % (service, ", ".join(SERVICE_TYPES)))
    if not isinstance(body, dict):
        raise CallbackError("the body is not a JSON object")
    kind = _shape_of(body)
    if kind not in SERVICE_TYPES[service]:
        raise CallbackError("the body has the shape of no %s callback" % service)
    try:
        return kind, SHAPES[kind].model_validate(body)
    except ValueError as exc:  # pydantic.ValidationError
        problems = ["%s: %s" % (".".join(str(part) for part in error["loc"]) or "body", error["msg"])
                    for error in exc.errors(include_url=False, include_input=False)]
        raise CallbackError("the body is not a valid %s callback (%s)" % (kind, "; ".join(problems)))


# --- events ---------------------------------------------------------------------------------------------


def normalize_devices(device_ids):
    """``[{kind, id}]`` with kinds in lower case and hexadecimal identifiers in upper case, in the given order."""
    devices = []
    for device in device_ids:
        kind = device.kind.strip().lower()
        devices.append({"kind": kind, "id": spelling(kind, device.id)})
    return devices


# json.dumps(ensure_ascii=False, separators=(",", ":")) without making an encoder per call.
_IDENTITY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event_identity(event):
    """The identity of an event: the SHA-256 (hex) of its type and the fields ``IDENTITY_FIELDS`` names."""
    fields = [event["type"]]
    for name in IDENTITY_FIELDS[event["type"]]:
        value = event[name]
        fields.append(sorted([device["kind"], device["id"]] for device in value) if name == "devices" else value)
    return hashlib.sha256(_IDENTITY_JSON(fields).encode("utf-8")).hexdigest()


def _event(kind, account, via, received_at, **fields):
    event = dict.fromkeys(EVENT_KEYS)
    event.update(fields, type=kind, account=account, via=via, received_at=received_at.isoformat(timespec="milliseconds"))
    event["event_id"] = event_identity(event)
    return event


def callback_event(service, account, body, received_at=None):
    """The event of one callback ``body`` (without the listener credentials) posted for ``service`` and ``account``;
    CallbackError when it is not a callback of that service."""
    kind, callback = parse_callback(service, body)
    received_at = received_at or datetime.now(timezone.utc)
    fields = dict(service=service, request_id=callback.request_id)
    if kind == "request_complete":
        fields.update(comment=callback.comment, devices_requested=callback.summary.devices_requested)
    else:
        fields["devices"] = normalize_devices(callback.device_ids)
    if kind == "sms_sent":
        fields.update(status=callback.status, comment=callback.comment)
    elif kind == "sms_delivery":
        fields["state"] = callback.device_response.sms_delivery_response.confirmation
    elif kind == "device_sms":
        sms = callback.device_response.sms_response
        fields.update(message=sms.message, sent_at=sms.timestamp)
    return _event(kind, account, "callback", received_at, **fields)


def history_event(account, message, received_at=None):
    """The event of one message (a models.MoMessage) read from GET /sms/{account}/history."""
    return _event("device_sms", account, "history", received_at or datetime.now(timezone.utc),
                  devices=normalize_devices(message.device_ids), message=message.message, sent_at=message.timestamp)


def device_host(event, kinds):
    """The identifier of the event's device of the first of ``kinds`` it has (for ``meta.hosts``), or None."""
    by_kind = {}
    for device in event["devices"] or ():
        by_kind.setdefault(device["kind"], device["id"])
    return next((by_kind[kind] for kind in kinds if kind in by_kind), None)


# --- recording ------------------------------------------------------------------------------------------


class CallbackRecorder(abc.ABC):
    """Where a source records each event before it acknowledges it: ``thingspace.m2m.callbacks`` answers
    ThingSpace 2xx, and ``thingspace.m2m.sms_history`` asks for the next history block, only once ``record``
    has returned (``_event_source.Recording`` owns that order). The source calls ``record`` and ``close`` from one
    thread, one call at a time, outside its event loop, so an implementation may block (a database commit) and
    need not be thread-safe. ``where`` names the place in log lines."""

    where = None

    @abc.abstractmethod
    def record(self, events, queued=()):
        """Record ``events`` (each keyed by its ``event_id``) for good, and that the events of the identities
        ``queued`` are on the rulebook's queue now; return, per event, True when the source is to queue it: not
        recorded before, or recorded but never queued; None while another instance of the source has it recorded
        and not queued yet (the source asks again, then refuses it); else False. An event given twice is True
        once. Raise to refuse them all: the callback source answers 503, so ThingSpace sends them again, and the
        history source reads the block again."""

    @abc.abstractmethod
    def close(self):
        """Release what the recorder holds; called once, when the source stops."""


class MemoryRecorder(CallbackRecorder):
    """Remembers the identities of the last ``window`` events, in memory: repeats within the window are found,
    nothing survives the process (nor does the rulebook's queue, so ``queued`` adds nothing)."""

    def __init__(self, window):
        if window < 1:
            raise ValueError("the dedupe window must be 1 or more events, not %r" % window)
        self.window = window
        self.where = "memory (the last %d identities)" % window
        self._seen = OrderedDict()

    def record(self, events, queued=()):
        found = []
        for event in events:
            key = event["event_id"]
            found.append(key not in self._seen)
            self._seen[key] = None
            if len(self._seen) > self.window:
                self._seen.popitem(last=False)
        return found

    def close(self):
        """Nothing to release: the identities go with the process."""
