"""A real three-wave campaign that aborts, for the campaign report's tests: built step by step through
vz_sms_campaign against the fake API, with the delivery callbacks and the device replies recorded as the callbacks
source records them (deliveries.StoreRecorder), on a fake clock so that every time in the report is known.

40 devices, waves [4, 12, 100%], success replied (reply_pattern ^OK, reply_error_pattern ^ERR), success_threshold
75%, wave_timeout 600 s, max_per_minute 60 (batches of 10, 10 s apart), abort {any, 25%, min_devices 12}.
- t=0: wave 1 (4 devices) sent; each Delivered and replies OK.
- t=120: wave 2 (8 devices) sent; 6 Delivered and OK, 1 Undelivered, 1 Delivered and replies ERR (reply_error).
- t=300, 310, 320: wave 3 (28 devices) sent in batches of 10, 10, 8.
- wave 3: OK, then Undelivered at t=400 (3 of 14 finished failed), then Rejected at t=410: 4 of 15 failed = 26.7 %,
  the abort criterion is crossed at that device; the step at t=500 records the abort.
- after it, 2 more devices Delivered and OK (t=520, 530), 1 Expired (t=540); the rest time out at the wave's last
  send + wave_timeout, t=920.
"""

from __future__ import annotations

import time

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.campaign import ordered
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, iso_time, service_scope
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_campaign

from callback_bodies import LISTENER
from fake_api import ACCOUNT, API

T0 = 1796608800.0  # 2026-12-07T02:00:00Z
NAME = "apn-2026-12"
DEVICES = [{"kind": "mdn", "id": "555200%04d" % n} for n in range(40)]
OPTIONS = dict(name=NAME, account_name=ACCOUNT, devices=DEVICES, sms_message="APN=iot.example", waves=[4, 12, "100%"], success="replied",
               reply_pattern="^OK", reply_error_pattern="^ERR", success_threshold="75%", wave_timeout=600, max_per_minute=60,
               abort=[{"failure": "any", "threshold": "25%", "min_devices": 12}])
NEXT = dict(name=NAME, sms_message="APN=iot.example", fail_on_abort=False)


def ledger_args(where):
    """The module options of the ledger at ``where`` (the unit ``where`` fixture: a path or a Database)."""
    if isinstance(where, str):
        return {"ledger_path": where}
    return {"ledger_url": where.url, "ledger_password": where.password, "ledger_schema": where.schema}


class Story:
    """The campaign as it is built: ``waves`` (the mdns each wave sent, in the campaign's order), ``crossing`` (the mdn whose
    outcome crossed the abort criterion), ``now`` (the fake clock)."""

    def __init__(self, run_module, fake, where, monkeypatch):
        self.run_module, self.fake, self.where = run_module, fake, where
        self.args = ledger_args(where)
        self.now = T0
        self.waves, self.crossing, self.sent = [], None, []
        monkeypatch.setattr(time, "time", lambda: self.now)

    def at(self, offset):
        self.now = T0 + offset

    def step(self, offset, **options):
        """A step of the campaign at T0 + ``offset``; the mdns it sent, in the campaign's order (a batch's request lists
        them in the ledger's order)."""
        self.at(offset)
        before = len(self._sent())
        result, failed = self.run_module(vz_sms_campaign.main, **self.args, **options)
        assert not failed, result["msg"]
        return [target.split(":", 1)[1] for target in ordered(NAME, ["mdn:" + mdn for mdn in self._sent()[before:]])]

    def _sent(self):
        return [device["id"] for method, path, body in self.fake.calls if method == "POST" and path == "/api/m2m/v1/sms" for device in body["deviceIds"]]

    def deliver(self, offset, mdn, state="Delivered"):
        self.at(offset)
        ledger = Ledger(self.where, read_only=True)
        try:
            request_id = ledger.sends(service_scope(API), NAME)["mdn:" + mdn][1]
        finally:
            ledger.close()
        self._record(DELIVERY_SERVICE, dict(LISTENER, requestId=request_id, deviceIds=[{"kind": "Mdn", "id": mdn}],
                                            deviceResponse={"smsDeliveryResponse": {"confirmation": state}}))

    def reply(self, offset, mdn, text):
        self.at(offset)
        self._record(SMS_SERVICE, dict(LISTENER, requestId="mo-%s-%d" % (mdn, offset), deviceIds=[{"kind": "Mdn", "id": mdn}],
                                       deviceResponse={"smsResponse": {"message": text, "timestamp": iso_time(self.now)}}))

    def _record(self, service, body):
        recorder = StoreRecorder(self.where)
        try:
            recorder.record([callback_event(service, ACCOUNT, body)])
        finally:
            recorder.close()

    def ok(self, offset, mdn):
        """Delivered at ``offset``, replied OK 10 s later."""
        self.deliver(offset, mdn)
        self.reply(offset + 10, mdn, "OK 7.1")


def three_wave_campaign(run_module, fake, where, monkeypatch):
    """Build the campaign of this module's docstring; the Story, its clock at T0 + 1000 (after every event)."""
    story = Story(run_module, fake, where, monkeypatch)
    story.waves.append(story.step(0, **OPTIONS))
    for index, mdn in enumerate(story.waves[0]):
        story.ok(20 + 10 * index, mdn)
    story.waves.append(story.step(120, **NEXT))
    second = story.waves[1]
    for index, mdn in enumerate(second[:6]):
        story.ok(140 + 5 * index, mdn)
    story.deliver(150, second[6], "Undelivered")
    story.deliver(160, second[7])
    story.reply(210, second[7], "ERR 5: no APN")
    third = story.step(300, **NEXT) + story.step(310, **NEXT) + story.step(320, **NEXT)
    story.waves.append(third)
    story.ok(350, third[0])
    story.deliver(400, third[1], "Undelivered")
    story.deliver(410, third[2], "Rejected")
    story.crossing = third[2]
    assert story.step(500, **NEXT) == []  # aborted: nothing more is sent
    story.ok(520, third[3])
    story.ok(530, third[4])
    story.deliver(540, third[5], "Expired")
    story.at(1000)
    return story
