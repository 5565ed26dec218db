"""The emulator's state and the operations on it: accepted SMS and their callbacks, mobile-originated
SMS queues, callback registrations, request log, reset and persistence."""

import itertools
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Optional

from .auth import AuthStore
from .callbacks import MAX_ATTEMPTS, CallbackLog, Delivery, Dispatcher
from .clock import local_iso, now_iso
from .faults import FaultRegistry
from .fleet import Fleet
from .models import (
    CallbackRegistration,
    DeliveryConfirmationCallback,
    DeliveryDeviceResponse,
    DeviceActionCallback,
    DeviceCounters,
    DeviceId,
    MoDeviceResponse,
    MoSmsCallback,
    PendingBatch,
    QueuedSms,
    RequestCompleteCallback,
    RequestSummary,
    SentSms,
    SinkEntry,
    SmsDeliveryResponse,
    SmsResponse,
    StateFile,
)
from .state import StateStore

ECS = "EnhancedConnectivityService"
DELIVERY = "SMSDeliveryConfirmation"
PENDING_LIMIT = 100  # a device with this many pending messages rejects the next one
HISTORY_BLOCK = 100


@dataclass
class Config:
    access_token_ttl: float = 3600.0
    session_idle_ttl: float = 1200.0
    sms_expiry: float = 432000.0
    delivery_delay: float = 0.05
    device_page_size: int = 500
    allow_any_callback_port: bool = False
    allow_remote: bool = False
    callback_workers: int = 8
    log_size: int = 100_000


class SentRecord:
    """One accepted POST /sms, for one account of its devices."""

    __slots__ = ("account", "devices", "encoding", "message", "received_at", "request_id")

    def __init__(self, request_id: str, account: str, message: str, encoding: str, devices: list, received_at: str):
        self.request_id = request_id
        self.account = account
        self.message = message
        self.encoding = encoding
        self.devices = devices
        self.received_at = received_at

    def model(self) -> SentSms:
        return SentSms(
            requestId=self.request_id,
            accountName=self.account,
            smsMessage=self.message,
            dataEncoding=self.encoding,
            devices=[DeviceId(kind=device.key[0], id=device.key[1]) for device in self.devices],
            receivedAt=self.received_at,
        )


class Pending:
    """Messages waiting on unreachable devices until they expire."""

    __slots__ = ("account", "devices", "expires_at", "request_id")

    def __init__(self, request_id: str, account: str, devices: list, expires_at: float):
        self.request_id = request_id
        self.account = account
        self.devices = devices
        self.expires_at = expires_at


