"""The fleet as Ansible inventory, through ansible-inventory and ansible-playbook against the emulator's demo fleet
(24 devices, 2 suspended, 1 deactivated): every page of the device list, the default groups, the host variables, the
cache, a send to an inventory group through the device_ids filter, and the ledger's last SMS and reply of each host."""

from __future__ import annotations

import json

import pytest
import yaml
from harness import BIN, CREDENTIALS, Ansible

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import history_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.models import MoMessage
from thingspace_emulator.testing import running_emulator

DEMO_ACCOUNT = "0000123456-00001"
SUSPENDED = {"89148000000000000118", "89148000000000000233"}
DEACTIVATED = {"89148000000000000241"}


@pytest.fixture(scope="module")
def demo():
    with running_emulator("--quiet") as running:
        yield running


@pytest.fixture
def ansible(tmp_path, demo):
    demo.reset()
    demo.config(devicePageSize=5)  # 24 devices: five pages
    runner = Ansible(tmp_path, demo.url)
    runner.env.update(THINGSPACE_API_URL=demo.url, THINGSPACE_STATE_DIR=str(runner.state_dir),
                      **{"THINGSPACE_" + name.upper(): value for name, value in CREDENTIALS.items()})
    return runner


def source(ansible, name="fleet.thingspace.yml", **options):
    (ansible.workdir / name).write_text(yaml.safe_dump(dict({"plugin": "thingspace.m2m.devices", "account_name": DEMO_ACCOUNT}, **options)),
                                        encoding="utf-8")
    return name


def inventory(ansible, name, *args):
    play = ansible._spawn([str(BIN / "ansible-inventory"), "-i", name, *args], None, -1, None, ()).finish()
    assert play.returncode == 0, play.describe()
    assert "[WARNING]" not in play.stderr, play.stderr
    for secret in ("client_secret", "password"):
        assert CREDENTIALS[secret] not in play.stdout + play.stderr
    return play


def listed(ansible, name):
    """ansible-inventory --list, its values plain: the plugin's values are unsafe (never templated), which the JSON
    marks as {"__ansible_unsafe": value}."""
    return json.loads(inventory(ansible, name, "--list").stdout, object_hook=lambda value: value.get("__ansible_unsafe", value))


def test_graph_and_list_show_every_device_in_its_groups(ansible, demo):
    name = source(ansible)
    graph = inventory(ansible, name, "--graph").stdout
    assert "@state_suspend:" in graph and "@state_deactive:" in graph and "@group_east_wave:" in graph
    found = listed(ansible, name)
    hostvars = found["_meta"]["hostvars"]
    assert len(hostvars) == 24
    assert set(found["state_suspend"]["hosts"]) == SUSPENDED and set(found["state_deactive"]["hosts"]) == DEACTIVATED
    assert len(found["state_active"]["hosts"]) == 21
    first = hostvars["89148000000000000019"]
    assert first["thingspace_state"] == "active" and first["thingspace_account"] == DEMO_ACCOUNT
    assert first["thingspace_device_ids"]["mdn"] == "5550100001" and first["thingspace_ip_address"] == "192.0.2.1"
    assert first["thingspace_custom_fields"] == {"CustomField1": "East", "CustomField2": "fw-1.1"}
    assert "thingspace_last_sms" not in first
    assert len(demo.requests(path="/api/m2m/v1/devices/actions/list")) == 10  # five pages, twice


def test_server_side_filters_constructed_groups_and_the_prefix(ansible, demo):
    name = source(ansible, filters={"state": "suspend"}, group_prefix="ts_", hostnames=["mdn"],
                  keyed_groups=[{"key": "thingspace_service_plan", "prefix": "plan"}], compose={"firmware": "thingspace_custom_fields.CustomField2"})
    found = listed(ansible, name)
    assert set(found["ts_state_suspend"]["hosts"]) == {"5550100011", "5550100023"}
    assert set(found["_meta"]["hostvars"]) == {"5550100011", "5550100023"}
    assert any(group.startswith("plan_") for group in found)
    assert all("firmware" in variables for variables in found["_meta"]["hostvars"].values())
    bodies = [request.get("body") or {} for request in demo.requests(path="/api/m2m/v1/devices/actions/list")]
    assert all(body.get("currentState") == "suspend" for body in bodies if body)


def reply(ledger, text, mdn="5550100001"):
    """A device's SMS recorded in the ledger as the history drain records it."""
    recorder = StoreRecorder(ledger)
    recorder.record([history_event(DEMO_ACCOUNT, MoMessage(device_ids=[{"kind": "mdn", "id": mdn}], message=text))])
    recorder.close()


def test_a_cache_hit_makes_no_request(ansible, demo):
    name = source(ansible, cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(ansible.workdir / "cache"))
    first = listed(ansible, name)
    requests = len(demo.requests(path="/api/m2m/v1/devices/actions/list"))
    assert listed(ansible, name) == first
    assert len(demo.requests(path="/api/m2m/v1/devices/actions/list")) == requests


