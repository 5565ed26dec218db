#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vz_ledger_copy
short_description: Copy an SQLite ledger into a PostgreSQL ledger, so that its history moves with it
version_added: 0.2.0
description:
  - Copies every record of the SQLite ledger that M(thingspace.m2m.vz_sms_send) and
    M(thingspace.m2m.vz_sms_start_callbacks) wrote (each idempotency key with what it was used for, each device or
    selection with its state and request id, each callbacks start, each campaign with its devices), and the callbacks the event source
    C(thingspace.m2m.callbacks) recorded in it with the delivery state of each device, into the PostgreSQL ledger of
    O(ledger_url).
    After the copy, runs that use O(ledger_url) send nothing that the SQLite ledger knew was sent, and report what
    it knew was unconfirmed as unconfirmed.
  - Records the PostgreSQL ledger already holds are kept; running the copy again copies nothing more and reports
    no change. The PostgreSQL ledger is created when it does not exist yet.
  - Nothing is copied, and the task fails, when an idempotency key was used for another send in the PostgreSQL
    ledger than in the SQLite one, when a run is sending from the SQLite ledger (a batch in flight), or when there
    is no SQLite ledger at the path.
  - Makes no ThingSpace request. It takes the options of the action group C(thingspace.m2m.thingspace) (credentials,
    transport, O(api_url), O(account_name)), so that C(module_defaults) for the group reach it, and uses only
    O(state_dir) and the ledger options.
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
extends_documentation_fragment:
  - thingspace.m2m.connection
  - thingspace.m2m.ledger
  - thingspace.m2m.attributes
attributes:
  check_mode:
    description: Counts what would be copied; writes neither ledger and creates nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
options:
  ledger_path:
    description:
      - The SQLite ledger to copy.
      - If not set, the environment variable E(THINGSPACE_LEDGER_PATH) is used, then C(ledger.sqlite3) in O(state_dir),
        which is the ledger the modules used before O(ledger_url) was set.
      - It is checked as the modules check it (a link, another owner, a loose mode, an empty or damaged file fail
        the task), and a ledger of version 0.1.0 is migrated first, as any module run would do.
    type: path
  state_dir:
    description:
      - The directory of the SQLite ledger when O(ledger_path) is not set.
      - If not set, the environment variable E(THINGSPACE_STATE_DIR) is used, then C(~/.ansible/thingspace).
    type: path
    default: ~/.ansible/thingspace
  account_name:
    description:
      - Not used. Accepted so that C(module_defaults) for the group C(thingspace.m2m.thingspace) that set it reach this module.
    type: str
  ledger_url:
    description:
      - The PostgreSQL database to copy into, as the modules' O(thingspace.m2m.vz_sms_send#module:ledger_url).
      - If not set, the environment variable E(THINGSPACE_LEDGER_URL) is used.
      - Copy into the O(ledger_schema) that the playbooks will use.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Move the ledger of this controller into PostgreSQL (THINGSPACE_LEDGER_URL and THINGSPACE_LEDGER_PASSWORD set)
  thingspace.m2m.vz_ledger_copy:
  register: copied

- name: Copy a ledger kept on an AWX persistent volume
  thingspace.m2m.vz_ledger_copy:
    ledger_path: /runner/ledger/thingspace/ledger.sqlite3
    ledger_url: "postgresql://thingspace_ledger@db.example.com:5432/ops?sslmode=verify-full"
    ledger_password: "{{ vault_ledger_password }}"
"""

RETURN = r"""
msg:
  description: What was copied (in check mode, what would be), from where into where, in one sentence.
  returned: success
  type: str
  sample: >-
    Copied 48210 of 48210 send record(s), 3 of 3 callbacks start(s) and 120 of 120 callback(s) from
    /home/ops/.ansible/thingspace/ledger.sqlite3 into ops@db.example.com:5432/thingspace (schema thingspace)
idempotency_keys:
  description: Idempotency keys in the SQLite ledger.
  returned: success
  type: int
  sample: 12
sends:
  description: Send records (one per device, or per selection) in the SQLite ledger.
  returned: success
  type: int
  sample: 48210
sends_copied:
  description: Send records copied (in check mode, that would be copied); the others were in the PostgreSQL ledger already.
  returned: success
  type: int
  sample: 48210
starts:
  description: Callbacks starts in the SQLite ledger.
  returned: success
  type: int
  sample: 2
starts_copied:
  description: Callbacks starts copied (in check mode, that would be copied).
  returned: success
  type: int
  sample: 2
callbacks:
  description: Callbacks the event source recorded in the SQLite ledger.
  returned: success
  type: int
  sample: 96420
callbacks_copied:
  description:
    - Callbacks copied (in check mode, that would be copied). The delivery states are merged as the callbacks would
      have moved them, so a state the PostgreSQL ledger has already reached is kept.
  returned: success
  type: int
  sample: 96420
campaigns:
  description: Campaigns (M(thingspace.m2m.vz_sms_campaign)) in the SQLite ledger.
  returned: success
  type: int
  sample: 2
campaigns_copied:
  description:
    - Campaigns copied or merged (in check mode, that would be). A campaign the PostgreSQL ledger already has is merged
      device by device, each keeping the further of its two states; one created there with other options refuses the
      whole copy.
  returned: success
  type: int
  sample: 2
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.thingspace.m2m.plugins.module_utils.campaign import copy_campaigns
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import copy_deliveries
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC, ledger_location, run_ledger_module
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import LEDGER_NAME, state_path


def copy(module):
    source_path = module.params["ledger_path"] or state_path(module.params["state_dir"], LEDGER_NAME)
    if not os.path.lexists(source_path):
        raise ThingSpaceError("There is no SQLite ledger at %s; nothing was copied. Set ledger_path to the ledger to copy" % source_path)
    source = Ledger(source_path, read_only=module.check_mode)
    try:
        destination = Ledger(ledger_location(module.params), read_only=module.check_mode)
        try:
            copy_campaigns(source, destination, check_mode=True)  # a campaign created otherwise in each refuses the copy first
            counts = destination.copy_from(source, check_mode=module.check_mode)
            counts["callbacks"], counts["callbacks_copied"] = copy_deliveries(source, destination, check_mode=module.check_mode)
            counts["campaigns"], counts["campaigns_copied"] = copy_campaigns(source, destination, check_mode=module.check_mode)
        finally:
            destination.close()
    finally:
        source.close()
    copied = counts["sends_copied"] + counts["starts_copied"] + counts["callbacks_copied"] + counts["campaigns_copied"]
    verb = "Would copy" if module.check_mode else "Copied"
    msg = "%s %d of %d send record(s), %d of %d callbacks start(s) and %d of %d callback(s) from %s into %s" % (
        verb, counts["sends_copied"], counts["sends"], counts["starts_copied"], counts["starts"], counts["callbacks_copied"], counts["callbacks"],
        source_path, destination.where)
    return dict(counts, changed=copied > 0, msg=msg)


def main():
    argument_spec = dict(COMMON_ARGUMENT_SPEC, account_name=dict(type="str"), **LEDGER_ARGUMENT_SPEC)
    argument_spec["ledger_url"] = dict(argument_spec["ledger_url"], required=True)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_ledger_module(module, copy)


if __name__ == "__main__":
    main()
