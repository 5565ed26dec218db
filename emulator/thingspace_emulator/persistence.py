"""--state FILE: the state file's shape, and its store: loaded at start, written atomically after
changes (debounced) and at shutdown."""

import os
import tempfile
import threading
import time
from typing import Callable, Literal, Optional

from pydantic import BaseModel

from .wire import CallbackRegistration, DeviceId, QueuedSms

DEBOUNCE = 0.2  # seconds between a change and the write that records it


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
    portalListeners: list[CallbackRegistration] = []
    queues: dict[str, list[QueuedSms]] = {}
    sent: list[SentSms] = []
    counters: list[DeviceCounters] = []
    pending: list[PendingBatch] = []
    lockouts: list[Lockout] = []
    accessTokens: list[StoredAccessToken] = []
    sessions: list[StoredSession] = []


def write_atomically(path: str, data: str) -> None:
    """Write a file so that readers see the old or the new content, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class StateStore:
    def __init__(self, path: str, snapshot: Callable[[], StateFile]):
        self.path = path
        self.snapshot = snapshot
        self.dirty = threading.Event()
        self.stopping = False
        self.write_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="state-writer", daemon=True)

    def load(self) -> Optional[StateFile]:
        if not os.path.exists(self.path):
            return None
        with open(self.path, encoding="utf-8") as handle:
            return StateFile.model_validate_json(handle.read())

    def start(self) -> None:
        self.thread.start()

    def mark_dirty(self) -> None:
        self.dirty.set()

    def save(self) -> None:
        with self.write_lock:
            write_atomically(self.path, self.snapshot().model_dump_json())

    def stop(self) -> None:
        """Stop the writer and write the final state."""
        self.stopping = True
        self.dirty.set()
        self.thread.join()
        self.save()

    def _run(self) -> None:
        while True:
            self.dirty.wait()
            if self.stopping:
                return
            time.sleep(DEBOUNCE)
            self.dirty.clear()
            if self.stopping:
                return  # stop() writes the final state
            self.save()
