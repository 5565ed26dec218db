"""End to end with the real ansible-rulebook: the rulebook thingspace.m2m.sms_campaign advances a three-wave campaign
to its end on the delivery callbacks of its own sends, against the emulator.

A playbook registers the rulebook's listener and takes the campaign's first step (the canary); from then on only
the rulebook steps it (playbook thingspace.m2m.campaign_step, throttled with once_after), until it completes. Each
device of the group gets the SMS once, and the 12 delivery events make a handful of steps, not one each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from test_rulebook import API_CREDENTIALS, LISTENER, Output, wait_for_port
from with_rulebook import free_port, running_rulebook

from thingspace_emulator.testing import running_emulator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCOUNT = "0000123456-00001"
NAME = "eda-west-wave-campaign"
MESSAGE = "APN=iot.example;MODE=3"


# The demo fleet's west-wave, by first identifier (ICCID), as the emulator's SMS log names them.
WEST = sorted(device["deviceIds"][0]["id"] for device in yaml.safe_load((ROOT / "emulator" / "thingspace_emulator" / "fleets" / "demo.yml").read_text())
              ["accounts"][0]["devices"] if "west-wave" in device["groupNames"])


def first_step(listener_base):
    """A playbook: register the listener of both services (a delivery confirmation names the MDN; the SMS service's
    "sent" callback names every identifier, so it reaches the ICCID the campaign sent to), then the campaign's first
    step (it sends the canary and returns)."""
    credentials = {"callback_username": LISTENER["THINGSPACE_CALLBACK_USERNAME"], "callback_password": LISTENER["THINGSPACE_CALLBACK_PASSWORD"]}
    return [{"name": "Start the campaign", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "Register the SMS listener and start callbacks", "thingspace.m2m.vz_sms_start_callbacks": {
            "account_name": ACCOUNT, "callback_url": "%s/%s/EnhancedConnectivityService" % (listener_base, ACCOUNT), **credentials}},
        {"name": "Register the delivery confirmation listener", "thingspace.m2m.vz_callback": {
            "account_name": ACCOUNT, "service_name": "SMSDeliveryConfirmation", "callback_url": "%s/%s/SMSDeliveryConfirmation" % (listener_base, ACCOUNT),
            **credentials}},
        {"name": "Take the first step", "thingspace.m2m.vz_sms_campaign": {
            "name": NAME, "account_name": ACCOUNT, "group_name": "west-wave", "sms_message": MESSAGE, "waves": [2, 6, "100%"],
            "success_threshold": "50%", "wait": "none"}, "register": "step"},
        {"name": "Show it", "ansible.builtin.debug": {"msg": "First step: {{ step.campaign_state }}, {{ step.devices_sent }} sent"}},
    ]}]


def test_the_rulebook_advances_a_campaign_to_its_end_on_delivery_events(tmp_path):
    port = free_port()
    variables = {"callbacks_port": port, "callbacks_check_port": False, "campaign_name": NAME, "campaign_message": MESSAGE}
    with running_emulator("--allow-any-callback-port") as emulator:
        env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ["PATH"]), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
                   ANSIBLE_HOME=str(tmp_path / "ansible"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TMP=str(tmp_path / "tmp"),
                   THINGSPACE_API_URL=emulator.url, THINGSPACE_STATE_DIR=str(tmp_path / "state"), **LISTENER, **API_CREDENTIALS)
        (tmp_path / "start.yml").write_text(yaml.safe_dump(first_step("http://127.0.0.1:%d" % port)))
        with running_rulebook(str(tmp_path), env, variables, subprocess.PIPE, rulebook="thingspace.m2m.sms_campaign") as (rulebook, inventory):
            output = Output(rulebook.stdout)
            wait_for_port(port, rulebook)
            play = subprocess.run([str(BIN / "ansible-playbook"), str(tmp_path / "start.yml"), "-i", str(inventory)],
                                  env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
            assert play.returncode == 0, play.stdout + play.stderr
            assert "First step: running, 2 sent" in play.stdout or "First step: waiting, 2 sent" in play.stdout, play.stdout
            output.wait_for(r"Campaign %s: completed, wave 3 of 3; sent to 0 device\(s\) in this run; 12 of 12 devices sent" % NAME, timeout=60)
            # Steps still queued behind the one that completed would run now: count them once the rulebook is idle
            # (longer than the once_after window and a step).
            time.sleep(12)
            steps = re.findall(r"Campaign %s: (\w+), wave (\d) of 3; sent to (\d+) device" % NAME, output.text)
        sent = [device["id"] for sms in emulator.sms(ACCOUNT) if sms["smsMessage"] == MESSAGE for device in sms["devices"]]
        deliveries = [attempt for attempt in emulator.callbacks() if attempt["url"].endswith("/SMSDeliveryConfirmation")]

    # Every device of west-wave once: the canary by the first step, waves 2 and 3 by the rulebook's steps.
    assert sorted(sent) == WEST and len(WEST) == 12
    sent_per_step = [int(count) for _state, _wave, count in steps]
    assert sum(sent_per_step) == 10
    # 11 delivery events (device 12 of the demo fleet is unreachable: its SMS stays pending), a step only after each
    # once_after window: the one that sends wave 2, the one that sends wave 3, the one that completes (and at most two
    # more, when a wave's callbacks straddle a window).
    assert len(deliveries) == 11
    assert 3 <= len(steps) <= 5, steps
    assert steps[-1][0] == "completed" and [count for count in sent_per_step if count] == [4, 6], steps
