"""SIGKILL of the callback receiver (the event source thingspace.m2m.callbacks in a process of its own,
tests/utils/callback_receiver.py) while the emulator's callbacks of a 300-device send flow into it, then a restart
on the same port and store. The emulator retries a callback that got no 2xx after 1, 2 and 4 s
(--callback-retry-delays), so its retries span the restart as the vendor's minutes-long ones would.

Every callback answered 2xx before the kill is in the store at the kill; the others come again and are recorded
after the restart; in the end the store holds each distinct callback the emulator sent once, and one delivery
state per device of the send."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import subprocess
import sys

import pytest
from harness import ACCOUNT, FLEET_SIZE, ROOT, devices, task, wait_until

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import delivery_report
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

pytestmark = pytest.mark.both_ledgers

RUNNER = ROOT / "tests" / "utils" / "callback_receiver.py"
SERVICES = ("EnhancedConnectivityService", "SMSDeliveryConfirmation")
USERNAME, PASSWORD = "receiver", "receiver-listener-password"
RETRY_DELAYS = [1, 2, 4]
# Per device a "sent" callback and a delivery confirmation, and one Request Complete.
CALLBACKS = 2 * FLEET_SIZE + 1
# Kill once the receiver has recorded this many: well inside the flow.
KILL_AT = CALLBACKS // 4


class Receiver:
    """The receiver process on ``port``, recording into the ledger of ``ansible`` (its SQLite file, or its PostgreSQL
    schema through the THINGSPACE_LEDGER_* variables of its environment)."""

    def __init__(self, ansible, port, events, log):
        self.args = {"port": port, "check_port": False, "username": USERNAME, "password": PASSWORD}
        if isinstance(ansible.ledger, str):
            self.args["ledger_path"] = ansible.ledger
        self.env = ansible.env
        self.port = port
        self.events = events
        self.log = log
        self.process = None

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(RUNNER), json.dumps(self.args), "--events", str(self.events)], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._listening() or self.process.poll() is not None, "the receiver to listen")
        assert self.process.poll() is None, "the receiver stopped:\n%s" % self.output()

    def output(self):
        return self.log.read_text(errors="replace")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(20) == 0, self.output()


def register_receiver(port):
    """The tasks that register the receiver on ``port`` for both callback services of ACCOUNT."""
    return [task("vz_callback", "register_" + service, account_name=ACCOUNT, service_name=service,
                 callback_url="http://127.0.0.1:%d/%s/%s" % (port, ACCOUNT, service), callback_username=USERNAME,
                 callback_password=PASSWORD) for service in SERVICES]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def identity(attempt):
    """The event_id the source gives the callback of an emulator's attempt (the listener credentials are not part of it)."""
    body = {name: value for name, value in attempt["body"].items() if name not in ("username", "password")}
    return callback_event(attempt["service"], ACCOUNT, body)["event_id"]


def by_callback(attempts):
    """event_id → its attempts, in order."""
    found = {}
    for attempt in attempts:
        found.setdefault(identity(attempt), []).append(attempt)
    return found


def answered(attempt):
    return attempt["status"] is not None and 200 <= attempt["status"] < 300


