#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_campaign
short_description: Run a staged SMS campaign, in waves gated by delivery or replies, paced, with automatic abort
version_added: 0.2.0
description:
  - Sends one SMS to a selection of devices in waves (a canary, then growing waves). Each wave starts only when the
    previous wave's gate passed (O(success_threshold) of its devices Delivered, or replied); the campaign stops for
    good when an O(abort) criterion is met; sends are paced (O(max_per_minute)).
  - Each task is one step of a state machine kept in the ledger. It reads the campaign (its frozen selection, waves
    and the state of each device), brings every device's state forward from what the ledger holds (the send, the
    delivery callbacks, the replies, O(wave_timeout)), decides the abort criteria and the current gate, sends what is
    due and returns. Every decision is made from the ledger, so any controller that shares the ledger can take the
    next step; a playbook loop (C(until)), a rulebook reacting to callbacks, or one task with O(wait=gate) are three
    ways to run the same campaign.
  - Each device gets the campaign's SMS at most once, whatever runs, dies or runs at the same time on another
    controller. O(name) is the O(thingspace.m2m.vz_sms_send#module:idempotency_key) of every send the campaign makes,
    with the ledger's claim protocol.
  - Delivery states come from the callbacks the event source C(thingspace.m2m.callbacks) records in the ledger;
    replies from the device SMS it records and from those M(thingspace.m2m.vz_sms_receive) drains. Without them no
    device is ever Delivered or replied, and the gates wait.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description:
      - Reports the campaign's figures and the next wave's device count and first identifiers (RV(next_wave_preview));
        never sends, never writes the ledger. A campaign not created yet is previewed (with filters, through the
        device list API).
    support: full
  diff_mode:
    description: Not applicable; the result reports the campaign's figures.
    support: none
options:
  name:
    description:
      - The campaign. Unique per O(api_url); it is the idempotency key of every send the campaign makes, so use a name
        no O(thingspace.m2m.vz_sms_send#module:idempotency_key) uses.
      - The first step with O(state=started) creates the campaign; later steps continue it.
    type: str
    required: true
  account_name:
    description:
      - Billing account, with its leading zeros (quote it in YAML). Needed with filters.
      - Frozen when the campaign is created; a later step that gives another one fails.
    type: str
  devices:
    description:
      - The devices of the campaign, each C({kind, id}), as O(thingspace.m2m.vz_sms_send#module:devices) takes them.
        Mutually exclusive with O(devices_file) and the filters.
      - The selection is needed to create the campaign and frozen then. A later step may leave it out; one that gives
        another selection fails, naming the difference.
    type: list
    elements: dict
  devices_file:
    description:
      - A JSON file on the host that runs the module holding the devices, as
        O(thingspace.m2m.vz_sms_send#module:devices_file) reads it.
    type: path
  group_name:
    description: Select the devices of this device group, resolved through the device list API when the campaign is created.
    type: str
  service_plan:
    description: Select the devices with this service plan (combined with the other filters).
    type: str
  custom_fields:
    description: Select the devices whose custom fields have these values (V(CustomField1) to V(CustomField5), ignoring case).
    type: dict
  sms_message:
    description:
      - The SMS text, as O(thingspace.m2m.vz_sms_send#module:sms_message) takes it.
      - Needed with O(state=started), at every step, since the ledger keeps only its SHA-256, which each step compares. Another
        text fails, naming the difference.
    type: str
  data_encoding:
    description: Encoding of the message, as O(thingspace.m2m.vz_sms_send#module:data_encoding). Frozen.
    type: str
    choices: [7-bit, 8-bit-ASCII, 8-bit-UTF-8, 8-bit-DATA]
    default: 7-bit
  waves:
    description:
      - Cumulative targets of the waves, each a count or a percentage of the selection (rounded up), for example
        V([10, "1%", "10%", "100%"]). A target below the one before adds no device (its wave is empty). The last must
        reach the whole selection.
      - Devices are ordered by a hash of O(name) and the device identifier, so a canary is a stable pseudo-random sample.
      - Frozen; V(["100%"]) when the campaign is created without it.
    type: list
    elements: raw
  success:
    description:
      - What a device's success is. V(delivered) its SMSDeliveryConfirmation C(Delivered) (or a reply); V(replied) a
        device SMS after its send that matches O(reply_pattern).
      - Frozen; V(delivered) when the campaign is created without it.
    type: str
    choices: [delivered, replied]
  reply_pattern:
    description:
      - A Python regular expression searched in a reply's text; a reply that matches is a success. Without it any reply
        is. Frozen.
    type: str
  reply_error_pattern:
    description:
      - A Python regular expression searched in a reply's text, before O(reply_pattern); a reply that matches is the
        failure C(reply_error). Frozen.
    type: str
  success_threshold:
    description:
      - How many of a wave's devices must succeed before the next wave starts, a count or a percentage of the wave.
      - A gate that can no longer pass (too many devices failed or timed out) aborts the campaign; the last wave's gate
        completes it.
      - The campaign's policy; V(100%) when it is created without it. A step that gives another value replaces it, with
        a warning.
    type: str
  wave_timeout:
    description:
      - Seconds after a wave's last send after which its devices without an outcome count as C(timed_out). Delivery
        callbacks and replies later than that do not count.
      - The campaign's policy (none when created without it, so devices wait for their outcome).
    type: int
  abort:
    description:
      - Abort criteria. Over every device finished so far (succeeded or failed), when the share of the failure
        C(failure) reaches C(threshold) and at least C(min_devices) have finished, the campaign is aborted, with no further
        SMS, RV(campaign_state=aborted), RV(abort_reason) names the criterion, the device whose outcome crossed it, and the counts.
      - C(failure) is one of V(undelivered), V(rejected), V(expired), V(timed_out), V(reply_error), V(refused), V(any); C(threshold) a
        percentage (default V(100%)); C(min_devices) a count (default V(1)).
      - The campaign's policy (none when created without it).
    type: list
    elements: dict
  max_per_minute:
    description:
      - Pacing over the whole campaign, kept in the ledger so that every controller respects it. Batches carry at most
        a sixth of it (ten seconds' worth) and go no faster than it allows.
      - With O(wait=none) a step sends what the pace allows now and returns RV(campaign_state=running); O(wait=gate)
        sleeps for the pace.
      - The campaign's policy (no pacing when created without it).
    type: int
  skip_inactive:
    description:
      - What the campaign does with devices that are not active (suspended, deactivated, pre-active, pending activation, or
        any other state but C(active)), as O(thingspace.m2m.vz_sms_send#module:skip_inactive) does; their states come from
        the account's device list, read once per step, so it needs O(account_name).
      - V(false) sends to them too; the check-mode preview lists them (C(devices_inactive) of RV(next_wave_preview)) and warns
        with their count.
      - V(true) leaves each of them out when its batch goes. The device is recorded C(skipped) (final; RV(skipped_inactive) counts
        them), and it is not one of its wave's devices for the gate nor a finished device for the O(abort) criteria.
      - The campaign's policy (V(false) when created without it).
    type: bool
  fail_on_abort:
    description: Whether the task fails when the campaign is aborted by a criterion or a gate (not when aborted by hand).
    type: bool
    default: true
  state:
    description:
      - V(started) creates the campaign, or continues it as far as the gates allow; it resumes a paused campaign.
      - V(paused) sends nothing until a step with V(started). V(aborted) ends the campaign for good, by hand.
      - A paused or aborted campaign sends nothing, whatever the gates say. A completed or aborted campaign stays so.
    type: str
    choices: [started, paused, aborted]
    default: started
  wait:
    description:
      - V(none) evaluates the gate, sends what is due and returns.
      - V(gate) stays until the current wave's gate decides (it passes, and the next wave's due devices are sent, or the
        campaign completes or aborts), sleeping for the pace and reading the ledger every 2 seconds, up to
        O(wait_timeout); then it returns with a warning, and the next step goes on. In check mode it does not wait, since a
        step that sends nothing changes nothing it could wait for.
    type: str
    choices: [none, gate]
    default: none
  wait_timeout:
    description: Seconds O(wait=gate) waits at most.
    type: int
    default: 600
seealso:
  - module: thingspace.m2m.vz_sms_send
  - module: thingspace.m2m.vz_sms_receive
"""

EXAMPLES = r"""
- name: Canary of 10 devices, then 10 %, then everyone; stop when 5 % of finished devices were not delivered
  thingspace.m2m.vz_sms_campaign:
    name: apn-update-2026-12
    account_name: "0000123456-00001"
    group_name: west-fleet
    sms_message: "APN=iot.example"
    waves: [10, "10%", "100%"]
    success_threshold: "95%"
    wave_timeout: 3600
    max_per_minute: 600
    abort:
      - {failure: any, threshold: "5%", min_devices: 20}
  register: campaign

- name: Advance it until it ends, one gate per step
  thingspace.m2m.vz_sms_campaign:
    name: apn-update-2026-12
    sms_message: "APN=iot.example"
    wait: gate
    wait_timeout: 900
  register: campaign
  until: campaign.campaign_state in ["completed", "aborted", "paused"]
  retries: 48
  delay: 1

- name: Pause it
  thingspace.m2m.vz_sms_campaign:
    name: apn-update-2026-12
    state: paused
"""

RETURN = r"""
msg:
  description: The campaign's state, its current wave, what this run sent (in check mode, would send), and devices sent of the total.
  returned: always
  type: str
  sample: "Campaign apn-2026-12: waiting, wave 2 of 3; sent to 100 device(s) in this run; 110 of 5000 devices sent"
campaign:
  description: The campaign's name.
  returned: always
  type: str
  sample: apn-update-2026-12
campaign_state:
  description: V(running) (devices of the current wave to send), V(waiting) (its gate undecided), V(paused), V(completed) or V(aborted).
  returned: always
  type: str
  sample: waiting
wave:
  description: The current wave, from 1.
  returned: always
  type: int
  sample: 2
waves_total:
  description: How many waves the campaign has.
  returned: always
  type: int
  sample: 3
devices_total:
  description: Devices of the frozen selection.
  returned: always
  type: int
  sample: 5000
waves:
  description:
    - Per wave, its figures and its gate (C(state) V(passed), V(open), V(failed) or V(not_started); C(needed) successes,
      C(succeeded)).
  returned: always
  type: list
  elements: dict
  sample:
    - {wave: 1, devices: 10, sent: 10, unconfirmed: 0, delivered: 10, replied: 0, pending: 0,
       skipped_inactive: 0, failures: {undelivered: 0, expired: 0, rejected: 0, timed_out: 0, reply_error: 0, refused: 0},
       gate: {state: passed, needed: 10, succeeded: 10}}
sent:
  description: Devices of the campaign sent so far (including unconfirmed ones).
  returned: always
  type: int
  sample: 510
unconfirmed:
  description: Devices whose send is unconfirmed (no answer came, or a run died while sending); never sent again on their own.
  returned: always
  type: int
  sample: 0
delivered:
  description: Devices Delivered (and not replied).
  returned: always
  type: int
  sample: 495
replied:
  description: Devices that replied (matching O(reply_pattern)).
  returned: always
  type: int
  sample: 0
failures:
  description:
    - Failed devices by type (V(undelivered), V(expired), V(rejected), V(timed_out), V(reply_error), V(refused)).
    - V(refused) are devices ThingSpace refused as not in the account. A batch ThingSpace refuses for them is sent again
      without them, once the account's device list named them (so with O(account_name)), as
      O(thingspace.m2m.vz_sms_send#module:unknown_devices=skip) does; the rest of the campaign goes on. Without
      O(account_name) they cannot be named, and the step fails at that batch every time.
  returned: always
  type: dict
  sample: {undelivered: 3, expired: 0, rejected: 0, timed_out: 2, reply_error: 0, refused: 0}
skipped_inactive:
  description:
    - Devices O(skip_inactive=true) left out, as not active when their batch went (recorded in the state C(skipped)).
    - Not named C(skipped), which Ansible reads as the task's own status.
  returned: always
  type: int
  sample: 0
pending:
  description: Devices not sent yet.
  returned: always
  type: int
  sample: 4490
abort_reason:
  description:
    - Why the campaign was aborted; null while it is not. C(criterion) (the O(abort) entry met), C(device) (the device
      whose outcome crossed it), C(finished) and C(failed) (the counts at that device); or C(gate) (the wave whose
      gate can no longer pass) with C(needed), C(succeeded), C(finished), C(failed); or C(by_hand).
    - C(at) says when (ISO 8601, UTC) - the outcome of the device that crossed the criterion, the failure after which the
      gate could no longer pass, or the step that aborted it by hand.
  returned: always
  type: dict
  sample: {criterion: {failure: any, threshold: "5%", min_devices: 20}, gate: null, device: {kind: mdn, id: "5550000042"},
           finished: 40, failed: 2, at: "2026-12-07T03:12:09Z"}
devices_sent:
  description: Devices this run sent to.
  returned: always
  type: int
  sample: 100
request_ids:
  description: The request ids of this run's sends.
  returned: always
  type: list
  elements: str
  sample: ["d1f08526-5443-4054-9a29-4456490ea9f8"]
next_wave_preview:
  description:
    - In check mode, the current wave's devices still to send (C(devices)) and the first 50 of them (C(first)).
    - With O(account_name), checked against the account's device list as the sends would be - C(devices_unknown) the
      devices it lacks (left out, to be recorded refused), C(devices_inactive) those not active with their state (left out
      with O(skip_inactive=true), else counted and warned about); C(devices_inactive) is null without O(account_name).
  returned: in check mode
  type: dict
  sample: {wave: 1, devices: 9, first: [{kind: mdn, id: "5550000042"}], devices_unknown: [],
           devices_inactive: [{kind: mdn, id: "5550000007", state: suspend}]}
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.campaign import step
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, ThingSpaceModule
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import ENCODINGS

FILTERS = ["group_name", "service_plan", "custom_fields"]


def run(module):
    ledger = Ledger(module.ledger_location, read_only=module.check_mode)
    try:
        return step(module.params, module.client, ledger, service_scope(module.api_url), check_mode=module.check_mode)
    finally:
        ledger.close()


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        account_name=dict(type="str"),
        devices=dict(type="list", elements="dict"),
        devices_file=dict(type="path"),
        group_name=dict(type="str"),
        service_plan=dict(type="str"),
        custom_fields=dict(type="dict"),
        sms_message=dict(type="str"),
        data_encoding=dict(type="str", choices=list(ENCODINGS), default="7-bit"),
        waves=dict(type="list", elements="raw"),
        success=dict(type="str", choices=["delivered", "replied"]),
        reply_pattern=dict(type="str"),
        reply_error_pattern=dict(type="str"),
        success_threshold=dict(type="str"),
        wave_timeout=dict(type="int"),
        abort=dict(type="list", elements="dict"),
        max_per_minute=dict(type="int"),
        skip_inactive=dict(type="bool"),
        fail_on_abort=dict(type="bool", default=True),
        state=dict(type="str", choices=["started", "paused", "aborted"], default="started"),
        wait=dict(type="str", choices=["none", "gate"], default="none"),
        wait_timeout=dict(type="int", default=600),
        **LEDGER_ARGUMENT_SPEC,
    )
    module = ThingSpaceModule(argument_spec, supports_check_mode=True,
                              mutually_exclusive=[["devices", "devices_file"]] + [[devices, f] for devices in ("devices", "devices_file") for f in FILTERS])
    module.run(run)


if __name__ == "__main__":
    main()
