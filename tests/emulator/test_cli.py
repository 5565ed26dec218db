"""The thingspace-emulator command: listening line, URL file, loopback rule, state across restarts."""

import json
import re
import signal
import subprocess
import sys
from urllib.request import urlopen

from vendor_client import ACCOUNT, VendorClient, error_code

from thingspace_emulator.testing import running_emulator

COMMAND = [sys.executable, "-m", "thingspace_emulator"]


def test_prints_the_url_and_stops_on_sigterm():
    process = subprocess.Popen([*COMMAND, "--port", "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"ThingSpace emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match.group(2)) > 0, line
        with urlopen(f"{match.group(1)}/_emulator/health", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.communicate()


def test_url_file_and_helper():
    with running_emulator("--quiet") as emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
        assert emu.health() == {"status": "ok"}
        assert len(emu.devices(ACCOUNT)) == 24


def test_non_loopback_host_refused():
    result = subprocess.run([*COMMAND, "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert result.stdout == ""


def test_callback_retry_delays():
    with running_emulator("--quiet", "--callback-retry-delays", "1,2.5,4") as emu:
        assert emu.call("GET", "config")["callbackRetryDelays"] == [1, 2.5, 4]
    for wrong in ("1,2", "1,2,-3", "1,2,x"):
        result = subprocess.run([*COMMAND, "--port", "0", "--callback-retry-delays", wrong], capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2 and "--callback-retry-delays: expected 3 comma-separated seconds" in result.stderr, result.stderr


def test_clock_speed():
    with running_emulator("--quiet", "--clock-speed", "3600") as emu:
        assert emu.call("GET", "config")["clockSpeed"] == 3600
    for wrong in ("0", "-2", "fast", "inf"):
        result = subprocess.run([*COMMAND, "--port", "0", "--clock-speed", wrong], capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2 and "--clock-speed: expected a number above 0" in result.stderr, result.stderr


def test_bad_fleet_refused(tmp_path):
    fleet = tmp_path / "fleet.yml"
    fleet.write_text("accounts: []\n")
    result = subprocess.run([*COMMAND, "--port", "0", "--fleet", str(fleet)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "cannot load fleet" in result.stderr


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "state.json"
    with running_emulator("--state", str(state), "--quiet") as emu:
        client = VendorClient(emu.url).authenticate()
        assert client.register("SMSDeliveryConfirmation", "http://127.0.0.1:9001/sdc", username="u", password="p").status_code == 200
        request_id = client.send(accountName=ACCOUNT, groupName="east-wave", smsMessage="persist me").json()["requestId"]
        emu.inject_mo(ACCOUNT, "mdn", "5550100002", "queued before restart")
        portal = emu.portal_listener(ACCOUNT, "EnhancedConnectivityService", "http://127.0.0.1:9005/portal")
        for _attempt in range(5):
            client.login("someone-else", "wrong")
    saved = json.loads(state.read_text())
    assert saved["version"] == 1
    with running_emulator("--state", str(state), "--quiet") as emu:
        client.base = emu.url
        registrations = client.call("GET", f"/callbacks/{ACCOUNT}").json()
        registered = {"accountName": ACCOUNT, "serviceName": "SMSDeliveryConfirmation", "url": "http://127.0.0.1:9001/sdc", "username": "u", "password": "p"}
        assert registrations == [registered]
        assert emu.portal_listeners() == [portal]
        [record] = emu.sms()
        assert (record["requestId"], record["deviceCount"], record["smsMessage"]) == (request_id, 12, "persist me")
        assert sum(device["smsReceived"] for device in emu.devices(ACCOUNT)) == 12
        assert [m["message"] for m in client.call("GET", f"/sms/{ACCOUNT}/history").json()["messages"]] == ["queued before restart"]
        assert error_code(client.login("someone-else", "whatever")) == "UnifiedWebService.REQUEST_FAILED.Login.UserLocked"
