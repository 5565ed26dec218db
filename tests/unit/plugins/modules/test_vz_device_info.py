"""vz_device_info against the fake API (7 devices in pages of 3; odd ones in west, even ones in east): counts per state,
the facts of each device, an ID list with a device the account lacks, the ledger's last SMS, and read_devices, which
the inventory plugin reads the devices with."""

from __future__ import annotations

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.devices import read_devices
from ansible_collections.thingspace.m2m.plugins.modules import vz_device_info, vz_sms_send

from fake_api import ACCOUNT, API, CREDENTIALS

LIST = "/api/m2m/v1/devices/actions/list"
UNKNOWN = {"kind": "mdn", "id": "5559999999"}


def set_state(fake, state, *numbers):
    for n in numbers:
        fake.devices[n - 1]["carrierInformations"][0]["state"] = state


def test_count_only_counts_per_state_without_listing_the_devices(fake, run_module):
    set_state(fake, "suspend", 1)
    set_state(fake, "deactive", 3)
    for check_mode in (True, False):
        result, failed = run_module(vz_device_info.main, check_mode=check_mode, account_name=ACCOUNT, group_name="west", count_only=True)
        assert not failed and not result["changed"] and "devices" not in result
        assert result["count"] == 4 and result["states"] == {"active": 2, "suspend": 1, "deactive": 1} and result["inactive"] == 2
        assert result["devices_missing"] == [] and result["msg"] == "4 device(s): 2 active, 1 deactive, 1 suspend"


def test_every_page_and_each_device_with_its_facts(fake, run_module):
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT)
    assert not failed and result["count"] == 7 and len(result["devices"]) == 7 and fake.count("POST", LIST) == 3
    assert result["devices"][0] == {"device_ids": {"iccid": "89148000000800000001", "mdn": "5550000001"}, "account": ACCOUNT, "state": "active",
                                    "service_plan": "m2m-basic", "groups": ["west"], "custom_fields": {"CustomField1": "Wave-3"}, "ip_address": None}
    assert result["inactive"] == 0 and result["msg"] == "7 device(s): 7 active"


def test_a_device_without_carrier_information_counts_under_no_state(fake, run_module):
    fake.devices[0]["carrierInformations"] = []
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, group_name="west", count_only=True)
    assert not failed and result["states"] == {"None": 1, "active": 3} and result["inactive"] == 0


def test_count_only_reads_only_the_state_and_paging_cursor_of_each_device(fake, run_module):
    fake.devices[1]["deviceIds"] = [{"kind": "mdn"}]  # no id: a listing refuses the page, a count does not read the ids
    counted, failed = run_module(vz_device_info.main, account_name=ACCOUNT, count_only=True)
    assert not failed and counted["count"] == 7 and fake.count("POST", LIST) == 3
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT)
    assert failed and "Unexpected content in the device list answer" in result["msg"]
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, devices=[UNKNOWN], count_only=True)
    assert failed and "Unexpected content in the device list answer" in result["msg"]


def test_an_id_list_reads_only_those_devices_and_names_the_missing(fake, run_module):
    set_state(fake, "suspend", 2)
    listed = [{"kind": "MDN", "id": "5550000002"}, {"kind": "iccid", "id": "89148000000800000005"}, UNKNOWN]
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, devices=listed)
    assert not failed and result["count"] == 2 and result["devices_missing"] == [UNKNOWN]
    assert [device["device_ids"]["mdn"] for device in result["devices"]] == ["5550000002", "5550000005"]
    assert result["msg"] == "2 device(s): 1 active, 1 suspend; 1 listed device(s) not found"
    counted, failed = run_module(vz_device_info.main, account_name=ACCOUNT, devices=listed, count_only=True)
    assert not failed and counted["count"] == 2 and counted["inactive"] == 1 and counted["devices_missing"] == [UNKNOWN] and "devices" not in counted


def test_an_id_list_where_none_is_found(fake, run_module):
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, devices=[UNKNOWN])
    assert not failed and result["count"] == 0 and result["devices"] == [] and result["msg"] == "0 device(s); 1 listed device(s) not found"


def test_the_ledger_gives_the_last_sms_and_reply(fake, run_module, state_dir):
    run_module(vz_sms_send.main, account_name=ACCOUNT, devices=[{"kind": "mdn", "id": "5550000001"}], sms_message="hello", idempotency_key="wave-i")
    ledger = str(state_dir / "ledger.sqlite3")
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, group_name="west", ledger_path=ledger)
    assert not failed
    first, third = result["devices"][0], result["devices"][1]
    assert first["last_sms"]["key"] == "wave-i" and first["last_sms"]["state"] == "accepted" and first["last_reply"] is None
    assert third["last_sms"] is None and third["last_reply"] is None
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, group_name="west")
    assert not failed and "last_sms" not in result["devices"][0]


def test_a_ledger_that_does_not_exist_fails_naming_it(fake, run_module, tmp_path):
    missing = tmp_path / "missing.sqlite3"
    result, failed = run_module(vz_device_info.main, account_name=ACCOUNT, ledger_path=str(missing))
    assert failed and result["msg"].startswith("No ledger at %s (ledger_path / ledger_url)" % missing) and not missing.exists()
    assert fake.count("POST", LIST) == 0


def test_read_devices_reads_the_facts_of_every_page_the_filters_select(fake):
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
    found = read_devices(client, ACCOUNT, {"custom_fields": {"CustomField1": "WAVE-4"}})
    assert [facts["device_ids"]["mdn"] for facts in found] == ["5550000005", "5550000006", "5550000007"]
    assert read_devices(client, ACCOUNT)[-1]["device_ids"]["iccid"] == "89148000000800000007" and fake.count("POST", LIST) == 4
