"""Fleet scale (issue 24, item 1): vz_sms_send with ``devices_file`` over a fleet of DEVICES devices (1,000,000 by
default; BENCH_DEVICES or --devices) against the bare requests script (requests_floor.py), side by side on one
emulator, the order reversed every other round, each send checked in the emulator (every device once); the peak resident
memory of every process, as the kernel counts it (VmHWM of /proc/PID/status, read while the processes run; and the
largest ru_maxrss of the process tree from wait4, which also holds this benchmark process's own peak: the kernel keeps
it across fork and exec), the emulator apart; then the same task again (the re-run: nothing
to send, the ledger's diff).

    python benchmarks/bench_scale.py [--devices N] [--rounds N] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.request import urlopen

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_emulator
from bench_playbooks import ACCOUNT, MESSAGE, mdn
from common import BENCH_DIR, PYTHON, ansible_env, emit, summary, write_inventory

from thingspace_emulator.testing import running_emulator

DEVICES = int(os.environ.get("BENCH_DEVICES") or 1_000_000)
BATCH = 10_000
GOALS = {"floor_ratio": 1.5, "peak_rss_mb": 300}
PLAYBOOK = f"""\
- name: Send to the whole fleet from a devices_file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Send the SMS (batches of 10,000)
      thingspace.m2m.vz_sms_send:
        account_name: "{ACCOUNT}"
        devices_file: devices.json
        sms_message: {MESSAGE}
"""


def _status(pid):
    """(VmHWM in kB, the process's name) of a running process, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid, encoding="utf-8") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    words = [os.path.basename(part.decode(errors="replace")) for part in argv[:3] if part]
    name = next((word for word in words if not word.startswith("python")), fields["Name"].strip())
    return int(fields.get("VmHWM", "0 kB").split()[0]), name


def _descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def measured_run(command, env, cwd, log_path, interval=0.02):
    """Run ``command``; its wall and CPU time, the peak resident memory of each process of its tree (pid → (MB, name),
    sampled every ``interval`` s: VmHWM only grows, so the last reading is the peak up to then) and the kernel's
    ru_maxrss of the tree (the largest process, waited for)."""
    peaks, stop = {}, threading.Event()
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

        def sample():
            while not stop.is_set():
                for pid in _descendants(process.pid):
                    status = _status(pid)
                    if status:
                        peaks[pid] = (max(status[0], peaks.get(pid, (0,))[0]), status[1])
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _pid, code, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(code)
    if process.returncode:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(command[:3]), process.returncode, handle.read()[-3000:]))
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,
        "processes": sorted(((name, round(kb / 1024, 1)) for kb, name in peaks.values()), key=lambda entry: -entry[1]),
    }


def write_fleet_play(workdir, devices, name, text):
    """In ``workdir``: the emulator's fleet of ``devices`` (``<name>-fleet.json``), the same devices as devices.json, the
    playbook ``text`` (``<name>.yml``) and its inventory; the fleet's path and the ansible-playbook command."""
    fleet = os.path.join(workdir, "%s-fleet.json" % name)
    bench_emulator.write_fleet(fleet, devices)
    write_devices(os.path.join(workdir, "devices.json"), devices)
    with open(os.path.join(workdir, "%s.yml" % name), "w", encoding="utf-8") as handle:
        handle.write(text)
    return fleet, [os.path.join(os.path.dirname(PYTHON), "ansible-playbook"), "-i", write_inventory(workdir), "%s.yml" % name]


def write_devices(path, devices):
    """The devices file, written entry by entry: this process stays small, as the peak of memory it passes to the
    processes it starts counts in their ru_maxrss (the kernel keeps a process's peak across exec)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"devices": [')
        handle.writelines('%s{"kind": "mdn", "id": "%s"}' % ("," if n else "", mdn(n)) for n in range(devices))
        handle.write("]}")


def _check_sent(emulator, devices):
    # The emulator's record of a million devices takes longer to list than its admin client waits.
    with urlopen(emulator.url + "/_emulator/sms", timeout=600) as answer:
        messages = json.load(answer)["messages"]
    sent = sum(message["deviceCount"] for message in messages)
    expected = -(-devices // BATCH)
    if len(messages) != expected or sent != devices:
        raise RuntimeError("expected %d devices in %d requests, the emulator has %d in %d" % (devices, expected, sent, len(messages)))


def _emulator_peak(emulator):
    status = _status(emulator.process.pid)
    return round(status[0] / 1024, 1) if status else None


def run(devices=DEVICES, rounds=3, workdir=None):
    """The figures of item 1 for ``devices``: walls and CPU of the floor, the first run and the re-run, their ratios, the
    peaks of memory; ``rounds`` times, the order reversed every other round."""
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="bench-scale-")
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    try:
        fleet, playbook = write_fleet_play(workdir, devices, "scale", PLAYBOOK)
        floor = [PYTHON, os.path.join(BENCH_DIR, "requests_floor.py"), "devices.json", ACCOUNT, MESSAGE]
        runs = {"floor": [], "file": [], "rerun": []}
        with running_emulator("--fleet", fleet, "--quiet", "--delivery-delay", "0", "--log-size", "1000", timeout=900) as emulator:
            env = ansible_env(workdir, emulator.url)
            load = [os.getloadavg()]
            for index in range(rounds):
                for variant in ("floor", "file") if index % 2 == 0 else ("file", "floor"):
                    emulator.reset()
                    log = os.path.join(workdir, "logs", "scale-%s-%d" % (variant, index))
                    if variant == "floor":
                        runs["floor"].append(measured_run(floor, env, workdir, log + ".log"))
                        _check_sent(emulator, devices)
                        continue
                    state = dict(env, THINGSPACE_STATE_DIR=os.path.join(workdir, "state-" + uuid.uuid4().hex))
                    runs["file"].append(measured_run(playbook, state, workdir, log + ".log"))
                    _check_sent(emulator, devices)
                    emulator.reset()
                    runs["rerun"].append(measured_run(playbook, state, workdir, log + "-rerun.log"))
                    if emulator.sms():
                        raise RuntimeError("the re-run sent again")
                    shutil.rmtree(state["THINGSPACE_STATE_DIR"], ignore_errors=True)
                load.append(os.getloadavg())
            emulator_mb = _emulator_peak(emulator)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = {name: summary([run["wall"] for run in values]) for name, values in runs.items()}
    return {
        "devices": devices,
        "rounds": rounds,
        "load": [round(value[0], 2) for value in load],
        "wall": wall,
        "cpu": {name: summary([run["cpu"] for run in values]) for name, values in runs.items()},
        "ratio": wall["file"]["median"] / wall["floor"]["median"],
        "peak_mb": {name: max(run["maxrss_mb"] for run in values) for name, values in runs.items()},
        "processes": {name: values[-1]["processes"] for name, values in runs.items()},
        "emulator_peak_mb": emulator_mb,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", metavar="FILE")
    args = parser.parse_args()
    result = run(args.devices, args.rounds)
    emit(result, args.json_out)


if __name__ == "__main__":
    main()
