#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_delivery_info
short_description: Report which devices got an SMS, from the delivery callbacks recorded in the ledger
version_added: 0.2.0
description:
  - Reads the delivery state of each device of a send from the ledger, where the event source
    C(thingspace.m2m.callbacks) records ThingSpace's callbacks, and counts the devices per state.
  - The send is named by its O(idempotency_key) (the devices and selections the ledger recorded under it, with their
    request ids), by O(request_ids), or both.
  - States are V(Delivered), V(Undelivered), V(Expired) (not delivered within 120 hours), V(Rejected) (the device had
    100 messages waiting), V(sent) (the network sent it to the device, no confirmation yet; from an
    C(EnhancedConnectivityService) callback), V(accepted) (ThingSpace took the request, no callback named the device
    yet) and V(unconfirmed) (the ledger does not know the device was sent to; see O(thingspace.m2m.vz_sms_send#module:resend_unconfirmed)).
    A state only moves forward; a late or repeated callback never moves it back.
  - Delivery confirmations name a device by its MDN. A device sent to by another identifier (an ICCID, say) is matched
    through the identifiers of its C(EnhancedConnectivityService) callback, so register both services.
  - Makes no ThingSpace request and takes no ThingSpace credentials; it is not in the action group
    C(thingspace.m2m.thingspace). Never writes the ledger.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.ledger
attributes:
  check_mode:
    description: Reads as in normal mode.
    support: full
  diff_mode:
    description: No diff.
    support: none
options:
  idempotency_key:
    description:
      - The key of the send, as M(thingspace.m2m.vz_sms_send) returned it in RV(thingspace.m2m.vz_sms_send#module:idempotency_key).
    type: str
  request_ids:
    description:
      - Request ids of sends (M(thingspace.m2m.vz_sms_send)'s RV(thingspace.m2m.vz_sms_send#module:request_ids)); every
        device their callbacks named is reported.
    type: list
    elements: str
  devices:
    description:
      - Report only these devices of the O(idempotency_key), each C({kind, id}) as given to M(thingspace.m2m.vz_sms_send).
    type: list
    elements: dict
  api_url:
    description:
      - The ThingSpace base URL the send used; the ledger keeps the keys of each service apart.
      - If not set, the environment variable E(THINGSPACE_API_URL) is used.
    type: str
    default: https://thingspace.verizon.com
  state_dir:
    description:
      - The directory of the ledger file when neither O(ledger_path) nor O(ledger_url) is set.
      - If not set, the environment variable E(THINGSPACE_STATE_DIR) is used, then C(~/.ansible/thingspace).
    type: path
    default: ~/.ansible/thingspace
notes:
  - The callbacks come to the event source C(thingspace.m2m.callbacks) (see the callbacks guide); it and the playbooks
    must use the same ledger (O(ledger_path) or O(ledger_url)).
seealso:
  - module: thingspace.m2m.vz_sms_send
  - module: thingspace.m2m.vz_callback
"""

EXAMPLES = r"""
- name: Delivery of a wave
  thingspace.m2m.vz_sms_delivery_info:
    api_url: "{{ thingspace_api_url }}"
    idempotency_key: wave3-provisioning-v1
  register: wave3

- name: Show the devices that did not get it
  ansible.builtin.debug:
    msg: "{{ wave3.devices.Undelivered + wave3.devices.Expired + wave3.devices.Rejected }}"

- name: Delivery of the requests of one send, from a PostgreSQL ledger
  thingspace.m2m.vz_sms_delivery_info:
    request_ids: "{{ sent.request_ids }}"
    ledger_url: "postgresql://thingspace_ledger@db.example.com:5432/ops?sslmode=verify-full"
    ledger_password: "{{ vault_ledger_password }}"
"""

RETURN = r"""
msg:
  description: The devices reported and how many are in each state, in one sentence.
  returned: success
  type: str
  sample: "12 device(s): 10 Delivered, 2 Undelivered"
states:
  description: How many devices are in each state.
  returned: success
  type: dict
  sample: {Delivered: 10, Undelivered: 2, Expired: 0, Rejected: 0, sent: 0, accepted: 0, unconfirmed: 0}
devices:
  description:
    - The devices in each state, each C({kind, id}) as the ledger records it (for O(request_ids) and
      selections, the identifier the callbacks gave, the MDN first).
    - A selection send (C(filter_tracking=selection)) of O(idempotency_key) that is unconfirmed is listed with the kind C(selection) and the key as its id.
  returned: success
  type: dict
  sample: {Delivered: [{kind: iccid, id: "89148000000800000001"}], Undelivered: [], Expired: [], Rejected: [], sent: [], accepted: [], unconfirmed: []}
total:
  description: Devices reported.
  returned: success
  type: int
  sample: 12
total_known:
  description:
    - False while a request sent to a whole selection (O(request_ids), or a send with C(filter_tracking=selection)) has not had
      its C(Request Complete) callback, so more of its devices may still be reported; true otherwise.
  returned: success
  type: bool
  sample: true
requests:
  description:
    - The request ids read, with the number of devices the request's C(Request Complete) callback counted (null before it came).
  returned: success
  type: list
  elements: dict
  sample: [{request_id: d1f08526-5443-4054-9a29-4456490ea9f8, devices_requested: 12}]
devices_unmatched:
  description:
    - Devices the callbacks of the key's requests named that match none of its devices; more than 0 when
      C(EnhancedConnectivityService) callbacks, which list each identifier of a device, are not received.
  returned: success
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import REPORT_STATES, delivery_report
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC, ledger_location, run_ledger_module
from ansible_collections.thingspace.m2m.plugins.module_utils.send import target_of
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import normalize_devices


def report(module):
    params = module.params
    targets = None
    if params["devices"] is not None:
        try:
            targets = [target_of(device) for device in normalize_devices(params["devices"])]
        except ValueError as exc:
            raise ThingSpaceError(str(exc))
    ledger = Ledger(ledger_location(params), read_only=True)
    try:
        found = delivery_report(ledger, service_scope(params["api_url"]), params["idempotency_key"], params["request_ids"] or (), targets)
    finally:
        ledger.close()
    states = found["states"]
    summary = ", ".join("%d %s" % (states[state], state) for state in REPORT_STATES if states[state]) or "no device"
    return dict(found, changed=False, msg="%d device(s): %s" % (found["total"], summary))


def main():
    argument_spec = dict(
        idempotency_key=dict(type="str", no_log=False),
        request_ids=dict(type="list", elements="str"),
        devices=dict(type="list", elements="dict"),
        api_url=COMMON_ARGUMENT_SPEC["api_url"],
        state_dir=COMMON_ARGUMENT_SPEC["state_dir"],
        **LEDGER_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, required_one_of=[["idempotency_key", "request_ids"]],
                           required_by={"devices": "idempotency_key"})
    run_ledger_module(module, report)


if __name__ == "__main__":
    main()
