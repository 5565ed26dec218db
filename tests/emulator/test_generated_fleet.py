"""Generated fleets (devices made from patterns), device states, and a 100,000-device fleet that loads,
pages and takes a 10,000-device send fast."""

import os
import time
from collections import Counter

import pytest
import yaml
from test_devices import device_id
from vendor_client import DATA, VendorClient

from thingspace_emulator.fleet import load_fleet, luhn_digit
from thingspace_emulator.testing import running_emulator

LARGE = os.path.join(DATA, "generated_100k.yml")
LARGE_ACCOUNT = "0000999999-00001"
LIST = "/devices/actions/list"
# Bounds on the project's 2-core machine shared with other jobs (measured: 1.6 s, 3.5 s, 0.05 s).
START_BOUND, PAGING_BOUND, SEND_BOUND = 10.0, 20.0, 1.0


def write(tmp_path, account: dict) -> str:
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump({"accounts": [{"name": "0000123456-00001", **account}]}, sort_keys=False))
    return str(path)


def test_the_100k_fleet():
    fleet = load_fleet(LARGE)
    devices = fleet.accounts[LARGE_ACCOUNT].devices
    assert len(devices) == 100_000
    assert devices[0].ids == [("iccid", "89148000010000000018"), ("imei", "359999990000010"), ("mdn", "7000000001"), ("msisdn", "17000000001")]
    assert luhn_digit("8914800001000000001") == "8"
    states = Counter(d.state for d in devices)
    assert set(states) == {"active", "suspend", "deactive", "pre-active", "pending activation"}
    assert 0.96 < states["active"] / 100_000 < 0.98
    assert 0.005 < sum(not d.reachable for d in devices) / 100_000 < 0.015
    assert fleet.lookup("MDN", "7000100000") is devices[-1]


def test_a_generator_makes_the_same_fleet_every_time(tmp_path):
    generator = {
        "count": 2000,
        "seed": "s",
        "ids": {"mdn": "555{n:07d}"},
        "groupNames": {"a": 1, "b": 2},
        "state": {"active": 9, "suspend": 1},
        "unreachable": 0.1,
        "customFields": {"CustomField3": {"x": 1, "y": 1}},
    }
    account = {"groups": [{"name": "a"}, {"name": "b"}], "generate": [generator]}

    def properties(path: str) -> list:
        return [(d.ids, d.groups, d.state, d.reachable, d.custom) for d in load_fleet(path).accounts["0000123456-00001"].devices]

    first = properties(write(tmp_path, account))
    assert properties(write(tmp_path, account)) == first
    assert properties(write(tmp_path, {**account, "generate": [{**generator, "seed": "t"}]})) != first
    assert 0.6 < sum(groups == ["b"] for _ids, groups, *_rest in first) / 2000 < 0.73


def test_generated_devices_follow_listed_ones(tmp_path):
    fleet = load_fleet(
        write(
            tmp_path,
            {
                "devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}],
                "generate": [{"count": 3, "first": 7, "ids": {"mdn": "555020{n:04d}", "imsi": "31148{n:010d}"}}],
            },
        )
    )
    devices = fleet.accounts["0000123456-00001"].devices
    assert [d.ids[0][1] for d in devices] == ["5550100001", "5550200007", "5550200008", "5550200009"]
    assert [d.device_id for d in devices] == [1000001, 1000002, 1000003, 1000004]
    assert devices[1].state == "active" and devices[1].reachable and devices[1].groups == []


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ({"count": 2, "ids": {"mdn": "55501{n:05d}"}, "groupNames": {"nowhere": 1}}, "not declared"),
        ({"count": 2, "ids": {"mdn": "55501{n:05d}"}, "servicePlan": {"nowhere": 1}}, "not declared"),
        ({"count": 2, "ids": {"mdn": "5550{n:05d}"}}, "not a valid mdn"),
        ({"count": 2, "ids": {"mdn": "5550100001"}}, "does not use"),
        ({"count": 2, "ids": {"iccid": "{luhn}8914800000{n:09d}"}}, "must end"),
        ({"count": 2, "ids": {"pager": "55501{n:05d}"}}, "unknown device kind"),
        ({"count": 2, "ids": {"mdn": "55501{n:05d}"}, "state": {"sleeping": 1}}, "not one of"),
        ({"count": 2, "ids": {"mdn": "55501{n:05d}"}, "unreachable": "ten"}, "percentage"),
        ({"count": 2, "ids": {"mdn": "55501{n:05d}"}, "customFields": {"Region": {"x": 1}}}, "CustomField1"),
        ({"count": 0, "ids": {"mdn": "55501{n:05d}"}}, "greater than or equal to 1"),
    ],
)
def test_bad_generators_are_refused(tmp_path, generator, message):
    with pytest.raises(ValueError, match=message):
        load_fleet(write(tmp_path, {"generate": [generator]}))


