# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The floor of any inventory plugin for bench_inventory.py: the hosts, variables and groups of inventory_floor.py's JSON
(a ``*.hosts.json`` file) added to Ansible's inventory as a plugin must add them (add_host, add_group, add_child, one
set_variable per variable), nothing else: no request, no checks, no cache, no Constructable."""

from __future__ import annotations

import json

from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: bench_hosts
short_description: The hosts of an inventory_floor.py JSON file (benchmark only)
description: [Adds the hosts, variables and groups of a C(*.hosts.json) file written by inventory_floor.py.]
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "bench_hosts"

    def verify_file(self, path):
        return path.endswith(".hosts.json")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        with open(path, encoding="utf-8") as handle:
            listing = json.load(handle)
        for name, variables in listing["_meta"]["hostvars"].items():
            self.inventory.add_host(name)
            for variable, value in variables.items():
                self.inventory.set_variable(name, variable, value)
        for group, members in listing.items():
            if group not in ("_meta", "all"):
                self.inventory.add_group(group)
                for name in members["hosts"]:
                    self.inventory.add_child(group, name)
