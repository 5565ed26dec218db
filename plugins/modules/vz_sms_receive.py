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
  - Each message read is recorded in the ledger (the device SMS the event sources record, with the same identity, so an
    SMS drained here and also called back is recorded once) before the next block is asked for. Campaigns
    (M(thingspace.m2m.vz_sms_campaign)) read their devices' replies there. A ledger that cannot be opened fails the
    task before any message is read.
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
messages_recorded:
  description: How many of the messages were new to the ledger (the others, the callbacks source had recorded already).
  returned: always
  type: int
  sample: 12
"""

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import history_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.module import LEDGER_ARGUMENT_SPEC, ThingSpaceModule


def receive(module):
    account, limit = module.params["account_name"], module.params["max_messages"]
    if limit < 0:
        raise ThingSpaceError("max_messages: must be 0 (no limit) or more")
    # Opened before the first read: a ledger that cannot be opened fails the task before any message is consumed.
    recorder = StoreRecorder(module.ledger_location)
    try:
        return _drain(module.client, recorder, account, limit)
    finally:
        recorder.close()


def _drain(client, recorder, account, limit):
    """Read block after block, recording each in the ledger before asking for the next (which acknowledges it)."""
    consumed, unacknowledged, next_path, recorded = [], [], None, 0

    def result(more_queued):
        return {"changed": bool(consumed), "messages": consumed, "more_queued": more_queued, "messages_recorded": recorded}

    while True:
        try:
            messages, next_path = client.sms_history(account, next_path)
        except ThingSpaceError as error:
            # The failed read may have acknowledged the block in hand: return it too (it may come again, never lost).
            consumed.extend(unacknowledged)
            failure = "%s; the %d message(s) read before the failure are in 'messages' (the last %d may be delivered again)" % (
                error.message, len(consumed), len(unacknowledged))
            return result(True), failure
        consumed.extend(unacknowledged)  # asking for this block acknowledged the previous one
        unacknowledged = [m.model_dump() for m in messages]
        events = [history_event(account, message) for message in messages]
        try:
            new = recorder.unknown(events)
            recorder.record(events)
        except ThingSpaceError as error:
            if next_path is None:  # a last block is acknowledged once returned: it is in the result, not in the ledger
                consumed.extend(unacknowledged)
            return result(next_path is not None), ("The ledger could not record the device SMS read (%s); the %d message(s) in 'messages' are "
                                                   "consumed, %d of them recorded in the ledger%s" % (
                                                       error.message, len(consumed), recorded,
                                                       "; the block read last stays queued" if next_path is not None else ""))
        recorded += len(new)
        if next_path is None:
            consumed.extend(unacknowledged)  # a last block is acknowledged once returned
            return result(False)
        if limit and len(consumed) >= limit:
            return result(True)


def main():
    module = ThingSpaceModule(dict(account_name=dict(type="str", required=True), max_messages=dict(type="int", default=0), **LEDGER_ARGUMENT_SPEC))
    module.run(receive)


if __name__ == "__main__":
    main()
