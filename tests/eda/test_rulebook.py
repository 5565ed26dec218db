"""End to end with the real ansible-rulebook: the rulebook thingspace.m2m.sms_callbacks with its two sources
against the emulator.

A device SMS queued before any listener exists reaches the rulebook through thingspace.m2m.sms_history; then a
playbook registers the source's URL (vz_sms_start_callbacks, vz_callback) and sends the demo group east-wave an
SMS, waits for its delivery and reads it from the ledger (vz_sms_delivery_info: 10 Delivered, 2 Undelivered),
while the rulebook reports the callbacks; a device SMS injected through the emulator's admin API reaches it
through thingspace.m2m.callbacks. Both device SMS run the reply playbook thingspace.m2m.device_reply, which answers
each device once."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from with_rulebook import free_port, running_rulebook

from thingspace_emulator.testing import running_emulator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCOUNT = "0000123456-00001"
LISTENER = {"THINGSPACE_CALLBACK_USERNAME": "rulebook", "THINGSPACE_CALLBACK_PASSWORD": "listener-pw-e2e-5d1b"}
API_CREDENTIALS = {"THINGSPACE_CLIENT_ID": "emulator-client", "THINGSPACE_CLIENT_SECRET": "emulator-secret",
                   "THINGSPACE_USERNAME": "emulator-user", "THINGSPACE_PASSWORD": "emulator-pass"}
# Demo fleet: east-wave holds the odd devices 1..23; 11 and 23 are suspended.
EAST_WAVE = ["55501000%02d" % n for n in range(1, 24, 2)]
UNDELIVERED = {"5550100011", "5550100023"}


class Output:
    """The lines a process writes, read as they come."""

    def __init__(self, stream):
        self.lines = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def text(self):
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern, count=1, timeout=30.0):
        """The matches of ``pattern`` once there are ``count`` of them; fails with the output after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = re.findall(pattern, "".join(self.lines))
                if len(found) >= count:
                    return found
                if not self._changed.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    pytest.fail("waited %g s for %d x %r; ansible-rulebook wrote:\n%s" % (timeout, count, pattern, "".join(self.lines)[-6000:]))


def wait_for_port(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "ansible-rulebook exited with %s" % process.returncode
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("the source did not listen on port %d within %g s" % (port, timeout))


def test_the_rulebook_reports_a_wave_and_answers_devices_once(tmp_path):
    port = free_port()
    variables = {"callbacks_port": port, "callbacks_check_port": False, "thingspace_account": ACCOUNT, "history_interval": 0.5,
                 "reply_keyword": "YES"}
    with running_emulator("--allow-any-callback-port") as emulator:
        fleet = {device["deviceIds"][0]["id"]: device for device in emulator.devices(ACCOUNT)}
        iccid = {next(i["id"] for i in device["deviceIds"] if i["kind"] == "mdn"): first for first, device in fleet.items()}
        env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ["PATH"]), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
                   ANSIBLE_HOME=str(tmp_path / "ansible"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TMP=str(tmp_path / "tmp"),
                   THINGSPACE_API_URL=emulator.url, THINGSPACE_STATE_DIR=str(tmp_path / "state"), **LISTENER, **API_CREDENTIALS)

        # Sent while nothing listens: it waits in the account's queue.
        assert emulator.inject_mo(ACCOUNT, "mdn", "5550100003", "yes from the queue") == {"delivered": False, "queued": True}
        with running_rulebook(str(tmp_path), env, variables, subprocess.PIPE) as (rulebook, inventory):
            output = Output(rulebook.stdout)
            wait_for_port(port, rulebook)
            ledger = re.escape(str(tmp_path / "state" / "ledger.sqlite3"))
            output.wait_for(r"thingspace\.m2m\.callbacks listening on address 127\.0\.0\.1, port %d, path /<account>/<service>, TLS off, "
                            r"recording in the ledger %s\n" % (port, ledger))
            output.wait_for(r"thingspace\.m2m\.sms_history reading the SMS history of account '%s' from %s every 0\.5 s \(TLS off\), "
                            r"recording in the ledger %s\n" % (ACCOUNT, re.escape(emulator.url), ledger))
            output.wait_for(r'Device iccid %s sent \\"yes from the queue\\" \(from the history\); reply sent, request' % iccid["5550100003"])

            play = subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "tests" / "eda" / "listen_and_send.yml"), "-i", str(inventory),
                                   "-e", "listener_base=http://127.0.0.1:%d" % port], env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
            assert play.returncode == 0, play.stdout + play.stderr
            (summary,) = re.findall(r"Wave delivery: (\{.*\})", play.stdout)
            wanted = {"Delivered": 10, "Undelivered": 2, "Expired": 0, "Rejected": 0, "sent": 0, "accepted": 0, "unconfirmed": 0}
            assert json.loads(summary.replace('\\"', '"')) == wanted
            (wave,) = [sms for sms in emulator.sms(ACCOUNT) if sms["smsMessage"] == "APN=iot.example;MODE=2"]
            delivered = output.wait_for(r"Delivery: request %s, mdn (\d+): (\w+)" % wave["requestId"], count=12)
            output.wait_for(r"Request %s of account %s processed: 12 devices" % (wave["requestId"], ACCOUNT))

            # Sent while the source listens: ThingSpace calls the source, which answers 2xx once it is recorded.
            assert emulator.inject_mo(ACCOUNT, "mdn", "5550100005", "no thanks") == {"delivered": True, "queued": False}
            assert emulator.inject_mo(ACCOUNT, "mdn", "5550100001", "Yes, got it") == {"delivered": True, "queued": False}
            (reply,) = output.wait_for(r'Device iccid %s sent \\"Yes, got it\\" \(from the callback\); reply sent, request ([0-9a-f-]+)'
                                       % iccid["5550100001"])
            # The reply's own callbacks come back to the rulebook too.
            output.wait_for(r"Delivery: request %s, mdn 5550100001: Delivered" % reply)
            output.wait_for(r"Request %s of account %s processed: 1 devices" % (reply, ACCOUNT))
        attempts = [attempt for attempt in emulator.callbacks() if attempt["url"].startswith("http://127.0.0.1:%d/" % port)]
        replies = [[(device["kind"], device["id"]) for device in sms["devices"]] for sms in emulator.sms(ACCOUNT) if sms["smsMessage"] == "ACK"]

    assert sorted(delivered) == sorted((mdn, "Undelivered" if mdn in UNDELIVERED else "Delivered") for mdn in EAST_WAVE)
    # Every callback was answered 200 at its first attempt: the wave's 12 sent, 12 delivery and 1 request complete
    # callbacks, the two device SMS, and the 3 callbacks of the reply to device 1 (the reply to device 3 went out
    # before any listener was registered).
    assert len(attempts) == 12 + 12 + 1 + 2 + 3 and {(attempt["status"], attempt["attempt"]) for attempt in attempts} == {(200, 1)}
    assert sorted(replies) == sorted([[("iccid", iccid["5550100003"])], [("iccid", iccid["5550100001"])]])
    assert 'sent \\"no thanks\\"' not in output.text
    for secret in (LISTENER["THINGSPACE_CALLBACK_PASSWORD"], API_CREDENTIALS["THINGSPACE_CLIENT_SECRET"], API_CREDENTIALS["THINGSPACE_PASSWORD"]):
        assert secret not in output.text
