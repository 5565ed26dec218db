"""Device behaviours (outcome and reply, per device or per share of the fleet) and the clock speed-up."""

import time
from datetime import datetime

import pytest
import yaml
from vendor_client import ACCOUNT

from thingspace_emulator.behaviours import in_share
from thingspace_emulator.fleet import load_fleet

ECS, SDC = "EnhancedConnectivityService", "SMSDeliveryConfirmation"
ALL = [f"555010{n:04d}" for n in range(1, 25)]


def mdn(n: int) -> dict:
    return {"kind": "mdn", "id": f"555010{n:04d}"}


def confirmations(listener, count: int, timeout: float = 10.0) -> dict:
    """{mdn: confirmation} once count SMSDeliveryConfirmation bodies arrived."""
    received = listener.wait_for(lambda items: len([i for i in items if i.path == "/sdc"]) >= count, timeout)
    return {i.body["deviceIds"][0]["id"]: i.body["deviceResponse"]["smsDeliveryResponse"]["confirmation"] for i in received if i.path == "/sdc"}


def replies(listener, count: int, timeout: float = 10.0) -> list:
    """(mdn, message, timestamp) of the mobile-originated SMS the ECS listener received."""
    received = listener.wait_for(lambda items: len([i for i in items if "smsResponse" in str(i.body)]) >= count, timeout)
    out = []
    for item in received:
        if isinstance(item.body, dict) and "smsResponse" in item.body.get("deviceResponse", {}):
            ids = {d["kind"]: d["id"] for d in item.body["deviceIds"]}
            response = item.body["deviceResponse"]["smsResponse"]
            out.append((ids["Mdn"], response["message"], response["timestamp"]))
    return out


@pytest.fixture
def registered(api, listener):
    api.register(ECS, f"{listener.url}/ecs")
    api.register(SDC, f"{listener.url}/sdc")
    return api


@pytest.mark.parametrize(("outcome", "confirmation"), [("delivered", "Delivered"), ("undelivered", "Undelivered"), ("rejected", "Rejected")])
def test_device_outcome(emu, registered, listener, outcome, confirmation):
    emu.admin.behaviour(device=("mdn", "5550100002"), outcome=outcome)
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(1), mdn(2)], smsMessage="hi")
    assert confirmations(listener, 2) == {"5550100001": "Delivered", "5550100002": confirmation}


def test_rule_for_a_suspended_device_overrides_its_state(emu, registered, listener):
    # Named by its ICCID, sent to by its MDN.
    emu.admin.behaviour(device=("iccid", "89148000000000000118"), outcome="delivered")
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(11)], smsMessage="hi")
    assert confirmations(listener, 1) == {"5550100011": "Delivered"}


def test_expire_after_the_sped_up_expiry(emu, registered, listener):
    # 120 hours at 432,000 emulated seconds per real second: one real second.
    emu.admin.config(clockSpeed=432000)
    emu.admin.behaviour(device=("mdn", "5550100003"), outcome="expired")
    started = time.monotonic()
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(3), mdn(4)], smsMessage="hi")
    assert confirmations(listener, 1) == {"5550100004": "Delivered"}
    assert next(d["pending"] for d in emu.admin.devices(ACCOUNT) if mdn(3) in d["deviceIds"]) == 1
    assert confirmations(listener, 2, timeout=5) == {"5550100004": "Delivered", "5550100003": "Expired"}
    assert 0.8 < time.monotonic() - started < 4


def test_none_sends_no_confirmation(emu, registered, listener):
    emu.admin.behaviour(share="100%", outcome="none")
    emu.admin.behaviour(device=("mdn", "5550100005"), outcome="delivered")
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(4), mdn(5), mdn(6)], smsMessage="hi")
    assert confirmations(listener, 1) == {"5550100005": "Delivered"}
    time.sleep(0.3)
    assert confirmations(listener, 1) == {"5550100005": "Delivered"}
    # The per-device EnhancedConnectivityService callbacks still come: the network took the message.
    assert len([i for i in listener.received if i.path == "/ecs"]) == 4


def test_share_is_stable_and_nested(emu):
    keys = [("iccid", f"89148000{n:011d}") for n in range(20000)]
    five = {key for key in keys if in_share("", key, 0.05)}
    ten = {key for key in keys if in_share("", key, 0.10)}
    assert five < ten
    assert 0.04 < len(five) / len(keys) < 0.06 and 0.09 < len(ten) / len(keys) < 0.11
    assert {key for key in keys if in_share("", key, 0.05)} == five
    assert {key for key in keys if in_share("other", key, 0.05)} != five


def test_share_picks_the_devices_the_hash_picks(emu, registered, listener):
    emu.admin.behaviour(share="50%", seed="s1", outcome="undelivered")
    registered.send(accountName=ACCOUNT, groupName="east-wave", smsMessage="hi")
    east = list(range(1, 25, 2))
    got = confirmations(listener, 12)
    devices = {d["deviceIds"][2]["id"]: d for d in emu.admin.devices(ACCOUNT)}
    for n in east:
        key = (devices[f"555010{n:04d}"]["deviceIds"][0]["kind"], devices[f"555010{n:04d}"]["deviceIds"][0]["id"])
        state_outcome = {11: "Undelivered", 23: "Undelivered"}.get(n, "Delivered")
        assert got[f"555010{n:04d}"] == ("Undelivered" if in_share("s1", key, 0.5) else state_outcome)


