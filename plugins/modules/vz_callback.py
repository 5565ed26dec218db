#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_callback
short_description: Register or deregister a ThingSpace callback listener
version_added: 0.1.0
description:
  - Makes an account's registration for one callback service match the task, using
    C(GET), C(POST) and C(DELETE /api/m2m/v1/callbacks/{accountName}).
  - Idempotent. The registration is compared with the listed one and changed only when it differs.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.account
  - thingspace.m2m.listener
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description: Reads the registrations and reports what would change, without changing it.
    support: full
  diff_mode:
    description: Shows the registration before and after (passwords masked).
    support: full
notes:
  - The ledger options are accepted, and not used, so that C(module_defaults) for the group C(thingspace.m2m.thingspace)
    that set them reach this module.
options:
  service_name:
    description:
      - The callback service. V(EnhancedConnectivityService) carries SMS from devices and the "sent" notices of
        M(thingspace.m2m.vz_sms_send); V(SMSDeliveryConfirmation) carries delivery results.
    type: str
    required: true
    choices:
      - AlertService
      - CarrierService
      - DevicePRLInformation
      - DeviceProfileService
      - DeviceService
      - DeviceSuspensionStatus
      - DeviceUsage
      - EnhancedConnectivityService
      - ExternalProvisioningChanges
      - NiddService
      - PromoChanges
      - ResumeTrackingNotification
      - SMSDeliveryConfirmation
      - StateService
  callback_url:
    description:
      - URL of the listener (C(http) or C(https)). Required with O(state=present). ThingSpace accepts the ports 80,
        443, 9001-9006, 50551-50559 and 28200-28220.
    type: str
    aliases: [url]
  state:
    description: Whether the service should be registered.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: thingspace.m2m.vz_sms_start_callbacks
"""

EXAMPLES = r"""
- name: Receive delivery confirmations of sent SMS
  thingspace.m2m.vz_callback:
    account_name: "0000123456-00001"
    service_name: SMSDeliveryConfirmation
    callback_url: https://iot.example.com:9002/thingspace/0000123456-00001/SMSDeliveryConfirmation
    callback_username: thingspace
    callback_password: "{{ vault_listener_password }}"

- name: Stop device usage callbacks
  thingspace.m2m.vz_callback:
    account_name: "0000123456-00001"
    service_name: DeviceUsage
    state: absent
"""

RETURN = r"""
listener:
  description: The registration after the task (in check mode, as it would be); empty when absent. No password.
  returned: always
  type: dict
  sample: {service_name: SMSDeliveryConfirmation, url: "https://iot.example.com:9002/thingspace/0000123456-00001/SMSDeliveryConfirmation", username: thingspace}
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import SERVICE_NAMES, ensure_listener, listener_warnings, remove_listener
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, LISTENER_ARGUMENT_SPEC, ThingSpaceModule


def apply(module):
    p = module.params
    if p["state"] == "present":
        changed, diff = ensure_listener(
            module.client, p["account_name"], p["service_name"], p["callback_url"], p["callback_username"], p["callback_password"],
            check_mode=module.check_mode,
        )
    else:
        changed, diff = remove_listener(module.client, p["account_name"], p["service_name"], check_mode=module.check_mode)
    after = diff["after"]
    listener = {"service_name": p["service_name"], "url": after["url"], "username": after["username"]} if after else {}
    warnings = listener_warnings(p["callback_url"], p["callback_password"]) if p["state"] == "present" else []
    return {"changed": changed, "diff": diff, "listener": listener, "warnings": warnings}


def main():
    argument_spec = dict(
        account_name=dict(type="str", required=True),
        service_name=dict(type="str", required=True, choices=list(SERVICE_NAMES)),
        callback_url=dict(type="str", aliases=["url"]),
        **LISTENER_ARGUMENT_SPEC,
        state=dict(type="str", choices=["present", "absent"], default="present"),
        **LEDGER_ARGUMENT_SPEC,
    )
    module = ThingSpaceModule(argument_spec, supports_check_mode=True, required_if=[["state", "present", ["callback_url"]]])
    module.run(apply)


if __name__ == "__main__":
    main()