def test_generated_identifiers_must_be_unique(tmp_path):
    path = write(tmp_path, {"devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100002"}]}], "generate": [{"count": 3, "ids": {"mdn": "555010{n:04d}"}}]})
    with pytest.raises(ValueError, match="listed twice"):
        load_fleet(path)


def test_listed_states_are_the_vendors(tmp_path):
    with pytest.raises(ValueError, match="not one of active, suspend, deactive, pre-active, pending activation"):
        load_fleet(write(tmp_path, {"devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "state": "asleep"}]}))
    fleet = load_fleet(write(tmp_path, {"devices": [{"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "state": "Suspended"}]}))
    assert fleet.accounts["0000123456-00001"].devices[0].state == "suspend"


def test_states_in_the_list_and_its_filter(make_emulator, tmp_path, listener):
    states = ["active", "suspend", "deactive", "pre-active", "pending activation"]
    devices = [{"deviceIds": [{"kind": "mdn", "id": f"555010000{n}"}], "state": state} for n, state in enumerate(states)]
    emu = make_emulator(write(tmp_path, {"devices": devices}))
    api = emu.client().authenticate()
    listed = api.call("POST", LIST, {"accountName": "0000123456-00001"}).json()["devices"]
    assert [d["carrierInformations"][0]["state"] for d in listed] == states
    for state in [*states, "Pending Activation", "SUSPENDED"]:
        [device] = api.call("POST", LIST, {"accountName": "0000123456-00001", "currentState": state}).json()["devices"]
        assert device["carrierInformations"][0]["state"] == state.lower().replace("suspended", "suspend")
    assert api.call("POST", LIST, {"accountName": "0000123456-00001", "currentState": "asleep"}).json()["devices"] == []
    # Only an active device gets the SMS.
    api.register("SMSDeliveryConfirmation", listener.url)
    api.send(accountName="0000123456-00001", deviceIds=[d["deviceIds"][0] for d in devices], smsMessage="hi")
    received = listener.wait_count(5)
    got = {item.body["deviceIds"][0]["id"]: item.body["deviceResponse"]["smsDeliveryResponse"]["confirmation"] for item in received}
    assert got == {"5550100000": "Delivered", **{f"555010000{n}": "Undelivered" for n in range(1, 5)}}


def test_a_100k_fleet_starts_pages_and_sends_fast():
    started = time.monotonic()
    with running_emulator("--fleet", LARGE, timeout=60) as emulator:
        api = VendorClient(emulator.url).authenticate()
        assert api.call("POST", LIST, {"accountName": LARGE_ACCOUNT}).status_code == 202
        start_seconds = time.monotonic() - started

        paging_started = time.monotonic()
        seen, cursor, states = 0, 0, Counter()
        while True:
            page = api.call("POST", LIST, {"accountName": LARGE_ACCOUNT, "largestDeviceIdSeen": cursor}).json()
            seen += len(page["devices"])
            states.update(d["carrierInformations"][0]["state"] for d in page["devices"])
            if not page["hasMoreData"]:
                break
            cursor = max(device_id(device) for device in page["devices"])
        paging_seconds = time.monotonic() - paging_started
        assert seen == 100_000
        suspended = api.call("POST", LIST, {"accountName": LARGE_ACCOUNT, "currentState": "suspend", "groupName": "wave-1"}).json()
        assert 0 < len(suspended["devices"]) < states["suspend"]

        emulator.behaviour(share="5%", outcome="none")
        emulator.behaviour(reply="OK", reply_delay=3600)
        ids = [{"kind": "mdn", "id": f"7{n:09d}"} for n in range(1, 10_001)]
        send_started = time.monotonic()
        response = api.send(accountName=LARGE_ACCOUNT, deviceIds=ids, smsMessage="hi")
        send_seconds = time.monotonic() - send_started
        assert response.status_code == 200
    assert start_seconds < START_BOUND, start_seconds
    assert paging_seconds < PAGING_BOUND, paging_seconds
    assert send_seconds < SEND_BOUND, send_seconds