def test_every_device_replies_after_the_emulated_delay(emu, registered, listener):
    # 30 emulated seconds at 60x: half a real second after delivery.
    emu.admin.config(clockSpeed=60)
    emu.admin.behaviour(reply="OK", reply_delay=30)
    emu.admin.behaviour(device=("mdn", "5550100002"), reply="ERR 42")
    sent_at = datetime.now().astimezone()
    started = time.monotonic()
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(1), mdn(2), mdn(11)], smsMessage="status?")
    got = replies(listener, 2)
    assert time.monotonic() - started >= 0.5
    assert sorted((m, text) for m, text, _ts in got) == [("5550100001", "OK"), ("5550100002", "ERR 42")]
    for _m, _text, stamp in got:
        # The real clock, whole seconds, and later than the send.
        assert datetime.fromisoformat(stamp) > sent_at
    time.sleep(0.3)
    assert len(replies(listener, 2)) == 2  # suspended device 11 never got the SMS: no reply


def test_reply_without_confirmation(emu, registered, listener):
    emu.admin.behaviour(device=("mdn", "5550100007"), outcome="none", reply="late but here")
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(7)], smsMessage="hi")
    [(m, text, _stamp)] = replies(listener, 1)
    assert (m, text) == ("5550100007", "late but here")
    assert not [i for i in listener.received if i.path == "/sdc"]


def test_reply_is_queued_without_a_listener(emu, api):
    emu.admin.behaviour(device=("mdn", "5550100001"), reply="queued reply")
    sent_at = datetime.now().astimezone()
    api.send(accountName=ACCOUNT, deviceIds=[mdn(1)], smsMessage="hi")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = api.call("GET", f"/sms/{ACCOUNT}/history").json()["messages"]
        if messages:
            break
        time.sleep(0.05)
    [message] = messages
    assert message["message"] == "queued reply"
    assert {"kind": "mdn", "id": "5550100001"} in message["deviceIds"]
    assert datetime.fromisoformat(message["timestamp"]) > sent_at


def test_behaviours_listed_cleared_and_reset(emu):
    emu.admin.behaviour(share=0.1, outcome="none")
    emu.admin.call("POST", "behaviours", [{"device": {"kind": "MDN", "id": "5550100001"}, "reply": "OK"}])
    rules = emu.admin.behaviours()
    assert [(r["share"], r["outcome"], r["reply"]) for r in rules] == [(0.1, "none", None), (None, None, "OK")]
    assert rules[1]["device"] == {"kind": "mdn", "id": "5550100001"}
    emu.admin.clear_behaviours()
    assert emu.admin.behaviours() == []
    emu.admin.behaviour(outcome="rejected")
    emu.admin.reset()
    assert emu.admin.behaviours() == []


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"share": "10"},
        {"share": "150%"},
        {"share": 2},
        {"outcome": "lost"},
        {"outcome": "none", "replyDelay": -1},
        {"device": {"kind": "mdn", "id": "5550100001"}, "share": "1%", "outcome": "none"},
        {"outcome": "none", "colour": "red"},
    ],
)
def test_bad_rules_are_refused(emu, rule):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        emu.admin.call("POST", "behaviours", rule)


def test_rule_for_an_unknown_device_is_refused(emu):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        emu.admin.behaviour(device=("mdn", "5559999999"), outcome="none")


def test_fleet_file_behaviours(make_emulator, tmp_path, listener):
    fleet = {
        "accounts": [
            {
                "name": ACCOUNT,
                "devices": [{"deviceIds": [{"kind": "mdn", "id": f"55501000{n:02d}"}]} for n in range(1, 5)],
            }
        ],
        "behaviours": [
            {"share": "100%", "reply": "OK", "replyDelay": 0},
            {"device": {"kind": "mdn", "id": "5550100002"}, "outcome": "rejected"},
            {"device": {"kind": "mdn", "id": "5550100003"}, "reply": "ERR 42"},
        ],
    }
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump(fleet))
    emu = make_emulator(str(path))
    api = emu.client().authenticate()
    api.register(ECS, f"{listener.url}/ecs")
    api.register(SDC, f"{listener.url}/sdc")
    api.send(accountName=ACCOUNT, deviceIds=[mdn(n) for n in range(1, 5)], smsMessage="hi")
    assert confirmations(listener, 4) == {"5550100001": "Delivered", "5550100002": "Rejected", "5550100003": "Delivered", "5550100004": "Delivered"}
    got = sorted((m, text) for m, text, _ts in replies(listener, 3))
    assert got == [("5550100001", "OK"), ("5550100003", "ERR 42"), ("5550100004", "OK")]
    emu.admin.behaviour(outcome="none")
    emu.admin.reset()
    assert len(emu.admin.behaviours()) == 3


def test_fleet_file_refuses_a_behaviour_for_an_unknown_device(tmp_path):
    path = tmp_path / "fleet.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "accounts": [{"name": ACCOUNT, "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}]}],
                "behaviours": [{"device": {"kind": "mdn", "id": "5550100002"}, "outcome": "none"}],
            }
        )
    )
    with pytest.raises(ValueError, match="not in the fleet"):
        load_fleet(str(path))


def test_clock_speed_scales_the_delivery_delay(emu, registered, listener):
    emu.admin.config(deliveryDelay=60, clockSpeed=120)
    started = time.monotonic()
    registered.send(accountName=ACCOUNT, deviceIds=[mdn(1)], smsMessage="hi")
    assert confirmations(listener, 1) == {"5550100001": "Delivered"}
    assert 0.4 < time.monotonic() - started < 3


def test_clock_speed_leaves_token_lifetimes_alone(make_emulator):
    emu = make_emulator(access_token_ttl=2, clock_speed=3600)
    api = emu.client().authenticate()
    assert api.call("POST", "/devices/actions/list", {"accountName": ACCOUNT}).status_code == 200
    assert api.token().json()["expires_in"] == 2
