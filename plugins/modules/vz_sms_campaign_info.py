#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_campaign_info
short_description: Report staged SMS campaigns from the ledger, list the devices of a state, write an HTML report
version_added: 0.2.0
description:
  - Reads the campaigns of M(thingspace.m2m.vz_sms_campaign) from the ledger and returns the same figures a step
    returns (RV(campaign_state), RV(wave), RV(waves), RV(sent), RV(delivered), RV(replied), RV(failures), RV(pending),
    RV(abort_reason)), for one campaign (O(name)) or for every campaign of O(api_url) (RV(campaigns)).
  - The figures are those the next step would find, each device's state brought forward from the sends, delivery
    callbacks and replies the ledger holds and from O(thingspace.m2m.vz_sms_campaign#module:wave_timeout), the abort
    criteria and the gate decided, at the time of the task. Nothing is written to the ledger and nothing is sent, so a
    campaign that would abort at its next step is reported V(aborted) here while the ledger still records it running.
  - O(states) lists the campaign's devices in those states (RV(devices), as M(thingspace.m2m.vz_sms_send) and
    M(thingspace.m2m.vz_sms_campaign) take them), for example every V(timed_out) device, to feed a retry campaign.
  - O(report) writes a self-contained HTML page (inline CSS and SVG, no script; its Content-Security-Policy forbids
    loading anything, so it opens offline and from a mail attachment) with the campaign's state and abort reason, a chart
    of the devices sent, delivered, replied and failed over time with the first send of each wave and the abort point,
    the gate of each wave; and a CSV of every device (O(report_csv)).
  - Fails, naming the ledger, when there is no ledger at O(ledger_path) (or in O(ledger_url)'s O(ledger_schema)), and
    when O(name) is no campaign of O(api_url) (naming the API URLs that have one of that name). Reading never creates
    a ledger.
  - Makes no ThingSpace request. It takes the options of the action group C(thingspace.m2m.thingspace) (credentials,
    transport, O(account_name)), so that C(module_defaults) for the group reach it, and uses only O(api_url),
    O(state_dir) and the ledger options.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description:
      - Reads as in normal mode; O(report) is not written (RV(report_files) names the files with C(written=false)).
    support: full
  diff_mode:
    description: No diff.
    support: none
options:
  name:
    description:
      - The campaign, as given to M(thingspace.m2m.vz_sms_campaign). Without it, every campaign of O(api_url) is
        reported in RV(campaigns), oldest first.
    type: str
  states:
    description:
      - Return the devices of the campaign in these states, in the campaign's order, in RV(devices) (each C({kind, id}))
        and RV(device_details) (with wave, state, request id and times). Needs O(name).
    type: list
    elements: str
    choices: [pending, unconfirmed, sent, delivered, replied, reply_error, undelivered, expired, rejected, timed_out, refused, skipped]
  report:
    description:
      - Path of the HTML report of the campaign to write (replaced at once if it exists; its directory must exist).
        Needs O(name). Written on the host that runs the module, the controller in the usual C(localhost) play.
      - The page links to the CSV by its path relative to the page, so keep both together when moving them.
      - The task reports C(changed) when it writes the report (in check mode, when it would).
    type: path
  report_csv:
    description:
      - Path of the per-device CSV (columns C(kind), C(id), C(wave), C(state), C(request_id), C(sent_at),
        C(delivered_at), C(finished_at); times ISO 8601 UTC). Default the path of O(report) with the suffix C(.csv)
        (C(rollout.html) gives C(rollout.csv)).
      - A cell that would start with C(=), C(+), C(-) or C(@) is written with a leading C(') so that a spreadsheet does
        not run it as a formula.
    type: path
  api_url:
    description:
      - The ThingSpace base URL the campaign used; the ledger keeps the campaigns of each API URL apart.
      - If not set, the environment variable E(THINGSPACE_API_URL) is used.
    type: str
    default: https://thingspace.verizon.com
  account_name:
    description:
      - Not used (a campaign records its account). Accepted so that C(module_defaults) for the group
        C(thingspace.m2m.thingspace) that set it reach this module.
    type: str
notes:
  - Delivery states and replies reach the ledger from the event source C(thingspace.m2m.callbacks) and from
    M(thingspace.m2m.vz_sms_receive); they and the campaign must use the same ledger.
seealso:
  - module: thingspace.m2m.vz_sms_campaign
  - module: thingspace.m2m.vz_sms_delivery_info
"""

EXAMPLES = r"""
- name: Where the rollout stands, with a report to attach to the change ticket
  thingspace.m2m.vz_sms_campaign_info:
    api_url: "{{ thingspace_api_url }}"
    name: apn-2026-12
    report: /var/tmp/apn-2026-12.html  # and /var/tmp/apn-2026-12.csv
  register: rollout

- name: Every device that timed out
  thingspace.m2m.vz_sms_campaign_info:
    api_url: "{{ thingspace_api_url }}"
    name: apn-2026-12
    states: [timed_out]
  register: silent

- name: Retry them in a campaign of their own
  thingspace.m2m.vz_sms_campaign:
    api_url: "{{ thingspace_api_url }}"
    name: apn-2026-12-retry-1
    account_name: "0000123456-00001"
    devices: "{{ silent.devices }}"
    sms_message: "APN=iot.example"
    waves: ["100%"]
  when: silent.devices | length > 0

- name: Every campaign of this API URL
  thingspace.m2m.vz_sms_campaign_info:
    api_url: "{{ thingspace_api_url }}"
  register: all_campaigns

- name: Show their states
  ansible.builtin.debug:
    msg: "{{ all_campaigns.campaigns | map(attribute='campaign_state') | list }}"
"""

RETURN = r"""
msg:
  description: The campaign's state, wave and figures; without O(name), how many campaigns and in which states.
  returned: always
  type: str
  sample: "Campaign apn-2026-12: aborted, wave 3 of 3; 40 of 40 devices sent, 24 delivered, 9 replied, 7 failed, 0 pending"
campaigns:
  description:
    - Each campaign reported (one with O(name); every campaign of O(api_url), oldest first, without it), with the
      figures below (C(campaign), C(campaign_state), C(wave), C(waves_total), C(devices_total), C(waves), C(sent),
      C(unconfirmed), C(delivered), C(replied), C(failures), C(pending), C(abort_reason)).
  returned: always
  type: list
  elements: dict
  sample:
    - {campaign: apn-2026-12, campaign_state: waiting, wave: 2, waves_total: 3, devices_total: 5000, sent: 510, unconfirmed: 0,
       delivered: 495, replied: 0, pending: 4490, failures: {undelivered: 3, expired: 0, rejected: 0, timed_out: 2, reply_error: 0, refused: 0},
       abort_reason: null, waves: []}
campaign:
  description: The campaign's name.
  returned: with O(name)
  type: str
  sample: apn-2026-12
campaign_state:
  description: V(running) (devices of the current wave to send), V(waiting) (its gate undecided), V(paused), V(completed) or V(aborted).
  returned: with O(name)
  type: str
  sample: waiting
wave:
  description: The current wave, from 1.
  returned: with O(name)
  type: int
  sample: 2
waves_total:
  description: How many waves the campaign has.
  returned: with O(name)
  type: int
  sample: 3
devices_total:
  description: Devices of the frozen selection.
  returned: with O(name)
  type: int
  sample: 5000
waves:
  description:
    - Per wave, its figures and its gate (C(state) V(passed), V(open), V(failed) or V(not_started); C(needed) successes,
      C(succeeded)), as M(thingspace.m2m.vz_sms_campaign) returns them.
  returned: with O(name)
  type: list
  elements: dict
  sample:
    - {wave: 1, devices: 10, sent: 10, unconfirmed: 0, delivered: 10, replied: 0, pending: 0,
       failures: {undelivered: 0, expired: 0, rejected: 0, timed_out: 0, reply_error: 0, refused: 0}, gate: {state: passed, needed: 10, succeeded: 10}}
sent:
  description: Devices of the campaign sent so far (including unconfirmed ones).
  returned: with O(name)
  type: int
  sample: 510
unconfirmed:
  description: Devices whose send is unconfirmed (no answer came, or a run died while sending).
  returned: with O(name)
  type: int
  sample: 0
delivered:
  description: Devices Delivered (and not replied).
  returned: with O(name)
  type: int
  sample: 495
replied:
  description: Devices that replied (matching the campaign's reply_pattern).
  returned: with O(name)
  type: int
  sample: 0
failures:
  description:
    - Failed devices by type (V(undelivered), V(expired), V(rejected), V(timed_out), V(reply_error), V(refused)).
    - V(refused) are devices ThingSpace refused as not in the account; they got no SMS.
  returned: with O(name)
  type: dict
  sample: {undelivered: 3, expired: 0, rejected: 0, timed_out: 2, reply_error: 0, refused: 0}
skipped_inactive:
  description: Devices the campaign's O(thingspace.m2m.vz_sms_campaign#module:skip_inactive=true) left out, as not active when their batch went.
  returned: with O(name)
  type: int
  sample: 0
pending:
  description: Devices not sent yet.
  returned: with O(name)
  type: int
  sample: 4490
abort_reason:
  description:
    - Why the campaign was aborted; null while it is not. As M(thingspace.m2m.vz_sms_campaign) returns it.
  returned: with O(name)
  type: dict
  sample: {criterion: {failure: any, threshold: "5%", min_devices: 20}, gate: null, device: {kind: mdn, id: "5550000042"},
           finished: 40, failed: 2, at: "2026-12-07T03:12:09Z"}
devices:
  description: The devices in O(states), each C({kind, id}), in the campaign's order; give it as O(thingspace.m2m.vz_sms_send#module:devices).
  returned: with O(states)
  type: list
  elements: dict
  sample: [{kind: mdn, id: "5550000042"}]
device_details:
  description:
    - The devices in O(states) with their C(wave), C(state), C(request_id), C(sent_at) and C(finished_at) (ISO 8601 UTC,
      null when not yet).
  returned: with O(states)
  type: list
  elements: dict
  sample: [{kind: mdn, id: "5550000042", wave: 2, state: timed_out, request_id: "d1f08526-5443-4054-9a29-4456490ea9f8",
            sent_at: "2026-12-07T03:02:00Z", finished_at: "2026-12-07T04:02:00Z"}]
report_files:
  description: The report's files, C(html) and C(csv) (absolute paths), and C(written) (false in check mode).
  returned: with O(report)
  type: dict
  sample: {html: /var/tmp/apn-2026-12.html, csv: /var/tmp/apn-2026-12.csv, written: true}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign
from ansible_collections.thingspace.m2m.plugins.module_utils.campaign_report import csv_path, write_report
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC, ledger_location, run_ledger_module


def info(module):
    params = module.params
    files = _report_files(params)
    ledger = Ledger(ledger_location(params), read_only=True)
    try:
        if not ledger.exists:
            raise ThingSpaceError("There is no ledger at %s, so no campaign was recorded there. Check ledger_path, ledger_url, ledger_schema and "
                                  "state_dir: vz_sms_campaign must use this ledger" % ledger.where)
        scope, now = service_scope(params["api_url"]), time.time()
        if params["name"] is None:
            return _every_campaign(module, ledger, scope, now)
        found = campaign.reading(ledger, scope, params["name"], now, whole=params["states"] is not None or bool(files))
        if found is None:
            elsewhere = campaign.scopes(ledger, params["name"])
            hint = ("; a campaign of that name is recorded under %s. If that is the same service (localhost and 127.0.0.1, say), set api_url to it"
                    % ", ".join(elsewhere)) if elsewhere else "; its campaigns there are: %s" % (", ".join(campaign.names(ledger, scope)) or "none")
            raise ThingSpaceError("Campaign %r: the ledger %s has no campaign of that name for api_url %s%s" % (params["name"], ledger.where, scope, hint))
        figures = dict(campaign.figures(found), campaign=found.name)
        result = dict(figures, campaigns=[figures], changed=False, msg=_summary(figures))
        if params["states"] is not None:
            result["device_details"] = campaign.devices(found, params["states"])
            result["devices"] = [{"kind": device["kind"], "id": device["id"]} for device in result["device_details"]]
        if files:
            result.update(changed=True, report_files=dict(files, written=not module.check_mode))
            if not module.check_mode:
                write_report(ledger, found, figures, files["html"], files["csv"], now)
        return result
    finally:
        ledger.close()


def _report_files(params):
    """The report's paths, checked before the ledger is read; {} without ``report``."""
    if params["report"] is None:
        return {}
    files = {"html": os.path.abspath(params["report"]), "csv": os.path.abspath(csv_path(params["report"], params["report_csv"]))}
    if files["html"] == files["csv"]:
        raise ThingSpaceError("report_csv: %s is the report's own path; give the CSV another path, or leave report_csv out (%s)"
                              % (files["csv"], csv_path(files["html"])))
    for option, path in (("report", files["html"]), ("report_csv", files["csv"])):
        if not os.path.isdir(os.path.dirname(path)):
            raise ThingSpaceError("%s: the directory %s does not exist; create it first (nothing was read or written)" % (option, os.path.dirname(path)))
    return files


def _every_campaign(module, ledger, scope, now):
    figures = [dict(campaign.figures(campaign.reading(ledger, scope, name, now, whole=False)), campaign=name) for name in campaign.names(ledger, scope)]
    elsewhere = {other: count for other, count in campaign.scopes(ledger).items() if other != scope}
    if elsewhere:
        module.warn("The ledger %s also holds campaigns under other API URLs (%s); this task reads only those of %s. If that is the same service, "
                    "set api_url to it" % (ledger.where, ", ".join("%s: %d" % item for item in elsewhere.items()), scope))
    states = {}
    for entry in figures:
        states[entry["campaign_state"]] = states.get(entry["campaign_state"], 0) + 1
    return dict(changed=False, campaigns=figures, msg="%d campaign(s) under %s%s" % (
        len(figures), scope, (": " + ", ".join("%d %s" % (count, state) for state, count in sorted(states.items()))) if states else ""))


def _summary(figures):
    return "Campaign %s: %s, wave %d of %d; %d of %d devices sent, %d delivered, %d replied, %d failed, %d pending" % (
        figures["campaign"], figures["campaign_state"], figures["wave"], figures["waves_total"], figures["sent"], figures["devices_total"],
        figures["delivered"], figures["replied"], sum(figures["failures"].values()), figures["pending"])


def main():
    argument_spec = dict(
        COMMON_ARGUMENT_SPEC,
        name=dict(type="str"),
        states=dict(type="list", elements="str", choices=list(campaign.DEVICE_STATES)),
        report=dict(type="path"),
        report_csv=dict(type="path"),
        account_name=dict(type="str"),
        **LEDGER_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, required_by={"states": "name", "report": "name", "report_csv": "report"})
    run_ledger_module(module, info)


if __name__ == "__main__":
    main()
