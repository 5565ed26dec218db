#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_sms_receive
short_description: Read the mobile-originated SMS queued for an account
version_added: 0.1.0
description:
  - Drains the queue of SMS that devices sent to the account and that no callback listener took, with
    C(GET /api/m2m/v1/sms/{accountName}/history), following the API's C(next) paging.
  - Reading acknowledges. A block is removed from the queue when the next block is asked for, and the last block
    once it is returned. The messages this module returns are therefore consumed; a later run does not get them again.
  - Messages may arrive out of order. When a read fails, the messages read so far are returned with the failure; the
    last block among them may be delivered again later (it is not known whether the failed read acknowledged it).
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.account
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description: Reading consumes the messages, so the task is skipped in check mode.
    support: none
  diff_mode:
    description: Not applicable.
    support: none
notes:
  - The ledger options are accepted, and not used, so that C(module_defaults) for the group C(thingspace.m2m.thingspace)
    that set them reach this module.
options:
  max_messages:
    description:
      - Stop once at least this many messages are acknowledged. The API works in blocks of up to 100, so up to 99 more
        may be returned; a block fetched beyond that is not acknowledged and stays queued for the next run.
      - V(0) reads until the queue is empty.
    type: int
    default: 0
seealso:
  - module: thingspace.m2m.vz_sms_start_callbacks
"""

EXAMPLES = r"""
- name: Read what devices sent
  thingspace.m2m.vz_sms_receive:
    account_name: "0000123456-00001"
  register: inbox

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.device_ids[0].id }}: {{ item.message }}"
  loop: "{{ inbox.messages }}"
"""

RETURN = r"""
messages:
  description: The consumed messages.
  returned: always
  type: list
  elements: dict
  contains:
    device_ids:
      description: Identifiers of the sending device.
      type: list
      elements: dict
      sample: [{kind: mdn, id: "5550000002"}]
    message:
      description: The SMS text.
      type: str
      sample: "TEMP=21.5"
    timestamp:
      description: When ThingSpace received it (ISO 8601).
      type: str
      sample: "2016-01-01T12:29:49-08:00"
more_queued:
  description: Whether messages stayed queued because O(max_messages) was reached.
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, ThingSpaceModule


def receive(module):
    account, limit = module.params["account_name"], module.params["max_messages"]
    if limit < 0:
        raise ThingSpaceError("max_messages: must be 0 (no limit) or more")
    consumed, unacknowledged, next_path = [], [], None
    while True:
        try:
            messages, next_path = module.client.sms_history(account, next_path)
        except ThingSpaceError as error:
            # The failed read may have acknowledged the block in hand: return it too (it may come again, never lost).
            consumed.extend(unacknowledged)
            failure = "%s; the %d message(s) read before the failure are in 'messages' (the last %d may be delivered again)" % (
                error.message, len(consumed), len(unacknowledged))
            return {"changed": bool(consumed), "messages": consumed, "more_queued": True}, failure
        consumed.extend(unacknowledged)  # asking for this block acknowledged the previous one
        unacknowledged = [m.model_dump() for m in messages]
        if next_path is None:
            consumed.extend(unacknowledged)  # a last block is acknowledged once returned
            return {"changed": bool(consumed), "messages": consumed, "more_queued": False}
        if limit and len(consumed) >= limit:
            return {"changed": True, "messages": consumed, "more_queued": True}


def main():
    module = ThingSpaceModule(dict(account_name=dict(type="str", required=True), max_messages=dict(type="int", default=0), **LEDGER_ARGUMENT_SPEC))
    module.run(receive)


if __name__ == "__main__":
    main()
