# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: devices
short_description: The devices of a ThingSpace M2M account as Ansible hosts
version_added: 0.2.0
author:
  - thingspace.m2m maintainers (@thingspace-m2m)
description:
  - Reads every device of an account (every page of the device list), optionally filtered on the server, and adds
    each device as a host named by its first identifier of O(hostnames).
  - Host variables, all prefixed C(thingspace_), are C(thingspace_device_ids) (kind to identifier),
    C(thingspace_account), C(thingspace_state), C(thingspace_service_plan), C(thingspace_groups),
    C(thingspace_custom_fields) (C(CustomFieldN) to value), C(thingspace_ip_address) where ThingSpace gives one and,
    with a ledger (O(ledger_path) or O(ledger_url)), C(thingspace_last_sms) (C(key), C(time) and C(state), the delivery
    state) and C(thingspace_last_reply) (C(text), C(time)), or null when the ledger has none for the device.
  - Each device joins the group C(<group_prefix>group_<device group>) of each of its device groups and
    C(<group_prefix>state_<state>), sanitized (characters other than letters, digits and C(_) become C(_)), for
    example C(group_east_wave), C(state_active), C(state_pending_activation).
  - The source file's name must end in C(.thingspace.yml) or C(.thingspace.yaml).
  - The connection options, their environment variables and the token cache are those of the modules, so an
    inventory and the play that uses it log in once.
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - thingspace.m2m.connection
  - thingspace.m2m.connection.plugin
  - thingspace.m2m.ledger
  - thingspace.m2m.ledger.plugin
options:
  plugin:
    description: The name of this plugin; it must be V(thingspace.m2m.devices) for the file to be read by it.
    type: str
    required: true
    choices: [thingspace.m2m.devices]
  account_name:
    description: Billing account whose devices are read, with its leading zeros (quote it in YAML).
    type: str
    required: true
  filters:
    description:
      - Server-side filters of the device list; a device must match all that are given.
    type: dict
    default: {}
    suboptions:
      group_name:
        description: Only the devices of this device group (matched exactly).
        type: str
      service_plan:
        description: Only the devices on this service plan (matched exactly).
        type: str
      custom_fields:
        description: C(CustomField1) to C(CustomField5) and the whole value each must have (case is ignored by ThingSpace).
        type: dict
      state:
        description: Only the devices in this state, as ThingSpace names it (V(active), V(suspend), V(deactive), V(pre-active)...).
        type: str
  hostnames:
    description:
      - Identifier kinds, in order of preference; the first the device has names its host.
      - A device without any of them is left out of the inventory and named in a warning.
    type: list
    elements: str
    default: [iccid, imei, meid, esn, mdn]
  group_prefix:
    description: Prefix of the default group names (C(group_*) and C(state_*)).
    type: str
    default: ""
  ledger_path:
    description:
      - SQLite ledger whose records give C(thingspace_last_sms) and C(thingspace_last_reply).
      - If not set, the environment variable E(THINGSPACE_LEDGER_PATH) is used. Without it (and without
        O(ledger_url)) no ledger is read; unlike the modules, the plugin does not use C(ledger.sqlite3) in O(state_dir).
      - The ledger is only read. A ledger that does not exist (yet) fails the inventory, naming it.
notes:
  - The cache (O(cache)) keeps the hosts with their variables and default groups as the device list gave them; a cache
    hit makes no request and does not read the device list again. The ledger is read on every run. A change of
    O(hostnames) or O(group_prefix) reads the device list again.
"""

EXAMPLES = r"""
# fleet.thingspace.yml: every device of the account, credentials from THINGSPACE_* variables
plugin: thingspace.m2m.devices
account_name: "0000123456-00001"

---
# east.thingspace.yml: the active devices of one device group, with the ledger, cached for an hour
plugin: thingspace.m2m.devices
account_name: "0000123456-00001"
filters:
  group_name: east-wave
  state: active
ledger_path: ~/.ansible/thingspace/ledger.sqlite3
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/thingspace-inventory
cache_timeout: 3600
keyed_groups:
  - key: thingspace_service_plan
    prefix: plan
compose:
  firmware: thingspace_custom_fields.CustomField2 | default('unknown')
groups:
  never_answered: thingspace_last_reply is none
"""

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.thingspace.m2m.plugins.module_utils.devices import (
    cache_entry,
    cached_hosts,
    inventory_hosts,
    ledger_vars,
    nameless_warning,
    read_activity,
    read_devices,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.module import COMMON_ARGUMENT_SPEC, LEDGER_ARGUMENT_SPEC, ThingSpaceTask

SOURCE_SUFFIXES = (".thingspace.yml", ".thingspace.yaml")


class _Task(ThingSpaceTask):
    """The modules' checks at start and client, for the plugin's options; a failure is a parser error of the source."""

    def __init__(self, plugin):
        self.params = {name: plugin.get_option(name) for name in (*COMMON_ARGUMENT_SPEC, *LEDGER_ARGUMENT_SPEC, "account_name")}
        self.no_log_values = set()
        self._start()

    def fail_json(self, msg, **_result):
        raise AnsibleParserError("thingspace.m2m.devices: %s" % msg)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "thingspace.m2m.devices"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(SOURCE_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        task = _Task(self)
        key = self.get_cache_key(path)
        hostnames, prefix = self.get_option("hostnames"), self.get_option("group_prefix")
        found = cached_hosts(self._cache.get(key), hostnames, prefix) if self.get_option("cache") and cache else None
        try:
            if found is None:
                found = inventory_hosts(read_devices(task.client, self.get_option("account_name"), self.get_option("filters")), hostnames, prefix)
                if self.get_option("cache"):
                    self._cache[key] = cache_entry(*found, hostnames, prefix)
            activity = read_activity(task.ledger_location) if task.params["ledger_path"] or task.params["ledger_url"] else None
        except ThingSpaceError as error:
            raise AnsibleParserError("thingspace.m2m.devices: %s" % error.message)
        hosts, nameless = found
        if nameless:
            self.display.warning(nameless_warning(nameless, hostnames))
        self._populate(hosts, activity)

    def _populate(self, hosts, activity):
        """Each host with its variables (the ledger's too, with ``activity``) and groups, then the Constructable options.
        The cached hosts are not changed: the ledger's variables are read on every run."""
        compose, groups, keyed_groups, strict = (self.get_option(name) for name in ("compose", "groups", "keyed_groups", "strict"))
        added = set()
        for name, variables, host_groups in hosts:
            self.inventory.add_host(name)
            if activity is not None:
                variables = dict(variables, **ledger_vars(variables, activity))
            for variable, value in variables.items():
                self.inventory.set_variable(name, variable, value)
            for group in host_groups:
                if group not in added:
                    self.inventory.add_group(group)
                    added.add(group)
                self.inventory.add_child(group, name)
            if compose or groups or keyed_groups:
                self._set_composite_vars(compose, variables, name, strict=strict)
                self._add_host_to_composed_groups(groups, variables, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, variables, name, strict=strict)
