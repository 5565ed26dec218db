"""The campaign's preview over a fleet (issue 24, item 2): ``vz_sms_campaign`` in check mode with a ``devices_file`` of
DEVICES devices (1,000,000 by default; BENCH_DEVICES or --devices) and ``account_name``, so the preview goes through
``SmsSend``'s check mode (the account's device list read for ``devices_unknown`` and ``devices_inactive``), against an
emulator holding the fleet. One ansible-playbook run per round; the peak resident memory of each process (the kernel's
VmHWM, sampled as bench_scale.py samples it), the module's process apart. ``--before REF`` runs the collection at REF
in the same rounds, alternated.

    python benchmarks/bench_preview.py [--devices N] [--rounds N] [--before REF] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_playbooks import ACCOUNT, MESSAGE
from bench_scale import measured_run, write_fleet_play
from common import ansible_env, before_collection, emit, summary

from thingspace_emulator.testing import running_emulator

DEVICES = int(os.environ.get("BENCH_DEVICES") or 1_000_000)
PLAYBOOK = f"""\
- name: Preview a campaign over the whole fleet
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The first wave as a step would send it (check mode)
      thingspace.m2m.vz_sms_campaign:
        name: fleet-preview
        account_name: "{ACCOUNT}"
        devices_file: "{{{{ playbook_dir }}}}/devices.json"
        sms_message: {MESSAGE}
      check_mode: true
      register: preview

    - name: Every device previewed
      ansible.builtin.assert:
        that: preview.next_wave_preview.devices == expected | int
"""
# The module's process among those measured_run lists (AnsiballZ_vz_sms_campaign.py, then the module it unpacks).
MODULE = "vz_sms_campaign"


def _module_mb(processes):
    return max((mb for name, mb in processes if MODULE in name or name.startswith("python")), default=None)


def run(devices=DEVICES, rounds=1, before=None, workdir=None):
    """Per variant (``after``: this checkout; ``before``: the collection at ``before``) the playbook's wall and CPU time,
    the module's peak resident memory and every process's."""
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="bench-preview-")
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    try:
        fleet, playbook = write_fleet_play(workdir, devices, "preview", PLAYBOOK)
        playbook += ["-e", "expected=%d" % devices]
        variants = {"after": None}
        if before:
            variants["before"] = before_collection(workdir, before)[0]
        runs, load = {name: [] for name in variants}, [round(os.getloadavg()[0], 2)]
        with running_emulator("--fleet", fleet, "--quiet", timeout=900) as emulator:
            for index in range(rounds):
                for name in list(variants) if index % 2 == 0 else list(variants)[::-1]:
                    extra = {} if variants[name] is None else {"collections": variants[name]}
                    env = dict(ansible_env(workdir, emulator.url, **extra), THINGSPACE_STATE_DIR=os.path.join(workdir, "state-%s-%d" % (name, index)))
                    runs[name].append(measured_run(playbook, env, workdir, os.path.join(workdir, "logs", "preview-%s-%d.log" % (name, index))))
                load.append(round(os.getloadavg()[0], 2))
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "devices": devices,
        "rounds": rounds,
        "before": before,
        "load": load,
        "wall": {name: summary([entry["wall"] for entry in values]) for name, values in runs.items()},
        "cpu": {name: summary([entry["cpu"] for entry in values]) for name, values in runs.items()},
        "module_peak_mb": {name: max(_module_mb(entry["processes"]) or 0 for entry in values) for name, values in runs.items()},
        "processes": {name: values[-1]["processes"] for name, values in runs.items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", metavar="REF", help="also the collection at this git ref, alternated")
    parser.add_argument("--json-out", metavar="FILE")
    args = parser.parse_args()
    emit(run(args.devices, args.rounds, args.before), args.json_out)


if __name__ == "__main__":
    main()
