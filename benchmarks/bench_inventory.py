"""Issue 22's goals for the fleet as inventory, on the emulator's 100,000 devices in pages of 2,000 (50 pages):

- ``ansible-inventory --list --output`` with the thingspace.m2m.devices plugin, at most 1.5 x the floor, a bare
  ``requests`` script that pages the same list and writes the same JSON (inventory_floor.py);
- the same with the cache warm (``cache: true``, jsonfile), under 1 s;
- ``vz_device_info count_only: true`` over the 100,000 devices (one task, ansible-playbook), at most 1.2 x the floor.

Each is run ``rounds`` times, order reversed every other round; medians of wall and CPU time.
"""

from __future__ import annotations

import json
import os

from bench_emulator import ACCOUNT, DEVICES
from common import BENCH_DIR, PYTHON, playbook, summary, timed_run

PAGE = 2000
GOALS = {"inventory": 1.5, "count_only": 1.2, "cache_hit_seconds": 1.0}


def _write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def run(ctx, rounds):
    emulator, workdir, env = ctx["emulator"], ctx["workdir"], ctx["env"]
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

    runs = {"floor": [], "inventory": [], "cache_hit": [], "count_only": []}
    pages = {}
    order = list(runs)
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            emulator.reset()
            emulator.config(devicePageSize=PAGE)
            name = "inventory-%s-%d" % (variant, index)
            if variant == "floor":
                runs[variant].append(floor(name))
            elif variant == "inventory":
                runs[variant].append(listing(name, source, os.path.join(workdir, name + ".json")))
            elif variant == "cache_hit":
                listing(name + "-fill", cached, os.path.join(workdir, name + "-fill.json"))
                emulator.reset()
                runs[variant].append(listing(name, cached, os.path.join(workdir, name + ".json")))
            else:
                runs[variant].append(playbook(workdir, ctx["inventory"], count_play, env, name))
            pages[variant] = len(emulator.requests(path="/api/m2m/v1/devices/actions/list"))
    wall = {name: summary([t.wall for t in values]) for name, values in runs.items()}
    cpu = {name: summary([t.cpu for t in values]) for name, values in runs.items()}
    base = wall["floor"]["median"]
    return {"devices": DEVICES, "page": PAGE, "rounds": rounds, "wall": wall, "cpu": cpu, "device_list_requests": pages,
            "ratios": {"inventory": wall["inventory"]["median"] / base, "count_only": wall["count_only"]["median"] / base},
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
    ])


def section(results):
    """Section 9 of the report (no lines for figures from before it existed)."""
    result = results.get("inventory")
    if not result:
        return []
    wall, cpu, pages = result["wall"], result["cpu"], result["device_list_requests"]
    labels = {"floor": "bare `requests` script (the floor)", "inventory": "`ansible-inventory --list`", "cache_hit": "the same, cache hit",
              "count_only": "`vz_device_info count_only` (ansible-playbook)"}
    lines = [
        "",
        "## 9. The fleet as inventory",
        "",
        "`benchmarks/bench_inventory.py`: one account of %s devices listed in pages of %s (%d pages). `ansible-inventory -i"
        % ("{:,}".format(result["devices"]), "{:,}".format(result["page"]), result["devices"] // result["page"]),
        "fleet.thingspace.yml --list --output` with the plugin `thingspace.m2m.devices` (every page, a host per device with its",
        "`thingspace_*` variables and default groups), the same with `cache: true` warm, and one `vz_device_info count_only: true`",
        "task, against `benchmarks/inventory_floor.py`, which logs in, pages the same list on one `requests` Session and writes",
        "the same hosts, variables and groups as JSON. %d round(s), order reversed every other round; medians." % result["rounds"],
        "",
        "| run | wall (median) | min - max | CPU (median) | device-list requests | / floor | goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    goal = {"inventory": "<= %.1f x" % GOALS["inventory"], "count_only": "<= %.1f x" % GOALS["count_only"],
            "cache_hit": "< %.0f s" % GOALS["cache_hit_seconds"], "floor": ""}
    for name, label in labels.items():
        lines.append("| %s | %.2f s | %.2f - %.2f s | %.2f s | %s | %.2f | %s |" % (
            label, wall[name]["median"], wall[name]["min"], wall[name]["max"], cpu[name]["median"], pages.get(name),
            wall[name]["median"] / wall["floor"]["median"], goal[name]))
    return lines
