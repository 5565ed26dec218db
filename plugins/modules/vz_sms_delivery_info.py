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
  - Fails, naming the ledger, when there is no ledger at O(ledger_path) (or in O(ledger_url)'s O(ledger_schema)), when
    the ledger has no record of the O(idempotency_key) under O(api_url), or when it has never seen one of O(request_ids)
    (no send recorded it and no callback named it), since an answer of no devices would be false. A key recorded only under
    another API URL is named in the message, with its number of devices. Reading never creates a ledger.
  - Devices recorded unconfirmed under the key that the callbacks in the ledger explain (see
    RV(thingspace.m2m.vz_sms_send#module:unconfirmed_resolved)) are reported with their callbacks' request id and
    state, and listed in RV(unconfirmed_resolved); the next M(thingspace.m2m.vz_sms_send) under the key records them so.
  - With O(devices) alone, lists every send the ledger holds for those devices, under any key and API URL, within
    O(since) and O(until) (RV(device_sends)).
  - Makes no ThingSpace request and never writes the ledger. It takes the options of the action group
    C(thingspace.m2m.thingspace) (credentials, transport, O(account_name)), so that C(module_defaults) for the group
    reach it, and uses only O(api_url), O(state_dir) and the ledger options.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
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
      - With O(idempotency_key), report only these devices of the key, each C({kind, id}) as given to M(thingspace.m2m.vz_sms_send).
      - Alone, list every send the ledger holds for these devices (RV(device_sends)). A device sent to by another
        identifier is found through the identifiers its C(EnhancedConnectivityService) callbacks listed.
    type: list
    elements: dict
  since:
    description:
      - With O(devices) alone, only the sends recorded at this time or later, given as an ISO 8601 time such as
        V(2026-12-07T08:00:00Z) (UTC when it has no offset) or as a duration back from now such as V(24h), V(90m), V(7d).
      - The time of a send is when it was settled sent, or, unconfirmed, when it was claimed.
    type: str
  until:
    description:
      - With O(devices) alone, only the sends recorded at this time or earlier, written as O(since).
    type: str
  list_states:
    description:
      - The states whose devices RV(devices) lists; RV(states) counts the devices of every state. V([]) lists none.
      - A result that lists a million devices takes Ansible tens of seconds and hundreds of megabytes to check for secrets
        and encode; for a large send, list only the states to act on, such as V([Undelivered, Expired, Rejected]), or none.
      - With O(idempotency_key) alone, the devices of a send by MDN are counted by the ledger's database, and only those
        of O(list_states) are read.
    type: list
    elements: str
    choices: [Delivered, Undelivered, Expired, Rejected, sent, accepted, unconfirmed]
  api_url:
    description:
      - The ThingSpace base URL the send used; the ledger keeps the keys of each API URL apart, and names the other
        API URLs that hold O(idempotency_key).
      - If not set, the environment variable E(THINGSPACE_API_URL) is used.
    type: str
    default: https://thingspace.verizon.com
  account_name:
    description:
      - Not used (the ledger keeps a device once for every account). Accepted so that C(module_defaults) for the group
        C(thingspace.m2m.thingspace) that set it reach this module.
    type: str
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

- name: A fleet's figures, listing only the devices that did not get it
  thingspace.m2m.vz_sms_delivery_info:
    api_url: "{{ thingspace_api_url }}"
    idempotency_key: fleet-apn-v1
    list_states: [Undelivered, Expired, Rejected]
  register: fleet

- name: What the ledger holds for two devices over the last day, under any key
  thingspace.m2m.vz_sms_delivery_info:
    api_url: "{{ thingspace_api_url }}"
    devices:
      - {kind: iccid, id: "89148000000800000001"}
      - {kind: mdn, id: "5550000011"}
    since: 24h
  register: history

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
  returned: with O(idempotency_key) or O(request_ids)
  type: dict
  sample: {Delivered: 10, Undelivered: 2, Expired: 0, Rejected: 0, sent: 0, accepted: 0, unconfirmed: 0}
devices:
  description:
    - The devices in each state of O(list_states) (every state by default), each C({kind, id}) as the ledger records
      it (for O(request_ids) and selections, the identifier the callbacks gave, the MDN first).
    - A selection send (C(filter_tracking=selection)) of O(idempotency_key) that is unconfirmed is listed with the kind C(selection) and the key as its id.
  returned: with O(idempotency_key) or O(request_ids)
  type: dict
  sample: {Delivered: [{kind: iccid, id: "89148000000800000001"}], Undelivered: [], Expired: [], Rejected: [], sent: [], accepted: [], unconfirmed: []}
total:
  description: Devices reported.
  returned: with O(idempotency_key) or O(request_ids)
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
  returned: with O(idempotency_key) or O(request_ids)
  type: list
  elements: dict
  sample: [{request_id: d1f08526-5443-4054-9a29-4456490ea9f8, devices_requested: 12}]
unconfirmed_resolved:
  description:
    - Devices recorded unconfirmed under O(idempotency_key) that the callbacks in the ledger explain, each C({kind, id,
      request_id}); they are reported in their callbacks' state, and the next M(thingspace.m2m.vz_sms_send) under the
      key records them as sent.
  returned: with O(idempotency_key)
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000800000001", request_id: d1f08526-5443-4054-9a29-4456490ea9f8}]
other_api_urls:
  description:
    - Other API URLs under which the ledger records O(idempotency_key), with the number of targets there; a warning
      names each.
  returned: with O(idempotency_key)
  type: list
  elements: dict
  sample: [{api_url: "http://127.0.0.1:8443", targets: 120}]
device_sends:
  description:
    - With O(devices) alone, each send the ledger holds for the devices, oldest first. C(device) is the device as
      given, C(recorded_as) the identifier the send used, C(api_url) and C(idempotency_key) the send's, C(state) the
      ledger's (V(sent), V(unknown), V(pending), V(in_flight), V(refused)), C(request_id), C(at) (UTC; when it was settled
      sent, or claimed while unconfirmed), and C(delivery) the state the callbacks give it (as in RV(states); null
      when not sent).
  returned: with O(devices) alone
  type: list
  elements: dict
  sample: [{device: {kind: mdn, id: "5550000011"}, recorded_as: {kind: iccid, id: "89148000000800000001"},
            api_url: "https://thingspace.verizon.com", idempotency_key: wave3-provisioning-v1, state: sent,
            request_id: d1f08526-5443-4054-9a29-4456490ea9f8, at: "2026-12-07T09:30:12Z", delivery: Delivered}]
devices_unmatched:
  description:
    - Devices the callbacks of the key's requests named that match none of its devices; more than 0 when
      C(EnhancedConnectivityService) callbacks, which list each identifier of a device, are not received.
  returned: with O(idempotency_key) or O(request_ids)
  type: int
  sample: 0
"""

import re
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import REPORT_STATES, delivery_report, device_history
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC, ledger_location, run_ledger_module
from ansible_collections.thingspace.m2m.plugins.module_utils.send import target_of
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import normalize_devices

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def when(option, value):
    """The time (seconds since the epoch) of ``since`` or ``until``: ISO 8601 (UTC without an offset) or a duration back from now."""
    if value is None:
        return None
    duration = _DURATION.match(value)
    if duration:
        return time.time() - float(duration.group(1)) * _SECONDS[duration.group(2)]
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ThingSpaceError("%s: %r is neither an ISO 8601 time such as 2026-12-07T08:00:00Z nor a duration such as 24h, 90m or 7d" % (option, value))
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def report(module):
    params = module.params
    key, request_ids = params["idempotency_key"], params["request_ids"] or []
    history = key is None and not request_ids
    if history and params["list_states"] is not None:
        raise ThingSpaceError("list_states: it selects the devices a report of idempotency_key or request_ids lists; with devices alone every send is listed")
    if not history and (params["since"] or params["until"]):
        raise ThingSpaceError("since, until: they select the sends of devices given alone; with idempotency_key or request_ids every record is read")
    since, until = when("since", params["since"]), when("until", params["until"])
    targets = None
    if params["devices"] is not None:
        try:
            targets = [target_of(device) for device in normalize_devices(params["devices"])]
        except ValueError as exc:
            raise ThingSpaceError(str(exc))
    ledger = Ledger(ledger_location(params), read_only=True)
    try:
        if not ledger.exists:
            raise ThingSpaceError("There is no ledger at %s, so nothing was recorded there to report. Check ledger_path, ledger_url, ledger_schema "
                                  "and state_dir: the sends and the event source thingspace.m2m.callbacks must use this ledger" % ledger.where)
        scope = service_scope(params["api_url"])
        if history:
            sends = device_history(ledger, targets, since, until)
            return dict(changed=False, device_sends=sends, msg="%d send(s) recorded for %d device(s)%s" % (
                len(sends), len(targets), "" if since is None and until is None else " in the time given"))
        extra = {}
        if key is not None:
            extra = _key_checks(module, ledger, scope, key)
        unknown = ledger.unknown_request_ids(request_ids)
        if unknown:
            raise ThingSpaceError("request_ids: the ledger %s has never seen %s: no send recorded it and no callback named it, so its devices "
                                  "cannot be reported. Check the id, and that the send and the event source use this ledger"
                                  % (ledger.where, ", ".join(unknown)))
        found = delivery_report(ledger, scope, key, request_ids, targets, REPORT_STATES if params["list_states"] is None else params["list_states"])
    finally:
        ledger.close()
    states = found["states"]
    summary = ", ".join("%d %s" % (states[state], state) for state in REPORT_STATES if states[state]) or "no device"
    return dict(found, changed=False, msg="%d device(s): %s" % (found["total"], summary), **extra)


def _key_checks(module, ledger, scope, key):
    """Fail for a key the ledger does not know under ``scope``, naming the API URLs that know it; warn of those; settle
    (in what this run reads) the unconfirmed devices the callbacks explain. The key's result fields."""
    others = ledger.other_scopes(scope, key)
    elsewhere = "; ".join("%s has %d target(s) under it" % (other, count) for other, count in others.items())
    if not ledger.knows(scope, key):
        hint = ("; %s. If that is the same service (localhost and 127.0.0.1, say), set api_url to it" % elsewhere) if others else ""
        raise ThingSpaceError("idempotency_key %r: the ledger %s has no send recorded under it for api_url %s%s" % (key, ledger.where, scope, hint))
    for other, count in others.items():
        module.warn("idempotency_key %s also has %d target(s) recorded under another API URL, %s; this report reads only those under %s. If both "
                    "URLs are the same service, read the other with api_url %s" % (key, count, other, scope, other))
    settled = ledger.resolve_unconfirmed(scope, key)
    return {"other_api_urls": [{"api_url": other, "targets": count} for other, count in others.items()],
            "unconfirmed_resolved": [dict(zip(("kind", "id"), target.split(":", 1)), request_id=request_id) for target, request_id in sorted(settled.items())]}


def main():
    argument_spec = dict(
        COMMON_ARGUMENT_SPEC,
        idempotency_key=dict(type="str", no_log=False),
        request_ids=dict(type="list", elements="str"),
        devices=dict(type="list", elements="dict"),
        since=dict(type="str"),
        until=dict(type="str"),
        list_states=dict(type="list", elements="str", choices=list(REPORT_STATES)),
        account_name=dict(type="str"),
        **LEDGER_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, required_one_of=[["idempotency_key", "request_ids", "devices"]])
    run_ledger_module(module, report)


if __name__ == "__main__":
    main()