class Emulator:
    def __init__(self, config: Config, fleet: Fleet, state_path: Optional[str] = None):
        self.config = config
        self.fleet = fleet
        self.lock = threading.RLock()
        self.auth = AuthStore(fleet, config)
        self.callback_log = CallbackLog(config.log_size)
        self.dispatcher = Dispatcher(self.callback_log, config.callback_workers, config.allow_remote)
        self.faults = FaultRegistry()
        self.requests: deque = deque(maxlen=config.log_size)
        self.sent: list = []
        self.queues: dict = {}  # account -> [(seq, QueuedSms)]
        self.queue_seq = itertools.count()
        self.history_tokens: dict = {}  # next token -> (account, seqs of the block it follows)
        self.registrations: dict = {}  # (account, service) -> CallbackRegistration
        self.pending: list = []
        self.sink: dict = {}  # listener name -> [SinkEntry], the built-in callback listener
        self.store = StateStore(state_path, self.snapshot) if state_path else None

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.store is not None:
            state = self.store.load()
            if state is not None:
                self.restore(state)
        self.dispatcher.start()
        for batch in self.pending:
            self._schedule_expiry(batch)
        if self.store is not None:
            self.store.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        if self.store is not None:
            self.store.stop()

    def changed(self) -> None:
        if self.store is not None:
            self.store.mark_dirty()

    def reset(self) -> None:
        """Back to the loaded fleet; the configuration stays."""
        with self.lock:
            self.dispatcher.reset()
            self.auth.clear()
            self.faults.clear()
            self.callback_log.clear()
            self.requests.clear()
            self.sent.clear()
            self.queues.clear()
            self.history_tokens.clear()
            self.registrations.clear()
            self.pending.clear()
            self.sink.clear()
            self.fleet.reset_counters()
        self.changed()

    def sink_receive(self, name: str, body) -> None:
        with self.lock:
            self.sink.setdefault(name, []).append(SinkEntry(body=body, time=now_iso()))

    def log_request(self, method: str, path: str, query: str, status: Optional[int]) -> None:
        self.requests.append((method, path, query, status, now_iso()))

    # ---- callback registrations ---------------------------------------------------------------

    def register(self, registration: CallbackRegistration) -> None:
        with self.lock:
            self.registrations.pop((registration.accountName, registration.serviceName), None)
            self.registrations[(registration.accountName, registration.serviceName)] = registration
        self.changed()

    def deregister(self, account: str, service: str) -> bool:
        with self.lock:
            found = self.registrations.pop((account, service), None) is not None
        if found:
            self.changed()
        return found

    def registrations_of(self, account: str) -> list:
        with self.lock:
            return [registration for (name, _service), registration in self.registrations.items() if name == account]

    # ---- application-originated SMS -----------------------------------------------------------

    def accept_sms(self, by_account: dict, message: str, encoding: str) -> str:
        """Record an accepted send ({account: [Device]}), update counters and start its callbacks."""
        request_id = str(uuid.uuid4())
        received_at = now_iso()
        expires_at = time.time() + self.config.sms_expiry
        with self.lock:
            for account, devices in by_account.items():
                outcomes = []
                waiting = []
                for device in devices:
                    device.sms_received += 1
                    if device.state != "active":
                        outcomes.append((device, "Undelivered"))
                    elif device.reachable:
                        outcomes.append((device, "Delivered"))
                    elif device.pending >= PENDING_LIMIT:
                        outcomes.append((device, "Rejected"))
                    else:
                        device.pending += 1
                        waiting.append(device)
                self.sent.append(SentRecord(request_id, account, message, encoding, devices, received_at))
                if waiting:
                    batch = Pending(request_id, account, waiting, expires_at)
                    self.pending.append(batch)
                    self._schedule_expiry(batch)
                self.dispatcher.run_task(lambda a=account, d=devices, o=outcomes: self._fan_out(request_id, a, d, o))
        self.changed()
        return request_id

    def _fan_out(self, request_id: str, account: str, devices: list, outcomes: list) -> None:
        """Worker task: the EnhancedConnectivityService callbacks now, the confirmations after the delay."""
        registration = self.registrations.get((account, ECS))
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
                    self.dispatcher.submit(Delivery(ECS, registration, lambda _attempt: complete))

            if not devices:
                self.dispatcher.submit(Delivery(ECS, registration, lambda _attempt: complete))
            for device in devices:
                self.dispatcher.submit(Delivery(ECS, registration, self._action_body(registration, request_id, device), device_done))
        if outcomes:
            self.dispatcher.schedule(self.config.delivery_delay, lambda: self._confirm(request_id, account, outcomes))

    @staticmethod
    def _action_body(registration: CallbackRegistration, request_id: str, device):
        ids = device.callback_ids()

        def body(attempt: int) -> DeviceActionCallback:
            return DeviceActionCallback(
                username=registration.username,
                password=registration.password,
                requestId=request_id,
                deviceIds=ids,
                comment="SendSmsMessage,Performed action on device.",
                status="Success",
                callbackCount=attempt,
                maxCallbackThreshold=MAX_ATTEMPTS,
            )

        return body

    def _confirm(self, request_id: str, account: str, outcomes: list) -> None:
        registration = self.registrations.get((account, DELIVERY))
        if registration is None:
            return
        for device, confirmation in outcomes:
            body = DeliveryConfirmationCallback(
                username=registration.username,
                password=registration.password,
                requestId=request_id,
                deviceIds=device.callback_ids(),
                deviceResponse=DeliveryDeviceResponse(smsDeliveryResponse=SmsDeliveryResponse(confirmation=confirmation)),
            )
            self.dispatcher.submit(Delivery(DELIVERY, registration, lambda _attempt, b=body: b))

    def _schedule_expiry(self, batch: Pending) -> None:
        self.dispatcher.schedule(max(0.0, batch.expires_at - time.time()), lambda: self._expire(batch))

    def _expire(self, batch: Pending) -> None:
        with self.lock:
            if batch not in self.pending:
                return
            self.pending.remove(batch)
            for device in batch.devices:
                device.pending -= 1
        self.changed()
        self._confirm(batch.request_id, batch.account, [(device, "Expired") for device in batch.devices])

    # ---- mobile-originated SMS ----------------------------------------------------------------

    def _mo_delivery(self, registration: CallbackRegistration, device, sms: QueuedSms) -> Delivery:
        request_id = str(uuid.uuid4())
        ids = device.callback_ids()

        def body(attempt: int) -> MoSmsCallback:
            return MoSmsCallback(
                username=registration.username,
                password=registration.password,
                requestId=request_id,
                deviceIds=ids,
                deviceResponse=MoDeviceResponse(smsResponse=SmsResponse(message=sms.message, timestamp=sms.timestamp)),
                callbackCount=attempt,
                maxCallbackThreshold=MAX_ATTEMPTS,
            )

        return Delivery(ECS, registration, body)

    def inject_mo(self, account: str, device, message: str) -> bool:
        """A device sends an SMS: to the listener if one takes it, else into the queue. True: delivered."""
        sms = QueuedSms(deviceIds=device.device_ids(), message=message, timestamp=local_iso())
        registration = self.registrations.get((account, ECS))
        if registration is not None and self.dispatcher.deliver_now(self._mo_delivery(registration, device, sms)):
            return True
        with self.lock:
            self.queues.setdefault(account, []).append((next(self.queue_seq), sms))
        self.changed()
        return False

    def start_callbacks(self, account: str) -> None:
        """Send the queued messages to the listener in the background; those it refuses stay queued."""
        registration = self.registrations.get((account, ECS))
        if registration is None:
            return
        with self.lock:
            queued = list(self.queues.get(account, ()))
        if queued:
            self.dispatcher.run_task(lambda: self._flush(account, registration, queued))

    def _flush(self, account: str, registration: CallbackRegistration, queued: list) -> None:
        for entry in queued:
            device = self.fleet.by_key(entry[1].deviceIds[0])
            if self.dispatcher.deliver_now(self._mo_delivery(registration, device, entry[1])):
                with self.lock:
                    queue = self.queues.get(account, [])
                    if entry in queue:
                        queue.remove(entry)
                self.changed()

    def history_page(self, account: str, token: Optional[int]) -> tuple:
        """(messages, next token or None); token acknowledges the block it was issued with.
        Raises KeyError for an unknown or used token."""
        with self.lock:
            queue = self.queues.setdefault(account, [])
            if token is not None:
                owner, acked = self.history_tokens[token]
                if owner != account:
                    raise KeyError(token)
                del self.history_tokens[token]
                queue[:] = [entry for entry in queue if entry[0] not in acked]
            block = queue[:HISTORY_BLOCK]
            next_token = None
            if len(queue) > HISTORY_BLOCK:
                next_token = secrets.randbelow(2**31 - 2) + 1
                while next_token in self.history_tokens:
                    next_token = secrets.randbelow(2**31 - 2) + 1
                self.history_tokens[next_token] = (account, {entry[0] for entry in block})
            else:
                del queue[: len(block)]
        if token is not None or next_token is None:
            self.changed()
        return [entry[1] for entry in block], next_token

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> StateFile:
        with self.lock:
            auth = self.auth.snapshot()
            return StateFile(
                registrations=list(self.registrations.values()),
                queues={account: [entry[1] for entry in queue] for account, queue in self.queues.items() if queue},
                sent=[record.model() for record in self.sent],
                counters=[
                    DeviceCounters(device=DeviceId(kind=d.key[0], id=d.key[1]), smsReceived=d.sms_received, pending=d.pending)
                    for d in self.fleet.devices()
                    if d.sms_received or d.pending
                ],
                pending=[
                    PendingBatch(
                        requestId=b.request_id,
                        accountName=b.account,
                        devices=[DeviceId(kind=d.key[0], id=d.key[1]) for d in b.devices],
                        expiresAt=b.expires_at,
                    )
                    for b in self.pending
                ],
                **auth,
            )

    def restore(self, state: StateFile) -> None:
        """Take over a saved state; entries naming devices or accounts the fleet lacks are dropped."""
        lookup = self.fleet.by_key
        with self.lock:
            self.auth.restore(state)
            self.registrations = {(r.accountName, r.serviceName): r for r in state.registrations if r.accountName in self.fleet.accounts}
            self.queues = {
                account: [(next(self.queue_seq), sms) for sms in queue if lookup(sms.deviceIds[0])]
                for account, queue in state.queues.items()
                if account in self.fleet.accounts
            }
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
