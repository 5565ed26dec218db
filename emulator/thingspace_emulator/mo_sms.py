"""Mobile-originated (MO) SMS: sent to the account's EnhancedConnectivityService listener, else queued;
the queue is flushed by startCallbacks and read in acknowledged blocks by GET history."""

import itertools
import secrets
import threading
import uuid
from typing import Callable, Optional

from .ao_sms import ECS
from .clock import local_iso
from .fanout import MAX_ATTEMPTS, Delivery, Dispatcher
from .registrations import Registrations
from .wire import CallbackRegistration, MoDeviceResponse, MoSmsCallback, QueuedSms, SmsResponse

HISTORY_BLOCK = 100


class Inbox:
    def __init__(self, fleet, registrations: Registrations, dispatcher: Dispatcher, on_change: Callable[[], None]):
        self.fleet = fleet
        self.registrations = registrations
        self.dispatcher = dispatcher
        self.on_change = on_change
        self.lock = threading.Lock()
        self.queues: dict = {}  # account -> [(seq, QueuedSms)]
        self.queue_seq = itertools.count()
        self.history_tokens: dict = {}  # next token -> (account, seqs of the block it follows)

    def clear(self) -> None:
        with self.lock:
            self.queues.clear()
            self.history_tokens.clear()

    @staticmethod
    def _delivery(registration: CallbackRegistration, device, sms: QueuedSms) -> Delivery:
        body = MoSmsCallback(
            username=registration.username,
            password=registration.password,
            requestId=str(uuid.uuid4()),
            deviceIds=device.callback_ids(),
            deviceResponse=MoDeviceResponse(smsResponse=SmsResponse(message=sms.message, timestamp=sms.timestamp)),
            callbackCount=1,
            maxCallbackThreshold=MAX_ATTEMPTS,
        )
        return Delivery(ECS, registration.url, body)

    def inject(self, account: str, device, message: str) -> bool:
        """A device sends an SMS: to the listener if one takes it, else into the queue. True: delivered."""
        sms = QueuedSms(deviceIds=device.device_ids(), message=message, timestamp=local_iso())
        registration = self.registrations.get(account, ECS)
        if registration is not None and self.dispatcher.deliver_now(self._delivery(registration, device, sms)):
            return True
        with self.lock:
            self.queues.setdefault(account, []).append((next(self.queue_seq), sms))
        self.on_change()
        return False

    def start_callbacks(self, account: str) -> None:
        """Send the queued messages to the listener in the background; those it refuses stay queued."""
        registration = self.registrations.get(account, ECS)
        if registration is None:
            return
        with self.lock:
            queued = list(self.queues.get(account, ()))
        if queued:
            self.dispatcher.run_task(lambda: self._flush(account, registration, queued))

    def _flush(self, account: str, registration: CallbackRegistration, queued: list) -> None:
        for entry in queued:
            device = self.fleet.by_key(entry[1].deviceIds[0])
            if self.dispatcher.deliver_now(self._delivery(registration, device, entry[1])):
                with self.lock:
                    queue = self.queues.get(account, [])
                    if entry in queue:
                        queue.remove(entry)
                self.on_change()

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
            self.on_change()
        return [entry[1] for entry in block], next_token

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"queues": {account: [entry[1] for entry in queue] for account, queue in self.queues.items() if queue}}

    def restore(self, state) -> None:
        """Take over saved queues; messages of accounts or devices the fleet lacks are dropped."""
        with self.lock:
            self.queues = {
                account: [(next(self.queue_seq), sms) for sms in queue if self.fleet.by_key(sms.deviceIds[0])]
                for account, queue in state.queues.items()
                if account in self.fleet.accounts
            }
