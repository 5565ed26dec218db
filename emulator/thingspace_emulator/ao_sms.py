"""Application-originated (AO) SMS: each accepted POST /sms, the delivery outcome of each device, and
the callbacks that report them (EnhancedConnectivityService, then SMSDeliveryConfirmation)."""

import math
import threading
import time
import uuid
from typing import Callable, NamedTuple, Optional

from .behaviours import RECEIVED, Behaviours
from .clock import now_iso
from .fanout import MAX_ATTEMPTS, Delivery, Dispatcher
from .persistence import DeviceCounters, PendingBatch, SentSms
from .registrations import Registrations
from .wire import (
    DeliveryConfirmationCallback,
    DeliveryDeviceResponse,
    DeviceActionCallback,
    DeviceId,
    RequestCompleteCallback,
    RequestSummary,
    SmsDeliveryResponse,
)

ECS = "EnhancedConnectivityService"
DELIVERY = "SMSDeliveryConfirmation"
PENDING_LIMIT = 100  # a device with this many pending messages rejects the next one
CONFIRMATIONS = {"delivered": "Delivered", "undelivered": "Undelivered", "expired": "Expired", "rejected": "Rejected"}
REPLY_CHUNK = 200  # replies one worker task sends, so many replies spread over the workers


def key_id(device) -> DeviceId:
    """The device by its first identifier, as the state file and the admin API name it."""
    return DeviceId(kind=device.key[0], id=device.key[1])


class SentRecord(NamedTuple):
    """One accepted POST /sms, for one account of its devices."""

    request_id: str
    account: str
    message: str
    encoding: str
    devices: list
    received_at: str

    def model(self) -> SentSms:
        return SentSms(
            requestId=self.request_id,
            accountName=self.account,
            smsMessage=self.message,
            dataEncoding=self.encoding,
            devices=[key_id(device) for device in self.devices],
            receivedAt=self.received_at,
        )


def natural_outcome(device) -> str:
    """The outcome a device's state and reachability give: only an active device gets the SMS; an
    unreachable one holds it until it expires."""
    if device.state != "active":
        return "undelivered"
    return "delivered" if device.reachable else "expired"


class Pending:
    """Messages waiting on unreachable devices until they expire."""

    __slots__ = ("account", "devices", "expires_at", "request_id")

    def __init__(self, request_id: str, account: str, devices: list, expires_at: float):
        self.request_id = request_id
        self.account = account
        self.devices = devices
        self.expires_at = expires_at


