#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_start_callbacks
short_description: Deliver an account's mobile-originated SMS to its callback listener
version_added: 0.1.0
description:
  - Makes sure the account's C(EnhancedConnectivityService) listener is registered (when O(callback_url) is given;
    registered or replaced only when it differs), then calls C(PUT /api/m2m/v1/sms/{accountName}/startCallbacks),
    which sends the SMS queued from devices to that listener.
  - The PUT is harmless to repeat and runs on every call, so queued messages are always flushed. The API does not
    tell whether callbacks were already started, so RV(ignore:changed) is true when the registration changed or
    when this is the first start the ledger records for the account.
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
    description: Reads the registration and reports what would change; neither registers nor starts.
    support: full
  diff_mode:
    description: Shows the listener registration before and after (passwords masked).
    support: full
options:
  callback_url:
    description:
      - URL of the listener that receives the SMS (C(http) or C(https)). ThingSpace accepts the ports 80, 443,
        9001-9006, 50551-50559 and 28200-28220.
      - When omitted, the registration is left as it is and only the start is issued.
    type: str
seealso:
  - module: thingspace.m2m.vz_callback
  - module: thingspace.m2m.vz_sms_receive
"""

EXAMPLES = r"""
- name: Register the listener and deliver queued device SMS to it
  thingspace.m2m.vz_sms_start_callbacks:
    account_name: "0000123456-00001"
    callback_url: https://iot.example.com:9002/thingspace/0000123456-00001/EnhancedConnectivityService
    callback_username: thingspace
    callback_password: "{{ vault_listener_password }}"

- name: Flush the queue to the listener registered earlier
  thingspace.m2m.vz_sms_start_callbacks:
    account_name: "0000123456-00001"
"""

RETURN = r"""
registration_changed:
  description: Whether the EnhancedConnectivityService listener was (or in check mode would be) registered or replaced.
  returned: always
  type: bool
  sample: false
first_start:
  description: Whether the ledger had no start recorded for this account before.
  returned: always
  type: bool
  sample: true
started:
  description: Whether the start was issued and the API answered C(success). False in check mode.
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import SMS_SERVICE, ensure_listener, listener_warnings
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, account_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, LISTENER_ARGUMENT_SPEC, ThingSpaceModule


def start(module):
    p = module.params
    scope = account_scope(module.api_url, p["account_name"])
    registration_changed, diff = False, {"before": {}, "after": {}}
    # Opened first: a ledger that cannot be reached fails the task before any request.
    ledger = Ledger(module.ledger_location, read_only=module.check_mode)
    try:
        if p["callback_url"]:
            registration_changed, diff = ensure_listener(
                module.client, p["account_name"], SMS_SERVICE, p["callback_url"], p["callback_username"], p["callback_password"],
                check_mode=module.check_mode,
            )
        if module.check_mode:
            first_start, started = not ledger.has_started(scope), False
        else:
            started = module.client.start_callbacks(p["account_name"])
            first_start = ledger.record_start(scope)
    finally:
        ledger.close()
    return {
        "changed": registration_changed or first_start,
        "registration_changed": registration_changed,
        "first_start": first_start,
        "started": started,
        "diff": diff,
        "warnings": listener_warnings(p["callback_url"], p["callback_password"]) if p["callback_url"] else [],
    }


def main():
    argument_spec = dict(
        account_name=dict(type="str", required=True),
        callback_url=dict(type="str"),
        **LISTENER_ARGUMENT_SPEC,
        **LEDGER_ARGUMENT_SPEC,
    )
    module = ThingSpaceModule(argument_spec, supports_check_mode=True, required_by={"callback_username": "callback_url", "callback_password": "callback_url"})
    module.run(start)


if __name__ == "__main__":
    main()
