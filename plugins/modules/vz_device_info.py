#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_device_info
short_description: The devices of a ThingSpace account, their state, plan, groups and last SMS and reply
version_added: 0.2.0
description:
  - Reads every page of the account's device list, filtered on the server by O(group_name), O(service_plan),
    O(custom_fields) and O(state), and reports each device (RV(devices)), how many there are (RV(count)), per state
    (RV(states)) and how many are not active (RV(inactive)); a device that is not V(active) (V(suspend), V(deactive),
    V(pre-active), V(pending activation)...) gets every SMS C(Undelivered).
  - With O(devices), reports only those devices (found by any of their identifiers) and lists in RV(devices_missing)
    those the selection does not hold.
  - With O(ledger_path) or O(ledger_url), each device also has its last SMS and reply from the ledger (read only; a
    ledger that does not exist fails the task, naming it). Without them no ledger is read.
  - Makes no change anywhere. It takes the options of the action group C(thingspace.m2m.thingspace).
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.account
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description: Reads as in normal mode.
    support: full
  diff_mode:
    description: No diff.
    support: none
options:
  devices:
    description: Only these devices, each C({kind, id}) as given to M(thingspace.m2m.vz_sms_send).
    type: list
    elements: dict
  group_name:
    description: Only the devices of this device group (matched exactly).
    type: str
  service_plan:
    description: Only the devices on this service plan (matched exactly).
    type: str
  custom_fields:
    description: C(CustomField1) to C(CustomField5) and the whole value each must have.
    type: dict
  state:
    description: Only the devices in this state, as ThingSpace names it (V(active), V(suspend), V(deactive)...).
    type: str
  count_only:
    description:
      - Return only RV(count), RV(states), RV(inactive) and RV(devices_missing), not RV(devices), for selections of
        tens of thousands of devices, whose list would be megabytes of result.
    type: bool
    default: false
  ledger_path:
    description:
      - SQLite ledger whose records give each device's RV(devices[].last_sms) and RV(devices[].last_reply). Without it
        (and without O(ledger_url)) no ledger is read; the default ledger in O(state_dir) is not.
    type: path
"""

EXAMPLES = r"""
- name: How many devices of the wave are suspended or deactivated
  thingspace.m2m.vz_device_info:
    account_name: "0000123456-00001"
    group_name: east-wave
    count_only: true
  register: wave

- name: Stop when a tenth of the wave would not get the SMS
  ansible.builtin.assert:
    that: wave.inactive * 10 < wave.count
    fail_msg: "{{ wave.inactive }} of {{ wave.count }} devices are not active: {{ wave.states }}"

- name: Each device with its last SMS and reply
  thingspace.m2m.vz_device_info:
    account_name: "0000123456-00001"
    devices:
      - {kind: mdn, id: "5550100001"}
    ledger_path: ~/.ansible/thingspace/ledger.sqlite3
  register: info
"""

RETURN = r"""
msg:
  description: How many devices, per state, and how many listed devices were not found, in one sentence.
  returned: success
  type: str
  sample: "24 device(s): 1 deactive, 21 active, 2 suspend"
count:
  description: How many devices the selection holds.
  returned: success
  type: int
  sample: 24
states:
  description: How many devices are in each state (the state as ThingSpace gives it; V(None) for a device without one).
  returned: success
  type: dict
  sample: {active: 21, suspend: 2, deactive: 1}
inactive:
  description: How many devices are in a state other than V(active); they get every SMS C(Undelivered).
  returned: success
  type: int
  sample: 3
devices_missing:
  description: The devices of O(devices) that the selection does not hold (not in the account, or filtered out).
  returned: success
  type: list
  elements: dict
  sample: [{kind: mdn, id: "5550109999"}]
devices:
  description: The devices, in the device list's order.
  returned: unless O(count_only)
  type: list
  elements: dict
  contains:
    device_ids:
      description: Identifier kind to identifier.
      type: dict
      sample: {iccid: "89148000000000000019", mdn: "5550100001"}
    account:
      description: The billing account.
      type: str
    state:
      description: The device's state.
      type: str
      sample: active
    service_plan:
      description: The service plan.
      type: str
    groups:
      description: The device groups.
      type: list
      elements: str
    custom_fields:
      description: C(CustomFieldN) to value.
      type: dict
    ip_address:
      description: The device's IP address, or null when ThingSpace gives none.
      type: str
    last_sms:
      description: The last send the ledger recorded for the device (C(key), C(time), C(state), the delivery state), or null.
      returned: with O(ledger_path) or O(ledger_url)
      type: dict
      sample: {key: wave-1, time: "2026-12-07T10:00:00.000+00:00", state: Delivered}
    last_reply:
      description: The device's last SMS to the account the ledger recorded (C(text), C(time)), or null.
      returned: with O(ledger_path) or O(ledger_url)
      type: dict
      sample: {text: DONE, time: "2026-12-07T10:01:00-05:00"}
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.devices import FILTERS, device_info, read_activity
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, ThingSpaceModule
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import normalize_devices


def report(module):
    p = module.params
    try:
        devices = None if p["devices"] is None else normalize_devices(p["devices"])
    except ValueError as exc:
        raise ThingSpaceError(str(exc))
    filters = {name: p[name] for name in FILTERS if p[name]}
    if not (p["ledger_path"] or p["ledger_url"]) or p["count_only"]:
        return device_info(module.client, p["account_name"], filters, devices, p["count_only"])
    return device_info(module.client, p["account_name"], filters, devices, activity=read_activity(module.ledger_location))


def main():
    module = ThingSpaceModule(dict(account_name=dict(type="str", required=True), devices=dict(type="list", elements="dict"),
                                   group_name=dict(type="str"), service_plan=dict(type="str"), custom_fields=dict(type="dict"),
                                   state=dict(type="str"), count_only=dict(type="bool", default=False), **LEDGER_ARGUMENT_SPEC),
                              supports_check_mode=True)
    module.run(report)


if __name__ == "__main__":
    main()
