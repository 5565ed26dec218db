#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_send
short_description: Send an SMS to ThingSpace devices, once
version_added: 0.1.0
description:
  - Sends an application-originated SMS through the ThingSpace M2M API (C(POST /api/m2m/v1/sms)) to a list of
    devices, or to every device of an account matching a device group, a service plan and custom fields.
  - Idempotent. Every send has an O(idempotency_key), and a local ledger records what was sent under it. A re-run
    with the same inputs sends nothing and reports RV(ignore:changed=false); devices added to O(devices) later get the
    message, the others do not get it twice.
  - Device lists longer than 10,000 (the API's limit per request) are sent in batches.
  - Every input is checked before any request (message length for its encoding (GSM-7 septets or bytes),
    device kinds and identifiers, custom field names, credentials).
  - Check mode previews the send (which and how many devices, in how many batches) without sending.
    With filters it resolves the selection through the read-only device list API; with a device list and
    O(account_name) it checks the devices against the account's device list (RV(devices_unknown)). Either way it reports
    the devices that are not active (RV(devices_inactive)), which O(skip_inactive) leaves out.
  - A selection by filters that matches no device fails the task before any SMS request, unless O(allow_empty=true).
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  action:
    description:
      - On the controller (connection C(local), without become, async or a task C(environment)) an action plugin runs
        the module's code in Ansible's own process, with the same checks and result, when the Python running Ansible
        has the requirements. Elsewhere the module runs on the host.
    support: full
  check_mode:
    description: Reports what would be sent, never sends. With filters, or a device list and O(account_name), it reads the device list API.
    support: full
  diff_mode:
    description: Not applicable; the result lists what was or would be sent.
    support: none
options:
  account_name:
    description:
      - Billing account, with its leading zeros (quote it in YAML).
      - Sent with every request when given. Needed with filters (unless O(filter_tracking=selection) with
        O(allow_empty=true)), and for O(unknown_devices=skip).
      - With a device list, check mode and a send that ThingSpace refuses for an unknown device read the account's device
        list to name the devices it does not have.
    type: str
  devices:
    description:
      - The devices to send to, each a dictionary with exactly two keys, C(kind) and C(id). Mutually exclusive with
        O(devices_file), O(group_name), O(service_plan) and O(custom_fields).
      - C(kind) is the identifier kind, case-insensitive, and C(id) the identifier (quote it in YAML). V(eid) (32 digits),
        V(esn) (11 digits), V(iccid) (18-20 digits), V(imei) (15-16 digits), V(imsi) (6-15 digits),
        V(mdn) (10 digits), V(meid) (14 hex), V(msisdn) (11-15 digits).
      - One identifier per device is enough. Each device is one ledger entry, so a re-run sends only to devices
        that did not get the message yet.
      - Checked by the module itself rather than by per-entry option validation, which costs seconds on lists of
        100,000 devices.
    type: list
    elements: dict
  devices_file:
    description:
      - A JSON file holding the devices to send to, as O(devices) takes them (a list of C({kind, id}) entries), or an
        object whose only key, C(devices), holds that list. Mutually exclusive with O(devices) and the filters.
      - A path on the controller, found as the C(src) of C(ansible.builtin.copy) is (a relative path is looked for in
        the C(files) directory of the role or playbook, then next to it). When the module runs on another host, the
        file is copied there first.
      - The module reads and checks the file itself, so a long list does not go through Ansible's templating of task
        arguments, which takes seconds for 100,000 devices. The send is the same as with O(devices), with the same default
        O(idempotency_key) and ledger entries, so a rollout can move from one option to the other.
    type: path
  group_name:
    description: Send to the devices of this device group (combined with the other filters).
    type: str
  service_plan:
    description: Send to the devices with this service plan (combined with the other filters).
    type: str
  custom_fields:
    description:
      - Send to the devices whose custom fields have these values. Keys are V(CustomField1) to V(CustomField5);
        values match exactly, ignoring case, without wildcards.
      - As ThingSpace ignores the case of the values, so does the ledger; V(Wave-3) and V(WAVE-3) are the same send under
        the same default O(idempotency_key), and the same selection for a key given. A send recorded by an earlier version,
        which counted values as given, is found when a value with upper-case letters is spelled as it was then.
    type: dict
  filter_tracking:
    description:
      - How a send by filters is recorded in the ledger.
      - V(device) resolves the selection through the device list API (every page, needs O(account_name)), sends by
        device identifier in batches and records each device, as for O(devices). A re-run sends only to devices that
        joined the selection since. Each device is sent and recorded by its first identifier in the order ICCID,
        EID, IMEI, MEID, ESN, MDN, MSISDN, IMSI. Costs one device list call per page before the send.
      - V(selection) sends the filters in one request and records the selection as one ledger entry; ThingSpace
        resolves the filters, and devices that join later never get the message under the same key.
      - A key keeps the tracking it was first used with; changing it under the same key is refused.
      - Either way the selection is checked before any SMS request, V(device) by the devices it resolves, V(selection)
        by the first page of the device list (one request). See O(allow_empty).
    type: str
    choices: [device, selection]
    default: device
  allow_empty:
    description:
      - What a selection by filters that matches no device of O(account_name) does.
      - V(false) fails the task before any SMS request, naming the account and the filters (a misspelt group, plan or
        custom field value would otherwise report success for a send that reached nobody).
      - V(true) accepts it. The task is V(ok), RV(ignore:changed=false), nothing is sent or recorded, and a warning
        says so. With O(filter_tracking=selection) it also allows a send without O(account_name), which is then not
        checked (a warning says so).
    type: bool
    default: false
  unknown_devices:
    description:
      - What a send to a device list does with devices the account does not have. ThingSpace refuses the whole request
        when one of its devices is unknown (C(REQUEST_FAILED.DeviceNotFound)) without reliably saying which; the module
        then reads the device list of O(account_name) to name them (RV(devices_unknown)).
      - V(fail) fails the batch naming them; nothing of it is sent, and the next run sends it again.
      - V(skip) sends the rest of a refused batch once, as a new request (each batch ThingSpace refuses, the account's
        device list read once). The ledger records the unknown devices as refused; a re-run reports them in RV(devices_unknown) and a warning and does
        not send to them, unless O(force=true). Needs O(account_name).
      - Check mode checks every device to send against the account's device list when O(account_name) is given; with
        V(fail) it fails as the send would, with V(skip) the preview leaves them out.
    type: str
    choices: [fail, skip]
    default: fail
  skip_inactive:
    description:
      - What a send does with devices that are not active (suspended, deactivated, pre-active, pending activation, or
        any other state but C(active)), which ThingSpace answers C(Undelivered) for. Their states come from the device list
        (RV(devices_inactive)).
      - V(false) sends to them too and warns with their count (when the states are known, that is for a selection by filters, or a
        device list with O(account_name) in check mode).
      - V(true) leaves them out, reports them in RV(devices_inactive) and RV(msg) (not as a warning, since it was asked for)
        and counts them in RV(devices_skipped). Nothing is
        recorded for them in the ledger, so a later run under the same key sends them once they are active. With a device
        list it reads the account's device list once per run, so it needs O(account_name); it cannot be used with
        O(filter_tracking=selection), which sends the selection whole.
    type: bool
    default: false
  sms_message:
    description:
      - The SMS text (the API's C(smsMessage); the name C(message) is reserved by Ansible).
      - At most 160 GSM-7 septets with V(7-bit) (characters of the extension table such as C({ } [ ] ~ \\ | ^ €)
        count two), or 140 bytes with the 8-bit encodings. Longer messages are refused, not concatenated.
    type: str
    required: true
  data_encoding:
    description:
      - Encoding of the message. V(7-bit) allows only the GSM 03.38 alphabet; V(8-bit-ASCII) only ASCII;
        V(8-bit-UTF-8) and V(8-bit-DATA) any text, counted in UTF-8 bytes.
    type: str
    choices: [7-bit, 8-bit-ASCII, 8-bit-UTF-8, 8-bit-DATA]
    default: 7-bit
  idempotency_key:
    description:
      - Name of this send in the ledger. Devices already sent under the key are skipped.
      - By default derived from O(account_name), the filters (for a device list, only the fact that it is one),
        O(sms_message) and O(data_encoding); set it to name a rollout wave, for example V(wave3-provisioning-v1).
    type: str
  force:
    description:
      - Send to every selected device, even those the ledger says already got the message, that ThingSpace refused as
        not in the account (O(unknown_devices=skip)), or that another run is sending right now.
    type: bool
    default: false
  resend_unconfirmed:
    description:
      - Also send to devices whose earlier send is unconfirmed (no answer after the request went out, or a run that
        died while sending). Use it after checking that those devices did not get the message. Devices another
        running run is sending right now are left to it.
      - Every run first settles as sent the unconfirmed devices that callbacks recorded in the ledger explain (see
        RV(unconfirmed_resolved)), so this is needed only for the devices that stay unexplained.
    type: bool
    default: false
  duplicate_window:
    description:
      - Hours within which sending the same O(sms_message) to the same device under another O(idempotency_key) is
        warned about, naming the other key and when it went (RV(duplicates)). The devices are sent to all the same.
      - Compared by the SHA-256 of the message that the ledger keeps per key (never the text), for devices recorded
        by the same identifier, under the same O(api_url). With O(filter_tracking=selection) nothing is compared.
      - V(0) turns the check off.
    type: int
    default: 24
  max_devices:
    description:
      - Safety cap. When the selection holds more devices, the task fails and sends nothing.
      - With filters the selection is resolved first through the device list API (needs O(account_name)). The failure
        states the count found; the device list is read only until the page that passes the cap, so a count followed
        by "at least" is a lower bound.
    type: int
  batch_size:
    description:
      - Devices per request, at most 10,000 (the API's limit).
    type: int
    default: 10000
  wait:
    description:
      - V(delivered) waits, after the send (or on a re-run that has nothing left to send), until O(min_delivered) of
        the devices are Delivered, reading the delivery states the event source C(thingspace.m2m.callbacks) records in
        the ledger. It never sends again.
      - The task fails at O(wait_timeout), or as soon as the devices still waiting for a callback could not make up
        O(min_delivered), with RV(devices_undelivered) listing each device not Delivered and its state.
      - Needs the source running with the same ledger, and C(EnhancedConnectivityService) and C(SMSDeliveryConfirmation)
        callbacks registered to it (M(thingspace.m2m.vz_callback)); see the callbacks guide.
      - In check mode nothing is sent, so nothing is waited for.
    type: str
    choices: [none, delivered]
    default: none
  wait_timeout:
    description: Seconds O(wait=delivered) waits at most.
    type: int
    default: 300
  min_delivered:
    description:
      - With O(wait=delivered), how many of the send's devices must be Delivered, as a count (V(10)) or a
        percentage of them (V(95%)).
    type: str
    default: 100%
notes:
  - Delivery is asynchronous. Register C(EnhancedConnectivityService) and C(SMSDeliveryConfirmation) listeners
    (M(thingspace.m2m.vz_callback)) to the event source C(thingspace.m2m.callbacks) to learn when each device got the
    message (O(wait), M(thingspace.m2m.vz_sms_delivery_info)).
  - The ledger identifies a device by the kind and identifier given; the same device addressed by another
    identifier kind under the same key is a new target.
  - Bad entries of O(devices) or O(devices_file) are all reported at once, each with its position and reason (the
    first 20, then how many more).
  - With O(filter_tracking=device) a selection of N devices costs ceil(N / page size) device list calls and
    ceil(N / O(batch_size)) send requests, against one send request with O(filter_tracking=selection).
seealso:
  - module: thingspace.m2m.vz_callback
  - module: thingspace.m2m.vz_sms_start_callbacks
  - module: thingspace.m2m.vz_sms_delivery_info
"""

EXAMPLES = r"""
- name: Send the provisioning SMS to three devices (re-runs send nothing twice)
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    devices:
      - {kind: iccid, id: "89148000000800000001"}
      - {kind: mdn, id: "5550000002"}
      - {kind: imei, id: "990000000000003"}
    sms_message: "APN=iot.example;MODE=2"
    idempotency_key: wave1-provisioning-v1

- name: Send to a whole fleet listed in files/fleet.json (a JSON list of {kind, id} entries)
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    devices_file: fleet.json
    sms_message: "APN=iot.example;MODE=2"
    idempotency_key: fleet-provisioning-v1

- name: Preview who a group send would reach, without sending
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    group_name: west-sensors
    sms_message: "FW=2.4.1 REBOOT"
  check_mode: true
  register: preview

- name: Send to a service plan and a custom field, refusing if the selection grew past 500 devices
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    service_plan: m2m-basic
    custom_fields:
      CustomField1: rollout-3
    sms_message: "Réglage: intervalle 15 min"
    data_encoding: 8-bit-UTF-8
    max_devices: 500

- name: Send a wave and wait until 95 % of its devices confirm delivery (the callbacks source records them)
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    group_name: east-wave
    sms_message: "APN=iot.example;MODE=2"
    idempotency_key: east-wave-provisioning-v1
    wait: delivered
    min_delivered: 95%
    wait_timeout: 900
  register: wave
  ignore_errors: true

- name: Send to the active devices of a group only; suspended ones get it from a later run once reactivated
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    group_name: west-sensors
    sms_message: "FW=2.4.1 REBOOT"
    idempotency_key: west-fw-2.4.1
    skip_inactive: true
  register: west_send

- name: Show the devices left out as not active
  ansible.builtin.debug:
    msg: "{{ west_send.devices_inactive }}"
  when: west_send.devices_inactive | default([], true) | length > 0

- name: Send to a group whose membership is being built, accepting that it may have no device yet
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    group_name: wave-4
    filter_tracking: selection
    sms_message: "APN=iot.example;MODE=2"
    allow_empty: true

- name: Send to a list that may hold devices moved to another account; send to the others, record the refused ones
  thingspace.m2m.vz_sms_send:
    account_name: "0000123456-00001"
    devices_file: fleet.json
    sms_message: "APN=iot.example;MODE=2"
    idempotency_key: fleet-provisioning-v2
    unknown_devices: skip
  register: fleet_send

- name: Show the devices the account does not have
  ansible.builtin.debug:
    msg: "{{ fleet_send.devices_unknown }}"
  when: fleet_send.devices_unknown | length > 0

- name: Act on the devices that did not get it
  ansible.builtin.debug:
    msg: "{{ wave.devices_undelivered | default([]) }}"

- name: Set credentials once for every module of the collection
  module_defaults:
    group/thingspace.m2m.thingspace:
      api_url: "{{ thingspace_api_url }}"
      client_id: "{{ vault_thingspace_client_id }}"
      client_secret: "{{ vault_thingspace_client_secret }}"
      username: "{{ vault_thingspace_username }}"
      password: "{{ vault_thingspace_password }}"
  block:
    - name: Send by device list
      thingspace.m2m.vz_sms_send:
        account_name: "0000123456-00001"
        devices: "{{ wave_devices }}"
        sms_message: "PING"
"""

RETURN = r"""
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: Sent to 24 device(s) in 1 request(s)
idempotency_key:
  description: The key the ledger recorded this send under (given or derived).
  returned: always
  type: str
  sample: auto-5f0c1e0b4a7d4c2e9e1f7a3b2c6d8e90
request_ids:
  description: Request ids the API returned, one per batch sent. Callbacks carry the same ids.
  returned: always
  type: list
  elements: str
  sample: [d1f08526-5443-4054-9a29-4456490ea9f8]
batches:
  description:
    - One entry per batch. V(status) is V(sent), V(would_send) (check mode), V(failed) (nothing of it was sent),
      V(unconfirmed) (sent, but no answer arrived; recorded as unknown and not re-sent), V(skipped)
      (a concurrent run claimed its devices) or V(refused) (every device of it is unknown to the account, with
      O(unknown_devices=skip); nothing was sent).
    - V(devices) is the number of devices the batch went (or would go) to; V(devices_unknown), with
      O(unknown_devices=skip), how many of its devices ThingSpace refused and were left out.
    - V(error) says why a batch failed or is unconfirmed, or why the ledger could not record a sent batch (it then
      stays pending in the ledger, reported as unconfirmed by a re-run and not sent again).
  returned: always
  type: list
  elements: dict
  sample: [{index: 0, devices: 23, devices_unknown: 1, status: sent, request_id: d1f08526-5443-4054-9a29-4456490ea9f8}]
devices_requested:
  description: Distinct devices in O(devices) or O(devices_file); null with filters.
  returned: always
  type: int
  sample: 24
devices_resolved:
  description:
    - Devices the filters select. With C(filter_tracking=device) (the default) they are resolved in every run; with
      C(filter_tracking=selection) only in check mode or with O(max_devices). Null with O(devices) or O(devices_file), and when not
      resolved. V(0) when the selection matches no device (with O(allow_empty=true)).
  returned: always
  type: int
  sample: 12
devices_sent:
  description:
    - Devices sent to by this run (in check mode, that would be sent to). With filters, the resolved count
      when known, else null.
  returned: always
  type: int
  sample: 24
devices_skipped:
  description:
    - Devices not sent because the ledger already has them under the key (or a concurrent run claimed them first, or they are
      not active and O(skip_inactive=true)), of O(devices),
      O(devices_file) or the devices the filters select with C(filter_tracking=device). Null with C(filter_tracking=selection).
  returned: always
  type: int
  sample: 0
devices_unconfirmed:
  description: Devices whose send under this key is unconfirmed, from this run or an earlier one.
  returned: always
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000800000001"}]
devices_inactive:
  description:
    - Devices this run sends (in check mode, would send) to that are not active, each C({kind, id, state}) with the
      state the device list gives. With O(skip_inactive=true) they were left out and counted in RV(devices_skipped).
      With O(filter_tracking=selection), the inactive devices of the resolved selection.
    - Null when the states were not read, that is for a device list without O(account_name), or a real run of a
      device list without O(skip_inactive=true), or a selection sent whole and not resolved. Also null when the run
      stopped before (nothing to send, an empty selection).
  returned: always
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000800000003", state: suspend}]
devices_unknown:
  description:
    - Devices of O(devices) or O(devices_file) that the account does not have, as the account's device list shows
      them. Found by check mode, named when ThingSpace refused a batch, or recorded as refused by an earlier run under
      this key (O(unknown_devices=skip)). Empty when none, or when they could not be named (no O(account_name)).
  returned: always
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000899999999"}]
selection_unconfirmed:
  description: With filters, whether the send of the selection under this key is unconfirmed.
  returned: always
  type: bool
  sample: false
devices_preview:
  description: In check mode, up to 50 of the devices that would get the message (first identifier of each).
  returned: check mode, when something would be sent
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000800000001"}]
message_size:
  description: Size of the message in the unit of its encoding, and the limit.
  returned: always
  type: dict
  sample: {used: 21, limit: 160, unit: septets}
data_encoding:
  description: The encoding used.
  returned: always
  type: str
  sample: 7-bit
unconfirmed_resolved:
  description:
    - Devices recorded unconfirmed under the key that this run settled as sent (in check mode, would settle), each
      C({kind, id, request_id}). A device is settled when the ledger holds a callback for it (C(EnhancedConnectivityService)
      "Performed action on device", or a delivery confirmation) with a request id the ledger does not know, received after
      the device was claimed, and the device has no other open claim. The request id is the callback's.
  returned: always
  type: list
  elements: dict
  sample: [{kind: iccid, id: "89148000000800000001", request_id: d1f08526-5443-4054-9a29-4456490ea9f8}]
other_api_urls:
  description:
    - Other API URLs under which the ledger records the same idempotency key, with the number of targets (devices, or a
      selection) there. The ledger keeps each API URL apart; a warning names each. Empty when there are none.
  returned: always
  type: list
  elements: dict
  sample: [{api_url: "http://127.0.0.1:8443", targets: 120}]
duplicates:
  description:
    - Other idempotency keys under which devices of this send got the same message within O(duplicate_window) hours,
      with how many of this run's devices and when the last of them went (UTC). A warning names each.
  returned: always
  type: list
  elements: dict
  sample: [{idempotency_key: wave3-provisioning-v1, devices: 12, last_at: "2026-12-07T09:30:12Z"}]
delivery:
  description:
    - With O(wait=delivered), the delivery of the send's devices when the wait ended, as
      M(thingspace.m2m.vz_sms_delivery_info) returns it (C(states), C(devices), C(total), C(requests),
      C(devices_unmatched)).
  returned: when O(wait=delivered), not in check mode
  type: dict
  sample: {states: {Delivered: 10, Undelivered: 2, Expired: 0, Rejected: 0, sent: 0, accepted: 0, unconfirmed: 0}, total: 12}
devices_undelivered:
  description: With O(wait=delivered), each device not Delivered when the wait ended, with its state.
  returned: when O(wait=delivered), not in check mode
  type: list
  elements: dict
  sample: [{kind: mdn, id: "5550000011", state: Undelivered}]
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, ThingSpaceModule
from ansible_collections.thingspace.m2m.plugins.module_utils.send import (
    DUPLICATE_WINDOW,
    TRACK_DEVICE,
    TRACK_SELECTION,
    UNKNOWN_FAIL,
    UNKNOWN_SKIP,
    SmsSend,
    plan_send,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import ENCODINGS, MAX_DEVICES_PER_REQUEST

FILTERS = ["group_name", "service_plan", "custom_fields"]


WAIT_NONE = "none"
WAIT_DELIVERED = "delivered"


def send(module):
    params = module.params
    plan = plan_send(params, module.check_mode)
    if params["wait"] == WAIT_DELIVERED:
        _check_wait(module)
    if params["duplicate_window"] < 0:
        module.fail_json(msg="duplicate_window must be 0 (no check) or more hours")
    ledger = Ledger(module.ledger_location, read_only=module.check_mode)
    try:
        scope = service_scope(module.api_url)
        sms_send = SmsSend(
            plan, module.client, ledger, scope, check_mode=module.check_mode,
            force=params["force"], resend_unconfirmed=params["resend_unconfirmed"],
            max_devices=params["max_devices"], batch_size=params["batch_size"], duplicate_window=params["duplicate_window"],
            allow_empty=params["allow_empty"], unknown_devices=params["unknown_devices"], skip_inactive=params["skip_inactive"],
        )
        result, failure = sms_send.run()
        if params["wait"] != WAIT_DELIVERED or failure:
            return result, failure
        if module.check_mode:
            result["msg"] += "; would wait for delivery"
            return result, None
        from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import DELIVERED, undelivered, wait_for_delivery

        targets = [target for target in sms_send.targets if target not in sms_send.refused]
        report, failure = wait_for_delivery(ledger, scope, sms_send.key, targets, params["min_delivered"], params["wait_timeout"])
        result.update(delivery=report, devices_undelivered=undelivered(report))
        result["msg"] += "; %d of %d device(s) Delivered" % (report["states"][DELIVERED], report["total"])
        return result, failure
    finally:
        ledger.close()


def _check_wait(module):
    """The wait options, checked before any request (deliveries.py is imported only by a task that waits)."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import required_delivered

    try:
        required_delivered(module.params["min_delivered"], 1)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if module.params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must be 0 or more seconds")


def main(module_class=ThingSpaceModule):
    """``module_class`` is ThingSpaceModule, or the action plugin's stand-in when the task runs in the controller."""
    argument_spec = dict(
        account_name=dict(type="str"),
        devices=dict(type="list", elements="dict"),
        devices_file=dict(type="path"),
        group_name=dict(type="str"),
        service_plan=dict(type="str"),
        custom_fields=dict(type="dict"),
        filter_tracking=dict(type="str", choices=[TRACK_DEVICE, TRACK_SELECTION], default=TRACK_DEVICE),
        allow_empty=dict(type="bool", default=False),
        unknown_devices=dict(type="str", choices=[UNKNOWN_FAIL, UNKNOWN_SKIP], default=UNKNOWN_FAIL),
        skip_inactive=dict(type="bool", default=False),
        sms_message=dict(type="str", required=True),
        data_encoding=dict(type="str", choices=list(ENCODINGS), default="7-bit"),
        idempotency_key=dict(type="str", no_log=False),
        force=dict(type="bool", default=False),
        resend_unconfirmed=dict(type="bool", default=False),
        duplicate_window=dict(type="int", default=DUPLICATE_WINDOW),
        max_devices=dict(type="int"),
        batch_size=dict(type="int", default=MAX_DEVICES_PER_REQUEST),
        wait=dict(type="str", choices=[WAIT_NONE, WAIT_DELIVERED], default=WAIT_NONE),
        wait_timeout=dict(type="int", default=300),
        min_delivered=dict(type="str", default="100%"),
        **LEDGER_ARGUMENT_SPEC,
    )
    module = module_class(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["devices", "devices_file"]] + [[devices, f] for devices in ("devices", "devices_file") for f in FILTERS],
        required_one_of=[["devices", "devices_file", *FILTERS]],
    )
    module.run(send)


if __name__ == "__main__":
    main()
