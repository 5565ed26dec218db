"""The account's devices as Ansible sees them (module_utils/devices.py): inactive states, facts, host names, default
groups, the device list request of the filters, and the last SMS and reply each device has in the ledger (both stores)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import DELIVERY_SERVICE, SMS_SERVICE, callback_event, history_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.devices import (
    LedgerActivity,
    cache_entry,
    cached_hosts,
    default_groups,
    device_facts,
    device_list_request,
    host_name,
    host_vars,
    inventory_hosts,
    is_inactive,
    ledger_vars,
    nameless_warning,
    safe_group_name,
    send_entry,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.module_utils.models import Device, MoMessage

from callback_bodies import ACCOUNT, ICCID, MDN, REQUEST_ID, delivery, device_sms, sms_sent

SCOPE = "http://127.0.0.1:9"


def wire_device(ids, state="active", groups=("east-wave",), ip="192.0.2.1", custom=None, plan="m2m-4g-basic"):
    body = {"accountName": ACCOUNT, "deviceIds": [{"kind": kind, "id": ident} for kind, ident in ids], "groupNames": list(groups),
            "customFields": [{"key": k, "value": v} for k, v in (custom or {"CustomField1": "East"}).items()],
            "carrierInformations": [{"carrierName": "Verizon Wireless", "servicePlan": plan, "state": state}],
            "extendedAttributes": [{"key": "DeviceId", "value": "1"}]}
    if ip:
        body["ipAddress"] = ip
    return Device.model_validate(body)


@pytest.mark.parametrize(("state", "inactive"), [("active", False), ("Active ", False), ("suspend", True), ("deactive", True),
                                                 ("pre-active", True), ("pending activation", True), (None, False)])
def test_every_state_but_active_is_inactive(state, inactive):
    assert is_inactive(state) is inactive


def test_the_facts_of_a_device_as_the_vendor_lists_it():
    device = wire_device([("ICCID", " 89148000000000000019 "), ("meid", "a1000000000003"), ("iccid", "1")], custom={"CustomField2": "fw-1.1"})
    assert device_facts(device) == {
        "device_ids": {"iccid": "89148000000000000019", "meid": "A1000000000003"}, "account": ACCOUNT, "state": "active",
        "service_plan": "m2m-4g-basic", "groups": ["east-wave"], "custom_fields": {"CustomField2": "fw-1.1"}, "ip_address": "192.0.2.1"}


def test_a_device_without_carrier_information_has_no_state_nor_plan():
    facts = device_facts(Device.model_validate({"deviceIds": [{"kind": "mdn", "id": "5550100001"}]}))
    assert (facts["state"], facts["service_plan"], facts["ip_address"], facts["groups"]) == (None, None, None, [])
    assert default_groups(facts) == []


def test_the_host_is_named_by_the_first_kind_of_hostnames_the_device_has():
    facts = {"device_ids": {"mdn": "5550100001", "imei": "351234560000010", "iccid": ""}}
    assert host_name(facts) == "351234560000010"
    assert host_name(facts, ["mdn", "imei"]) == "5550100001"
    assert host_name(facts, ["esn"]) is None


def test_host_variables_are_prefixed_and_the_ip_address_only_where_given():
    facts = device_facts(wire_device([("mdn", "5550100001")], ip=None))
    found = host_vars(facts)
    assert sorted(found) == ["thingspace_account", "thingspace_custom_fields", "thingspace_device_ids", "thingspace_groups",
                             "thingspace_service_plan", "thingspace_state"]
    assert host_vars(device_facts(wire_device([("mdn", "5550100001")])))["thingspace_ip_address"] == "192.0.2.1"


def test_default_groups_are_sanitized_and_prefixed():
    facts = device_facts(wire_device([("mdn", "1")], state="Pending Activation", groups=("east-wave", "lab.2")))
    assert default_groups(facts) == ["group_east_wave", "group_lab_2", "state_pending_activation"]
    assert default_groups(facts, "ts_") == ["ts_group_east_wave", "ts_group_lab_2", "ts_state_pending_activation"]
    assert safe_group_name("a b-c.d/é") == "a_b_c_d__"


def test_devices_without_a_hostnames_kind_are_reported_not_dropped():
    devices = [device_facts(wire_device([("iccid", "8914800000000000001")])), device_facts(wire_device([("imsi", "311480000000001")]))]
    hosts, nameless = inventory_hosts(devices)
    assert [name for name, _vars, _groups in hosts] == ["8914800000000000001"]
    assert hosts[0][2] == ["group_east_wave", "state_active"]
    assert nameless == [{"imsi": "311480000000001"}]
    message = nameless_warning(nameless * 21, ["iccid", "mdn"])
    assert message.startswith("21 device(s) have no identifier of the kinds in hostnames (iccid, mdn)")
    assert message.count("311480000000001") == 20 and "and 1 more" in message


def test_a_send_entry_is_the_identifier_a_selection_resolves_to():
    assert send_entry({"mdn": "5550100001", "imei": "351234560000010", "iccid": "89148000000000000019"}) == {"kind": "iccid", "id": "89148000000000000019"}
    assert send_entry({"mdn": "5550100001", "msisdn": "15550100001"}) == {"kind": "mdn", "id": "5550100001"}
    assert send_entry({"eid": ""}) is None


def test_the_filters_become_the_device_list_request():
    request = device_list_request(ACCOUNT, {"group_name": "east-wave", "service_plan": "p", "custom_fields": {"CustomField1": 7}, "state": "suspend"})
    assert request.wire() == {"accountName": ACCOUNT, "groupName": "east-wave", "servicePlan": "p", "customFields": [{"key": "CustomField1", "value": "7"}],
                              "currentState": "suspend"}
    assert device_list_request(ACCOUNT).wire() == {"accountName": ACCOUNT}


@pytest.mark.parametrize(("filters", "message"), [
    ({"group": "x"}, "filters: group is not a filter; use group_name, service_plan, custom_fields, state"),
    ({"group": "x", "plan": "y"}, "filters: group, plan are not a filter"),
    ({"group_name": " east"}, "group_name: ' east' has leading or trailing whitespace"),
    ({"custom_fields": {"Field1": "x"}}, "custom_fields: 'Field1' is not a custom field name"),
])
def test_a_bad_filter_fails_before_any_request(filters, message):
    with pytest.raises(ThingSpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        device_list_request(ACCOUNT, filters)


def test_a_bad_account_name_fails_before_any_request():
    with pytest.raises(ThingSpaceError, match="account_name"):
        device_list_request(" 0000123456-00001", {})


def claim(where, key, targets, state="sent", request_id=REQUEST_ID):
    ledger = Ledger(where)
    claim_id, _claimed = ledger.claim(SCOPE, key, targets)
    if state is not None:
        ledger.settle(claim_id, state, request_id if state == "sent" else None)
    ledger.close()


def record(where, *events):
    recorder = StoreRecorder(where)
    recorder.record(list(events))
    recorder.close()


def activity(where):
    ledger = Ledger(where, read_only=True)
    try:
        return LedgerActivity(ledger)
    finally:
        ledger.close()


def sent_callback(request_id=REQUEST_ID):
    return callback_event(SMS_SERVICE, ACCOUNT, dict(sms_sent(), requestId=request_id, deviceIds=[{"kind": "Iccid", "id": ICCID}, {"kind": "Mdn", "id": MDN}]))


def test_the_last_sms_is_the_latest_send_of_any_identifier_with_its_delivery_state(where):
    ids = {"iccid": ICCID, "mdn": MDN}
    claim(where, "wave1", ["mdn:%s" % MDN])
    assert activity(where).last_sms(ids)["state"] == "accepted"
    record(where, sent_callback(), callback_event(DELIVERY_SERVICE, ACCOUNT, dict(delivery("Undelivered", MDN), requestId=REQUEST_ID)))
    first = activity(where).last_sms(ids)
    assert (first["key"], first["state"]) == ("wave1", "Undelivered")
    assert datetime.fromisoformat(first["time"])
    claim(where, "wave2", ["iccid:%s" % ICCID], state=None)
    assert activity(where).last_sms(ids) == dict(activity(where).last_sms(ids), key="wave2", state="unconfirmed")
    claim(where, "wave3", ["iccid:%s" % ICCID], state="refused")
    assert activity(where).last_sms({"iccid": ICCID})["state"] == "refused"
    assert activity(where).last_sms({"mdn": "5550109999"}) is None


def test_the_last_reply_is_the_latest_device_sms_naming_the_device(where):
    now = datetime.now(timezone.utc)
    record(where, callback_event(SMS_SERVICE, ACCOUNT, device_sms("FIRST"), received_at=now),
           callback_event(SMS_SERVICE, ACCOUNT, device_sms("LAST", timestamp="2026-12-01T09:31:00-05:00", request_id="r2"),
                          received_at=now + timedelta(seconds=5)),
           callback_event(SMS_SERVICE, ACCOUNT, device_sms("OLD", request_id="r3"), received_at=now - timedelta(seconds=5)))
    found = activity(where)
    assert found.last_reply({"mdn": MDN}) == {"text": "LAST", "time": "2026-12-01T09:31:00-05:00"}
    assert found.last_reply({"iccid": ICCID})["text"] == "LAST"
    assert found.last_reply({"mdn": "5550109999"}) is None
    assert ledger_vars(host_vars({"device_ids": {"mdn": MDN}, "ip_address": None}), found)["thingspace_last_reply"]["text"] == "LAST"


def test_a_reply_without_the_device_time_takes_the_time_it_was_received(where):
    message = MoMessage.model_validate({"deviceIds": [{"kind": "mdn", "id": MDN}], "message": "OK"})
    event = history_event(ACCOUNT, message, received_at=datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc))
    record(where, event)
    assert activity(where).last_reply({"mdn": MDN}) == {"text": "OK", "time": "2026-12-07T12:00:00.000+00:00"}


def test_the_nameless_warning_word_for_word():
    nameless = [{"mdn": "5550100001", "imsi": "311480000000001"}]
    assert nameless_warning(nameless, ["iccid"]) == (
        '1 device(s) have no identifier of the kinds in hostnames (iccid), so they are not in the inventory: {"imsi": "311480000000001", "mdn": '
        '"5550100001"}; add one of their kinds to hostnames')
    assert " more" not in nameless_warning(nameless * 20, ["iccid"])
    assert nameless_warning(nameless * 22, ["iccid"]).endswith('"mdn": "5550100001"} and 2 more; add one of their kinds to hostnames')


def test_a_bad_service_plan_fails_before_any_request_with_the_whole_message():
    with pytest.raises(ThingSpaceError, match="service_plan: 'p ' has leading or trailing whitespace"):
        device_list_request(ACCOUNT, {"service_plan": "p "})
    with pytest.raises(ThingSpaceError) as failure:
        device_list_request(ACCOUNT, {"plan": "p"})
    assert failure.value.message == "filters: plan is not a filter; use group_name, service_plan, custom_fields, state"


def test_inventory_hosts_use_the_hostnames_the_prefix_and_the_ledger(where):
    claim(where, "wave1", ["mdn:%s" % MDN])
    devices = [device_facts(wire_device([("iccid", ICCID), ("mdn", MDN)]))]
    hosts, nameless = inventory_hosts(devices, hostnames=["mdn"], group_prefix="ts_")
    [(name, variables, groups)] = hosts
    assert nameless == [] and name == MDN and groups == ["ts_group_east_wave", "ts_state_active"]
    assert "thingspace_last_sms" not in variables
    found = ledger_vars(variables, activity(where))
    assert found == {"thingspace_last_sms": activity(where).last_sms({"iccid": ICCID, "mdn": MDN}), "thingspace_last_reply": None}
    assert found["thingspace_last_sms"]["key"] == "wave1"


def test_a_cache_entry_gives_back_its_hosts_only_for_the_options_that_shaped_them():
    devices = [device_facts(wire_device([("iccid", ICCID), ("mdn", MDN)])), device_facts(wire_device([("imsi", "311480000000001")]))]
    hosts, nameless = inventory_hosts(devices, ["mdn"], "ts_")
    entry = json.loads(json.dumps(cache_entry(hosts, nameless, ("mdn",), "ts_")))  # what the jsonfile cache gives back
    assert cached_hosts(entry, ["mdn"], "ts_") == ([[MDN, hosts[0][1], hosts[0][2]]], nameless)
    assert cached_hosts(entry, ("mdn",), "ts_") is not None
    assert cached_hosts(entry, ["iccid"], "ts_") is None
    assert cached_hosts(entry, ["mdn", "iccid"], "ts_") is None
    assert cached_hosts(entry, ["mdn"], "") is None
    assert cached_hosts([{"device_ids": {"mdn": MDN}}], ["mdn"], "ts_") is None  # the device facts an earlier version kept
    assert cached_hosts(None, ["mdn"], "ts_") is None


def test_the_last_reply_of_a_device_is_the_latest_of_all_its_identifiers(where):
    now = datetime.now(timezone.utc)
    early = dict(device_sms("EARLY", request_id="r1"), deviceIds=[{"kind": "Mdn", "id": MDN}])
    late = dict(device_sms("LATE", request_id="r2"), deviceIds=[{"kind": "Iccid", "id": ICCID}])
    record(where, callback_event(SMS_SERVICE, ACCOUNT, late, received_at=now + timedelta(seconds=5)),
           callback_event(SMS_SERVICE, ACCOUNT, early, received_at=now))
    assert activity(where).last_reply({"mdn": MDN, "iccid": ICCID})["text"] == "LATE"
    assert activity(where).last_reply({"iccid": ICCID, "mdn": MDN})["text"] == "LATE"
