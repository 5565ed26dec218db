# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: device_ids
short_description: The devices list of vz_sms_send for inventory hosts of thingspace.m2m.devices
version_added: 0.2.0
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
description:
  - Turns host names of the C(thingspace.m2m.devices) inventory into the O(thingspace.m2m.vz_sms_send#module:devices)
    list, one C({kind, id}) per host, by the identifier a send to a selection resolves the device to (its ICCID first),
    so a send to an inventory group and a send to the same devices by filters record the same ledger targets.
  - A host without C(thingspace_device_ids) (not from the inventory plugin), or without an identifier that can be sent
    to, fails the task, naming the host.
options:
  _input:
    description: Host names, for example C(groups['state_active']).
    type: list
    elements: str
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Send to the active devices of the inventory
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    message: reboot
    devices: "{{ groups['state_active'] | thingspace.m2m.device_ids(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One C({kind, id}) per host, in the order of the input.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.thingspace.m2m.plugins.module_utils.devices import HOSTVAR_PREFIX, send_entry

DEVICE_IDS = HOSTVAR_PREFIX + "device_ids"


def device_ids(hosts, hostvars):
    """``[{kind, id}]`` of inventory ``hosts``."""
    devices = []
    for host in hosts:
        ids = hostvars.get(host, {}).get(DEVICE_IDS)
        entry = send_entry(ids) if ids else None
        if entry is None:
            raise AnsibleFilterError("thingspace.m2m.device_ids: host %r has no %s that can be sent to (is it a host of the "
                                     "thingspace.m2m.devices inventory?)" % (host, DEVICE_IDS))
        devices.append(entry)
    return devices


class FilterModule:
    def filters(self):
        return {"device_ids": device_ids}