class Outbox:
    def __init__(self, config, fleet, registrations: Registrations, dispatcher: Dispatcher, behaviours: Behaviours, inbox, on_change: Callable[[], None]):
        """inbox: the mo_sms.Inbox that devices' replies go through."""
        self.config = config
        self.fleet = fleet
        self.registrations = registrations
        self.dispatcher = dispatcher
        self.behaviours = behaviours
        self.inbox = inbox
        self.on_change = on_change
        self.lock = threading.Lock()
        self.sent: list = []
        self.pending: list = []

    def start(self) -> None:
        """Schedule the expiry of the pending messages a saved state brought back."""
        for batch in self.pending:
            self._schedule_expiry(batch)

    def clear(self) -> None:
        with self.lock:
            self.sent.clear()
            self.pending.clear()
            self.fleet.reset_counters()

    def records(self, account: Optional[str] = None) -> list:
        with self.lock:
            return [record.model() for record in self.sent if account is None or record.account == account]

    def accept(self, by_account: dict, message: str, encoding: str) -> str:
        """Record an accepted send ({account: [Device]}), update counters and start its callbacks."""
        request_id = str(uuid.uuid4())
        received_at = now_iso()
        now = time.time()
        speed = self.config.clock_speed
        delivered_after = self.config.delivery_delay / speed
        expires_at = now + self.config.sms_expiry / speed
        plan_of = self.behaviours.compiled()
        with self.lock:
            for account, devices in by_account.items():
                outcomes = []
                waiting = []
                replies = []
                for device in devices:
                    device.sms_received += 1
                    plan = plan_of(device)
                    outcome = plan.outcome or natural_outcome(device)
                    if outcome == "expired":
                        if device.pending >= PENDING_LIMIT:
                            outcome = "rejected"
                        else:
                            device.pending += 1
                            waiting.append(device)
                            continue
                    if outcome != "none":
                        outcomes.append((device, CONFIRMATIONS[outcome]))
                    if plan.reply is not None and outcome in RECEIVED:
                        replies.append((device, plan.reply, plan.reply_delay))
                self.sent.append(SentRecord(request_id, account, message, encoding, devices, received_at))
                if waiting:
                    batch = Pending(request_id, account, waiting, expires_at)
                    self.pending.append(batch)
                    self._schedule_expiry(batch)
                self.dispatcher.run_task(lambda a=account, d=devices, o=outcomes: self._fan_out(request_id, a, d, o, delivered_after))
                self._schedule_replies(account, replies, now, delivered_after, speed)
        self.on_change()
        return request_id

    def _schedule_replies(self, account: str, replies: list, now: float, delivered_after: float, speed: float) -> None:
        """Each device's reply, replyDelay (emulated) after its delivery, and never within the second the
        send was accepted in: the reply's timestamp (whole seconds) is then later than the send."""
        earliest = math.floor(now) + 1
        by_time: dict = {}
        for device, text, delay in replies:
            by_time.setdefault(max(now + delivered_after + delay / speed, earliest), []).append((device, text))
        for at, group in by_time.items():
            for start in range(0, len(group), REPLY_CHUNK):
                chunk = group[start : start + REPLY_CHUNK]
                self.dispatcher.schedule(at - time.time(), lambda c=chunk: self._reply(account, c))

    def _reply(self, account: str, chunk: list) -> None:
        for device, text in chunk:
            self.inbox.inject(account, device, text)

    def _fan_out(self, request_id: str, account: str, devices: list, outcomes: list, delivered_after: float) -> None:
        """Worker task: the EnhancedConnectivityService callbacks now, the confirmations after the delay."""
        registration = self.registrations.get(account, ECS)
        if registration is not None:
            complete = RequestCompleteCallback(
                username=registration.username,
                password=registration.password,
                requestId=request_id,
                comment="SendSmsMessage,Request Completed Processing.",
                summary=RequestSummary(devicesRequested=len(devices)),
            )
            remaining = [len(devices)]
            count_lock = threading.Lock()

            def device_done(_delivered: bool) -> None:
                with count_lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    self.dispatcher.submit(Delivery(ECS, registration.url, complete))

            if not devices:
                self.dispatcher.submit(Delivery(ECS, registration.url, complete))
            for device in devices:
                body = DeviceActionCallback(
                    username=registration.username,
                    password=registration.password,
                    requestId=request_id,
                    deviceIds=device.callback_ids(),
                    comment="SendSmsMessage,Performed action on device.",
                    status="Success",
                    callbackCount=1,
                    maxCallbackThreshold=MAX_ATTEMPTS,
                )
                self.dispatcher.submit(Delivery(ECS, registration.url, body, device_done))
        if outcomes:
            self.dispatcher.schedule(delivered_after, lambda: self._confirm(request_id, account, outcomes))

    def _confirm(self, request_id: str, account: str, outcomes: list) -> None:
        registration = self.registrations.get(account, DELIVERY)
        if registration is None:
            return
        for device, confirmation in outcomes:
            body = DeliveryConfirmationCallback(
                username=registration.username,
                password=registration.password,
                requestId=request_id,
                deviceIds=[device.phone_id()],
                deviceResponse=DeliveryDeviceResponse(smsDeliveryResponse=SmsDeliveryResponse(confirmation=confirmation)),
            )
            self.dispatcher.submit(Delivery(DELIVERY, registration.url, body))

    def _schedule_expiry(self, batch: Pending) -> None:
        self.dispatcher.schedule(max(0.0, batch.expires_at - time.time()), lambda: self._expire(batch))

    def _expire(self, batch: Pending) -> None:
        with self.lock:
            if batch not in self.pending:
                return
            self.pending.remove(batch)
            for device in batch.devices:
                device.pending -= 1
        self.on_change()
        self._confirm(batch.request_id, batch.account, [(device, "Expired") for device in batch.devices])

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "sent": [record.model() for record in self.sent],
                "counters": [
                    DeviceCounters(device=key_id(device), smsReceived=device.sms_received, pending=device.pending)
                    for device in self.fleet.devices()
                    if device.sms_received or device.pending
                ],
                "pending": [
                    PendingBatch(requestId=b.request_id, accountName=b.account, devices=[key_id(d) for d in b.devices], expiresAt=b.expires_at)
                    for b in self.pending
                ],
            }

    def restore(self, state) -> None:
        """Take over a saved state; devices the fleet lacks are dropped."""
        lookup = self.fleet.by_key
        with self.lock:
            for record in state.sent:
                devices = [device for device in map(lookup, record.devices) if device is not None]
                self.sent.append(SentRecord(record.requestId, record.accountName, record.smsMessage, record.dataEncoding, devices, record.receivedAt))
            for counters in state.counters:
                device = lookup(counters.device)
                if device is not None:
                    device.sms_received = counters.smsReceived
                    device.pending = counters.pending
            for batch in state.pending:
                devices = [device for device in map(lookup, batch.devices) if device is not None]
                self.pending.append(Pending(batch.requestId, batch.accountName, devices, batch.expiresAt))
