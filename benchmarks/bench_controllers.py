"""Several controllers on one PostgreSQL ledger: four ansible-playbook processes, each with its own state dir (token
cache), started together, each sending to its own quarter of the fleet (25,000 distinct devices) under one key, against
one controller sending to all 100,000; both with the ledger in PostgreSQL, a new schema per round. Wall time from the
start of the first process to the end of the last; CPU of all of them. Each round is checked in the emulator (every
device once, in the expected number of requests) and in the ledger (every device recorded sent).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid

from bench_playbooks import ACCOUNT, MESSAGE, mdn
from common import PYTHON, Timing, _children_cpu

CONTROLLERS = 4
KEY = "bench-controllers"
PLAYBOOK = f"""\
- name: Send to this controller's share of the fleet
  hosts: localhost
  gather_facts: false
  vars:
    fleet: "{{{{ lookup('ansible.builtin.file', lookup('ansible.builtin.env', 'BENCH_DEVICES')) | from_json }}}}"
  tasks:
    - name: Send the SMS (batches of 10,000, the ledger in PostgreSQL)
      thingspace.m2m.vz_sms_send:
        account_name: "{ACCOUNT}"
        devices: "{{{{ fleet.devices }}}}"
        sms_message: {MESSAGE}
        idempotency_key: {KEY}
"""


def _write(workdir, devices):
    """The playbook and the device files: all devices, and one quarter per controller."""
    paths = {"playbook": os.path.join(workdir, "controllers.yml"), "all": os.path.join(workdir, "controllers-all.json")}
    with open(paths["playbook"], "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK)
    share = devices // CONTROLLERS
    groups = {"all": range(devices), **{"q%d" % n: range(n * share, (n + 1) * share) for n in range(CONTROLLERS)}}
    for name, numbers in groups.items():
        paths[name] = os.path.join(workdir, "controllers-%s.json" % name)
        with open(paths[name], "w", encoding="utf-8") as handle:
            json.dump({"devices": [{"kind": "mdn", "id": mdn(n)} for n in numbers]}, handle)
    return paths


def _together(commands, workdir, label):
    """Start every (command, env) at once and wait for all; the Timing of the whole (first start to last end)."""
    logs = [os.path.join(workdir, "logs", "%s-%d.log" % (label, index)) for index in range(len(commands))]
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(open(path, "wb")) for path in logs]
        cpu = _children_cpu()
        started = time.perf_counter()
        running = [subprocess.Popen(command, env=env, cwd=workdir, stdout=output, stderr=subprocess.STDOUT)
                   for (command, env), output in zip(commands, outputs)]
        for process in running:
            process.wait()
        elapsed = Timing(time.perf_counter() - started, _children_cpu() - cpu)
    for index, (process, path) in enumerate(zip(running, logs)):
        if process.returncode:
            with open(path, encoding="utf-8", errors="replace") as handle:
                raise RuntimeError("controller %d of %s failed (exit %d):\n%s" % (index, label, process.returncode, handle.read()[-3000:]))
    return elapsed


def run(ctx, server, rounds, devices):
    """Wall and CPU of one controller and of four, ``rounds`` times each, the order reversed every other round."""
    from common import summary

    paths = _write(ctx["workdir"], devices)
    command = [os.path.join(os.path.dirname(PYTHON), "ansible-playbook"), "-i", ctx["inventory"], paths["playbook"]]
    runs = {"one": [], "four": []}
    order = ["one", "four"]
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            ctx["emulator"].reset()
            schema = server.new_schema()
            base = dict(ctx["env"], THINGSPACE_LEDGER_URL=server.url(), THINGSPACE_LEDGER_PASSWORD=server.password, THINGSPACE_LEDGER_SCHEMA=schema)
            shares = ["all"] if variant == "one" else ["q%d" % n for n in range(CONTROLLERS)]
            commands = [(command, dict(base, BENCH_DEVICES=paths[share], THINGSPACE_STATE_DIR=os.path.join(ctx["workdir"], "state-" + uuid.uuid4().hex)))
                        for share in shares]
            runs[variant].append(_together(commands, ctx["workdir"], "controllers-%s-%d" % (variant, index)))
            _check(ctx["emulator"], server, schema, devices, len(shares))
    return {
        "controllers": CONTROLLERS,
        "devices": devices,
        "rounds": rounds,
        "wall": {name: summary([t.wall for t in values]) for name, values in runs.items()},
        "cpu": {name: summary([t.cpu for t in values]) for name, values in runs.items()},
    }


def _check(emulator, server, schema, devices, controllers):
    """Every device got the message once, in 10,000-device requests per controller, and the ledger says sent."""
    share = devices // controllers
    expected = controllers * -(-share // 10000)
    messages = emulator.sms()
    sent = sum(message["deviceCount"] for message in messages)
    recorded = server.execute('SELECT state, count(*) FROM "%s".sends GROUP BY state' % schema)
    if len(messages) != expected or sent != devices or recorded != [("sent", devices)]:
        raise RuntimeError("%d controller(s): expected %d devices in %d requests, all recorded sent; the emulator has %d in %d, the ledger %r"
                           % (controllers, devices, expected, sent, len(messages), recorded))