def test_a_cache_hit_reads_the_ledger_again_and_other_hostnames_read_the_devices_again(ansible, demo):
    ledger = str(ansible.state_dir / "ledger.sqlite3")
    reply(ledger, "FIRST")
    options = dict(cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(ansible.workdir / "cache"), ledger_path=ledger)
    name = source(ansible, **options)
    assert listed(ansible, name)["_meta"]["hostvars"]["89148000000000000019"]["thingspace_last_reply"]["text"] == "FIRST"
    requests = len(demo.requests(path="/api/m2m/v1/devices/actions/list"))
    reply(ledger, "SECOND")
    hit = listed(ansible, name)
    assert hit["_meta"]["hostvars"]["89148000000000000019"]["thingspace_last_reply"]["text"] == "SECOND"
    assert len(hit["_meta"]["hostvars"]) == 24 and set(hit["state_suspend"]["hosts"]) == SUSPENDED
    assert len(demo.requests(path="/api/m2m/v1/devices/actions/list")) == requests
    assert not any("thingspace_last_reply" in path.read_text(encoding="utf-8") for path in (ansible.workdir / "cache").iterdir())
    renamed = listed(ansible, source(ansible, hostnames=["mdn"], group_prefix="ts_", **options))
    hostvars = renamed["_meta"]["hostvars"]
    assert len(hostvars) == 24 and all(name == variables["thingspace_device_ids"]["mdn"] for name, variables in hostvars.items())
    assert len(renamed["ts_state_deactive"]["hosts"]) == 1 and "state_active" not in renamed
    assert len(demo.requests(path="/api/m2m/v1/devices/actions/list")) == requests + 5


def test_a_device_without_a_hostnames_kind_is_named_in_a_warning(ansible):
    name = source(ansible, hostnames=["esn"])
    play = ansible._spawn([str(BIN / "ansible-inventory"), "-i", name, "--list"], None, -1, None, ()).finish()
    assert play.returncode == 0, play.describe()
    assert "device(s) have no identifier of the kinds in hostnames (esn)" in " ".join(play.stderr.split())


def test_a_send_to_an_inventory_group_and_the_last_sms_and_reply_of_each_host(ansible, demo):
    ledger = str(ansible.state_dir / "ledger.sqlite3")
    playbook = ansible.workdir / "send.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "send", "thingspace.m2m.vz_sms_send": {
            "account_name": DEMO_ACCOUNT, "sms_message": "REBOOT", "idempotency_key": "inventory-wave", "ledger_path": ledger,
            "devices": "{{ groups['state_active'] | thingspace.m2m.device_ids(hostvars) }}"}}]}]), encoding="utf-8")
    play = ansible._spawn([str(BIN / "ansible-playbook"), "-i", source(ansible), "-i", "localhost,", "-c", "local", str(playbook)],
                          None, -1, None, ()).finish()
    assert play.returncode == 0, play.describe()
    sent = {device["id"] for message in demo.sms(DEMO_ACCOUNT) for device in message["devices"]}
    assert len(sent) == 21 and not sent & (SUSPENDED | DEACTIVATED)
    # A device's SMS reaches the ledger through an event source (callbacks or the history drain); recorded here as the drain does.
    reply(ledger, "DONE")
    hostvars = listed(ansible, source(ansible, ledger_path=ledger))["_meta"]["hostvars"]
    last = hostvars["89148000000000000019"]["thingspace_last_sms"]
    assert last["key"] == "inventory-wave" and last["state"] in ("accepted", "sent", "Delivered")
    assert hostvars["89148000000000000019"]["thingspace_last_reply"]["text"] == "DONE"
    assert hostvars["89148000000000000118"]["thingspace_last_sms"] is None


def test_a_ledger_that_does_not_exist_fails_and_is_not_created(ansible):
    missing = ansible.workdir / "none" / "ledger.sqlite3"
    play = ansible._spawn([str(BIN / "ansible-inventory"), "-i", source(ansible, ledger_path=str(missing)), "--list"], None, -1, None, ()).finish()
    assert "No ledger at" in " ".join(play.stderr.split())
    assert not missing.exists()


def test_vz_device_info_counts_lists_and_finds_listed_devices_in_check_mode(ansible, demo):
    out = ansible.workdir / "info.json"
    base = {"account_name": DEMO_ACCOUNT}
    playbook = ansible.workdir / "info.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"thingspace.m2m.vz_device_info": dict(base, count_only=True), "register": "counted"},
        {"thingspace.m2m.vz_device_info": dict(base, state="suspend"), "register": "suspended"},
        {"thingspace.m2m.vz_device_info": dict(base, devices=[{"kind": "mdn", "id": "5550100001"}, {"kind": "mdn", "id": "5550109999"}]),
         "register": "listed"},
        {"ansible.builtin.copy": {"content": "{{ {'counted': counted, 'suspended': suspended, 'listed': listed} | to_json }}", "dest": str(out)},
         "check_mode": False},
    ]}]), encoding="utf-8")
    play = ansible._spawn([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "--check", str(playbook)], None, -1, None, ()).finish()
    assert play.returncode == 0, play.describe()
    found = json.loads(out.read_text(encoding="utf-8"))
    counted = found["counted"]
    assert (counted["count"], counted["states"], counted["inactive"]) == (24, {"active": 21, "suspend": 2, "deactive": 1}, 3)
    assert "devices" not in counted and not counted["changed"]
    assert [device["device_ids"]["iccid"] for device in found["suspended"]["devices"]] == sorted(SUSPENDED)
    listed = found["listed"]
    assert [device["device_ids"]["mdn"] for device in listed["devices"]] == ["5550100001"]
    assert listed["devices_missing"] == [{"kind": "mdn", "id": "5550109999"}] and "1 listed device(s) not found" in listed["msg"]
    assert demo.sms(DEMO_ACCOUNT) == []
