"""Fixtures: emulators started in-process on loopback, vendor clients, a callback listener."""

import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from vendor_client import VendorClient

from thingspace_emulator.core import Config, Emulator
from thingspace_emulator.fleet import load_fleet
from thingspace_emulator.server import serve, shutdown
from thingspace_emulator.testing import AdminClient, CallbackListener

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))
from time_limit import time_limit

# Generous: the slowest test (a 100,000-device fleet as a process) takes about 8 s.
pytest_collection_modifyitems = time_limit(__file__, 60)


class Harness:
    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.emulator = server.emulator
        self.admin = AdminClient(self.url)

    def client(self) -> VendorClient:
        return VendorClient(self.url)


class FakeClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_emulator():
    """make_emulator(fleet=None, clock=time.time, **config): an emulator on 127.0.0.1:0, stopped after the test."""
    servers = []

    def make(fleet: Optional[str] = None, clock: Callable[[], float] = time.time, **config) -> Harness:
        settings = {"allow_any_callback_port": True, "delivery_delay": 0.01, "callback_workers": 4, **config}
        server = serve(Emulator(Config(**settings), load_fleet(fleet), clock=clock), "127.0.0.1", 0)
        servers.append(server)
        return Harness(server)

    yield make
    for server in servers:
        shutdown(server)


@pytest.fixture
def emu(make_emulator) -> Harness:
    return make_emulator()


@pytest.fixture
def api(emu) -> VendorClient:
    return emu.client().authenticate()


@pytest.fixture
def listener():
    with CallbackListener() as running:
        yield running
