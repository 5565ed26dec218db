"""Issue 22's goals for the fleet as inventory, on the emulator's 100,000 devices in pages of 2,000 (50 pages):

- ``ansible-inventory --list --output`` with the thingspace.m2m.devices plugin, at most 1.5 x the floor, a bare
  ``requests`` script that pages the same list and writes the same JSON (inventory_floor.py);
- the same with the cache warm (``cache: true``, jsonfile), under 1 s;
- ``vz_device_info count_only: true`` over the 100,000 devices (one task, ansible-playbook), at most 1.2 x the floor.

Beside them, what ansible-core itself costs for the same hosts: ``ansible-inventory --list`` over the floor's hosts,
variables and groups added by a plugin that does nothing else (inventory_plugins/bench_hosts.py), and over the same
inventory as a static JSON file (ansible.builtin.yaml).

Each is run ``rounds`` times, order reversed every other round; medians of wall and CPU time. Every run starts without
the token cache (each logs in once, as the floor does); the device-list requests of each run are counted.
"""

from __future__ import annotations

import json
import os
import shutil

from bench_emulator import ACCOUNT, DEVICES
from common import BENCH_DIR, PYTHON, playbook, summary, timed_run

PAGE = 2000
GOALS = {"inventory": 1.5, "count_only": 1.2, "cache_hit_seconds": 1.0}
# One request per page; none for a cache hit nor for the runs without the plugin.
EXPECTED_REQUESTS = {"floor": 50, "inventory": 50, "count_only": 50}


def _write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _static_inventory(listing):
    """The floor's JSON (``ansible-inventory --list`` shape) as a static inventory file of ansible.builtin.yaml."""
    children = {group: {"hosts": dict.fromkeys(members["hosts"])} for group, members in listing.items() if group not in ("_meta", "all")}
    return json.dumps({"all": {"hosts": listing["_meta"]["hostvars"], "children": children}})