def test_receiver_killed_while_callbacks_flow_then_restarted_records_each_callback_once(emulator, ansible, tmp_path, figures):
    ledger = Ledger(ansible.ledger)  # creates the store, as the receiver would

    def stored():
        """event_id → queued_at of each callback in the store."""
        return dict(ledger.store.rows("SELECT event_id, queued_at FROM callbacks"))

    emulator.config(callbackRetryDelays=RETRY_DELAYS)
    port = free_port()
    events = tmp_path / "events"
    receiver = Receiver(ansible, port, events, tmp_path / "receiver.log")
    receiver.start()
    try:
        register = register_receiver(port)
        send = task("vz_sms_send", "send", account_name=ACCOUNT, devices=devices(0, FLEET_SIZE), sms_message="FW=3.1", idempotency_key="wave-receiver")
        running = ansible.start([*register, send])
        wait_until(lambda: len(stored()) >= KILL_AT or running.process.poll() is not None, "%d callbacks to be recorded" % KILL_AT)
        receiver.kill()
        killed_at = datetime.datetime.now(datetime.timezone.utc)
        at_kill = stored()
        queued_before = events.read_text().split()
        # Down until a callback found the port closed.
        wait_until(lambda: any("ConnectionRefused" in (attempt["error"] or "") for attempt in emulator.callbacks()), "an attempt to be refused")
        restarted_at = datetime.datetime.now(datetime.timezone.utc)
        receiver.start()
        listening_at = datetime.datetime.now(datetime.timezone.utc)
        play = running.finish()
        assert not play.results["send"].get("failed") and play.results["send"]["devices_sent"] == FLEET_SIZE, play.describe()

        def all_answered():
            attempts = by_callback(emulator.callbacks())
            return attempts if len(attempts) == CALLBACKS and all(any(map(answered, tries)) for tries in attempts.values()) else None

        # The receiver answers 2xx only once a callback is recorded: the store is complete from here on.
        callbacks = wait_until(all_answered, "every callback to be answered 2xx, the last retries %d s apart" % RETRY_DELAYS[-1], timeout=20)
    finally:
        if receiver.process.poll() is None:
            receiver.stop()
    queued_after = events.read_text().split()[len(queued_before):]
    final = stored()

    def attempt_time(attempt):
        return datetime.datetime.fromisoformat(attempt["time"])

    answered_before = {event_id for event_id, tries in callbacks.items() if any(answered(t) and attempt_time(t) < restarted_at for t in tries)}
    retried = {event_id for event_id, tries in callbacks.items() if not answered(tries[0])}
    # Every callback the killed receiver answered 2xx was in the store when it died.
    assert sorted(answered_before - set(at_kill)) == []
    # The kill came while callbacks flowed: some were answered before it, some had to be sent again.
    assert answered_before and len(at_kill) < CALLBACKS and retried
    # None given up: each got its 2xx within the emulator's 4 attempts.
    assert max(len(tries) for tries in callbacks.values()) <= 4
    # Each distinct callback the emulator sent is recorded once, and nothing else.
    count = ledger.store.rows("SELECT count(*), count(DISTINCT event_id) FROM callbacks")[0]
    assert set(final) == set(callbacks) and list(count) == [CALLBACKS, CALLBACKS]
    # The restarted receiver queued each event once, none that was recorded as queued before the kill, and every
    # callback first recorded after the kill.
    assert len(queued_after) == len(set(queued_after))
    assert sorted(event_id for event_id in queued_after if at_kill.get(event_id) is not None) == []
    assert set(final) - set(at_kill) <= set(queued_after)
    # One delivery state per device of the send, Delivered, counted once.
    request_id = emulator.sms(ACCOUNT)[0]["requestId"]
    rows = ledger.store.rows("SELECT request_id, device, state FROM deliveries")
    assert len(rows) == FLEET_SIZE and {(row[0], row[2]) for row in rows} == {(request_id, "Delivered")}
    assert len({row[1] for row in rows}) == FLEET_SIZE
    report = delivery_report(ledger, request_ids=[request_id])
    assert report["states"]["Delivered"] == report["total"] == FLEET_SIZE and report["requests"][0]["devices_requested"] == FLEET_SIZE
    ledger.close()

    figures.update(
        callbacks=CALLBACKS, recorded_at_kill=len(at_kill), answered_2xx_before_kill=len(answered_before),
        answered_2xx_before_kill_not_recorded=len(answered_before - set(at_kill)), retried_after_a_failed_attempt=len(retried),
        attempts=sum(len(tries) for tries in callbacks.values()), max_attempts=max(len(tries) for tries in callbacks.values()),
        queued_before_kill=len(queued_before), queued_after_restart=len(queued_after), recorded_final=len(final), deliveries=len(rows),
        seconds_down=round((listening_at - killed_at).total_seconds(), 2),
    )
