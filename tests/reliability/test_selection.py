"""What a send does with a selection of nothing and with devices the account does not have, against the emulator
through ansible-playbook: an empty selection fails before any SMS request (one device-list request is enough to
know when it is sent as a whole), and unknown_devices: skip sends the known devices of a refused batch once."""

from __future__ import annotations

import pytest
from harness import ACCOUNT, SMS_PATH, devices, ledger_states, task

LIST_PATH = "/api/m2m/v1/devices/actions/list"
# The fleet's devices have no custom field: this value matches none of them.
NOBODY = {"account_name": ACCOUNT, "group_name": "all", "custom_fields": {"CustomField1": "nobody"}, "sms_message": "PING"}


@pytest.mark.parametrize("tracking", ["device", "selection"])
def test_a_selection_that_matches_no_device_sends_no_sms(emulator, ansible, figures, tracking):
    send = dict(NOBODY, filter_tracking=tracking)
    play = ansible.run([task("vz_sms_send", "empty", **send), task("vz_sms_send", "allowed", allow_empty=True, **send)])
    empty, allowed = play.results["empty"], play.results["allowed"]

    what = "the selection group_name=all, CustomField1=nobody matches no device of account %s" % ACCOUNT
    assert empty["failed"] and empty["msg"].startswith("T%s; nothing was sent" % what[1:]) and "allow_empty: true" in empty["msg"]
    assert not allowed.get("failed") and not allowed["changed"] and allowed["msg"] == "Nothing to send: " + what
    assert allowed["warnings"] == ["T%s; nothing was sent (allow_empty: true)" % what[1:]]
    assert emulator.requests(method="POST", path=SMS_PATH) == [] and emulator.sms(ACCOUNT) == []
    # One device-list request per run: no device matches, so the first page is the last.
    assert len(emulator.requests(method="POST", path=LIST_PATH)) == 2
    assert ledger_states(ansible) == {}
    figures.update(post_sms=0, device_list_requests=2)


def test_a_selection_sent_as_a_whole_reads_one_page_of_the_device_list(emulator, ansible):
    emulator.config(devicePageSize=10)  # the fleet's 300 devices of group "all" take 30 pages
    send = {"account_name": ACCOUNT, "group_name": "all", "sms_message": "PING", "filter_tracking": "selection"}
    sent = ansible.run([task("vz_sms_send", "sent", **send)]).results["sent"]
    assert not sent.get("failed") and sent["changed"] and len(sent["request_ids"]) == 1
    assert len(emulator.requests(method="POST", path=LIST_PATH)) == 1 and len(emulator.requests(method="POST", path=SMS_PATH)) == 1


@pytest.mark.both_ledgers
def test_unknown_devices_skip_sends_the_known_devices_of_the_batch_once(emulator, ansible, figures):
    unknown = {"kind": "iccid", "id": "89148000009999999990"}
    wave = [*devices(0, 2), unknown, *devices(2, 3)]
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "APN=iot", "idempotency_key": "wave-unknown", "unknown_devices": "skip"}

    play = ansible.run([task("vz_sms_send", "skipped", **send), task("vz_sms_send", "rerun", **send)])
    skipped, rerun = play.results["skipped"], play.results["rerun"]

    assert not skipped.get("failed") and skipped["changed"] and skipped["devices_sent"] == 3 and skipped["devices_unknown"] == [unknown]
    [accepted] = emulator.sms(ACCOUNT)
    assert accepted["devices"] == devices(0, 3)
    assert [entry["status"] for entry in emulator.requests(method="POST", path=SMS_PATH)] == [400, 200]
    assert ledger_states(ansible) == {"sent": 3, "refused": 1}
    assert not rerun.get("failed") and not rerun["changed"] and rerun["devices_unknown"] == [unknown]
    assert len(emulator.requests(method="POST", path=SMS_PATH)) == 2
    figures.update(post_sms_statuses=[400, 200], devices_in_accepted_request=3, ledger={"sent": 3, "refused": 1})


def test_the_provisioning_role_passes_allow_empty_and_unknown_devices(emulator, ansible):
    role = {"account_name": ACCOUNT, "message": "APN=iot", "max_devices": 10}

    def provision(**variables):
        """The role's output of a play that runs it with these variables (a failed role fails the play)."""
        task = {"name": "provision", "ansible.builtin.include_role": {"name": "thingspace.m2m.sms_provision"},
                "vars": {"sms_provision_" + key: value for key, value in dict(role, **variables).items()}}
        return ansible.start([task]).finish().stdout

    unknown = {"kind": "iccid", "id": "89148000009999999990"}
    empty = {"idempotency_key": "role-empty", "group_name": "all", "custom_fields": {"CustomField1": "nobody"}}
    assert ("Provisioning SMS role-empty for account %s failed: The selection group_name=all, CustomField1=nobody matches no device"
            % ACCOUNT) in provision(**empty)
    assert "Nothing to send: the selection group_name=all, CustomField1=nobody matches no device of account %s" % ACCOUNT in provision(
        allow_empty=True, **empty)
    out = provision(idempotency_key="role-unknown", devices=[*devices(0, 2), unknown], unknown_devices="skip")
    assert "Not in account %s, 1 device(s) (refused by ThingSpace, not sent to" % ACCOUNT in out and "iccid 89148000009999999990" in out
    [accepted] = emulator.sms(ACCOUNT)
    assert accepted["devices"] == devices(0, 2)
