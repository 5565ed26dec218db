"""A send over the fleet as inventory (the thingspace.m2m.devices plugin), run in slices at once as AWX job slicing runs a
job template: one ansible-playbook per slice with its ``--limit``, one task per slice (``run_once``) sending to the
slice's hosts, one PostgreSQL ledger. Used by tests/reliability/test_slices.py (correctness, a small fleet) and
benchmarks/bench_slices.py (100,000 hosts).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from datetime import datetime

import yaml

# The play each slice runs: the pattern docs/design.md describes ("A send in AWX job slices").
PLAY = """\
- name: Send the SMS to the devices of this slice
  hosts: all
  gather_facts: false
  tasks:
    - name: Send to this slice's hosts, once per slice
      thingspace.m2m.vz_sms_send:
        account_name: "{account}"
        devices: "{{{{ ansible_play_hosts_all | thingspace.m2m.device_ids(hostvars) }}}}"
        sms_message: {message}
        idempotency_key: {key}
        batch_size: {batch_size}
      run_once: true
      delegate_to: localhost
      register: sent
    - name: Keep the result of this slice
      ansible.builtin.copy:
        content: "{{{{ sent | to_json }}}}"
        dest: "{{{{ lookup('ansible.builtin.env', 'SLICE_RESULT') }}}}"
        mode: "0600"
      run_once: true
      delegate_to: localhost
"""


def limits(hosts, slices):
    """The ``--limit`` of each of ``slices`` slices of an inventory of ``hosts`` hosts: consecutive ranges of the group
    ``all`` (Ansible's subscripts include their end)."""
    share = -(-hosts // slices)
    return ["all[%d:%d]" % (start, min(start + share, hosts) - 1) for start in range(0, hosts, share)]


def write(workdir, account, message, key, batch_size):
    """The inventory source, ansible.cfg and the play in ``workdir``; the play's path. The task runs on the implicit
    localhost (delegate_to), in the controller."""
    with open(os.path.join(workdir, "fleet.thingspace.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"plugin": "thingspace.m2m.devices", "account_name": account}, handle)
    with open(os.path.join(workdir, "ansible.cfg"), "w", encoding="utf-8") as handle:
        handle.write("[defaults]\ninventory = fleet.thingspace.yml\n[inventory]\nenable_plugins = thingspace.m2m.devices\n")
    play = os.path.join(workdir, "slice.yml")
    with open(play, "w", encoding="utf-8") as handle:
        handle.write(PLAY.format(account=account, message=message, key=key, batch_size=batch_size))
    return play


def run_slices(workdir, play, bin_dir, env, slice_limits, label):
    """Start one ansible-playbook per limit at once and wait for all; (wall seconds of the whole, each slice's result)."""
    processes, outputs = [], []
    started = time.perf_counter()
    for index, limit in enumerate(slice_limits):
        result = os.path.join(workdir, "%s-%d.json" % (label, index))
        output = open(os.path.join(workdir, "%s-%d.log" % (label, index)), "wb")  # noqa: SIM115  # closed below
        outputs.append(output)
        slice_env = dict(env, SLICE_RESULT=result, ANSIBLE_CONFIG=os.path.join(workdir, "ansible.cfg"),
                         THINGSPACE_STATE_DIR=os.path.join(workdir, "state-%s-%d" % (label, index)))
        command = [os.path.join(bin_dir, "ansible-playbook"), "--limit", limit, play]
        processes.append((subprocess.Popen(command, cwd=workdir, env=slice_env, stdout=output, stderr=subprocess.STDOUT), result))
    results = []
    for (process, result), output in zip(processes, outputs):
        process.wait()
        output.close()
        if process.returncode:
            with open(output.name, encoding="utf-8", errors="replace") as handle:
                raise AssertionError("slice %s failed (exit %d):\n%s" % (output.name, process.returncode, handle.read()[-3000:]))
        with open(result, encoding="utf-8") as handle:
            results.append(json.load(handle))
    return time.perf_counter() - started, results


def sent_devices(emulator):
    """device id → how many POST /sms the emulator accepted for it."""
    return Counter(device["id"] for message in emulator.sms() for device in message["devices"])


def request_times(emulator, request_ids):
    """The times (seconds) the emulator received each of ``request_ids``, in order."""
    wanted = set(request_ids)
    return sorted(datetime.fromisoformat(message["receivedAt"]).timestamp() for message in emulator.sms() if message["requestId"] in wanted)


def longest_gap(times):
    """The longest time between two requests of one slice, its start to its first request not counted."""
    return max((later - earlier for earlier, later in zip(times, times[1:])), default=0.0)