def run(ctx, rounds):
    emulator, workdir = ctx["emulator"], ctx["workdir"]
    state_dir = os.path.join(workdir, "inventory-state")
    env = dict(ctx["env"], THINGSPACE_STATE_DIR=state_dir, ANSIBLE_INVENTORY_PLUGINS=os.path.join(BENCH_DIR, "inventory_plugins"),
               ANSIBLE_INVENTORY_ENABLED="bench_hosts,host_list,script,auto,yaml,ini,toml")
    emulator.config(devicePageSize=PAGE)
    source = _write(workdir, "fleet.thingspace.yml", 'plugin: thingspace.m2m.devices\naccount_name: "%s"\n' % ACCOUNT)
    cached = _write(workdir, "cached.thingspace.yml", 'plugin: thingspace.m2m.devices\naccount_name: "%s"\ncache: true\n'
                    'cache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\ncache_timeout: 3600\n' % (ACCOUNT, os.path.join(workdir, "cache")))
    count_play = _write(workdir, "count_only.yml", "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - thingspace.m2m.vz_device_info:\n"
                        '        account_name: "%s"\n        count_only: true\n      register: counted\n'
                        "    - ansible.builtin.assert:\n        that: counted.count == %d\n" % (ACCOUNT, DEVICES))
    inventory_cli = os.path.join(os.path.dirname(PYTHON), "ansible-inventory")
    logs = os.path.join(workdir, "logs")

    def listing(name, path, out):
        timing = timed_run([inventory_cli, "-i", path, "--list", "--output", out], env, workdir, os.path.join(logs, name + ".log"))
        with open(out, encoding="utf-8") as handle:
            hosts = len(json.load(handle)["_meta"]["hostvars"])
        if hosts != DEVICES:
            raise RuntimeError("%s: %d hosts, expected %d" % (name, hosts, DEVICES))
        return timing

    def floor(name):
        out = os.path.join(workdir, name + ".json")
        timing = timed_run([PYTHON, os.path.join(BENCH_DIR, "inventory_floor.py"), ACCOUNT, out], env, workdir, os.path.join(logs, name + ".log"))
        with open(out, encoding="utf-8") as handle:
            if len(json.load(handle)["_meta"]["hostvars"]) != DEVICES:
                raise RuntimeError("%s: not every device listed" % name)
        return timing

    floor("inventory-floor-prepare")
    with open(os.path.join(workdir, "inventory-floor-prepare.json"), encoding="utf-8") as handle:
        floor_listing = json.load(handle)
    plugin_source = _write(workdir, "fleet.hosts.json", json.dumps(floor_listing))
    static_source = _write(workdir, "static.json", _static_inventory(floor_listing))

    runs = {"floor": [], "inventory": [], "cache_hit": [], "count_only": [], "plugin_floor": [], "static": []}
    pages = {}
    order = list(runs)
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            emulator.reset()
            emulator.config(devicePageSize=PAGE)
            shutil.rmtree(state_dir, ignore_errors=True)
            name = "inventory-%s-%d" % (variant, index)
            if variant == "floor":
                runs[variant].append(floor(name))
            elif variant == "inventory":
                runs[variant].append(listing(name, source, os.path.join(workdir, name + ".json")))
            elif variant in ("plugin_floor", "static"):
                runs[variant].append(listing(name, plugin_source if variant == "plugin_floor" else static_source, os.path.join(workdir, name + ".json")))
            elif variant == "cache_hit":
                listing(name + "-fill", cached, os.path.join(workdir, name + "-fill.json"))
                emulator.reset()
                shutil.rmtree(state_dir, ignore_errors=True)
                runs[variant].append(listing(name, cached, os.path.join(workdir, name + ".json")))
            else:
                runs[variant].append(playbook(workdir, ctx["inventory"], count_play, env, name))
            pages[variant] = len(emulator.requests(path="/api/m2m/v1/devices/actions/list"))
            if pages[variant] != EXPECTED_REQUESTS.get(variant, 0):
                raise RuntimeError("%s: %d device-list requests, expected %d" % (name, pages[variant], EXPECTED_REQUESTS.get(variant, 0)))
    wall = {name: summary([t.wall for t in values]) for name, values in runs.items()}
    cpu = {name: summary([t.cpu for t in values]) for name, values in runs.items()}
    base = wall["floor"]["median"]
    return {"devices": DEVICES, "page": PAGE, "rounds": rounds, "wall": wall, "cpu": cpu, "device_list_requests": pages,
            "ratios": {"inventory": wall["inventory"]["median"] / base, "count_only": wall["count_only"]["median"] / base,
                       "inventory_plugin_floor": wall["inventory"]["median"] / wall["plugin_floor"]["median"],
                       "cache_hit_plugin_floor": wall["cache_hit"]["median"] / wall["plugin_floor"]["median"]},
            "goals": GOALS}


def summary_text(result):
    wall = result["wall"]
    return "\n".join([
        "inventory of %d devices in pages of %d (medians of %d rounds, wall / CPU s):" % (result["devices"], result["page"], result["rounds"]),
        *("  %-11s %6.2f / %6.2f  device-list requests %s" % (name, wall[name]["median"], result["cpu"][name]["median"],
                                                              result["device_list_requests"].get(name)) for name in wall),
        "  ansible-inventory / floor %.2f (goal <= %.1f); count_only / floor %.2f (goal <= %.1f); cache hit %.2f s (goal < %.1f s)" % (
            result["ratios"]["inventory"], GOALS["inventory"], result["ratios"]["count_only"], GOALS["count_only"], wall["cache_hit"]["median"],
            GOALS["cache_hit_seconds"]),
        "  against ansible-core's own cost (a plugin adding the same hosts and nothing else): ansible-inventory %.2f x, cache hit %.2f x" % (
            result["ratios"]["inventory_plugin_floor"], result["ratios"]["cache_hit_plugin_floor"]),
    ])
