"""Ratio benchmarks of thingspace.m2m against what a user would write instead, on the emulator on loopback.

Everything is measured side by side in one run, each comparison repeated (rounds, order reversed every other
round); the report gives medians and the ratios of the medians, with the CPU time (user + system of the whole
process tree) next to the wall time because these machines are shared and noisy.

1. bulk send to 100,000 devices by ID: vz_sms_send (one task) vs an ansible.builtin.uri playbook vs a bare
   requests script (the floor);
2. the re-run of the same vz_sms_send (nothing to send);
3. a play of N vz_sms_send tasks (1 device each) vs the uri playbook doing the same, with the logins counted, and vs N
   debug tasks and N tasks of a bare action plugin sending one request and committing once (action_plugins/bench_floor.py);
4. ledger scaling at 1k / 10k / 100k devices (ledger_scaling.py), on SQLite and on PostgreSQL side by side;
5. the emulator itself (bench_emulator.py);
6. four controllers sending 4 x 25,000 distinct devices against one sending 100,000, the ledger in PostgreSQL
   (bench_controllers.py);
7. the callbacks event source taking callbacks into memory, the SQLite ledger and the PostgreSQL ledger
   (bench_callbacks.py); with ``--callbacks-sustained SECONDS``, also from the emulator for that long into each ledger;
8. a 100,000-device three-wave campaign against vz_sms_send plus the waits, one gate evaluation, and max_per_minute
   over a 10-minute window on a compressed clock, on SQLite and PostgreSQL (bench_campaign.py);
9. the fleet as inventory: ansible-inventory --list over 100,000 devices, a cache hit, and vz_device_info count_only
   against a bare requests script (bench_inventory.py; alone with ``--only inventory``);
10. with ``--scale-devices N`` (``make bench BENCH_DEVICES=N``): devices_file over N devices against the floor with the
   peak memory of every process (bench_scale.py), a send over 100,000 inventory hosts in 4 job slices on one
   PostgreSQL ledger (bench_slices.py), the ledger's phases (4) and the campaign gate (8) at N devices,
   vz_sms_delivery_info over a ledger of N sent and delivered devices on SQLite and PostgreSQL (bench_delivery_info.py),
   and the campaign's check-mode preview of N devices (bench_preview.py);
and a profile of one vz_sms_send task and of the 100,000-device run (module_profile.py). PostgreSQL is a server of
its own (tests/utils/postgresql.py, fsync on), on loopback like the emulator.

``--before REF`` also measures the collection as it was at REF (``git archive``, its own collections path) in the
same rounds: the bulk send, the per-task play and the profile (with ``--only tasks``, the per-task play), so a change is
compared side by side in one run.

    python benchmarks/run.py --report docs/performance.md [--rounds 3] [--before REF] [--json-out FILE] [--keep]
    python benchmarks/run.py --only inventory [--rounds 3] [--json-out FILE]
    python benchmarks/run.py --only tasks [--rounds 3] [--tasks 50] [--before REF] [--no-uri] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_callbacks
import bench_campaign
import bench_controllers
import bench_delivery_info
import bench_emulator
import bench_inventory
import bench_playbooks as playbooks
import bench_preview
import bench_scale
import bench_slices
import ledger_scaling
import module_profile
import report
from common import (
    BENCH_DIR,
    LOGIN_PATH,
    OAUTH_PATH,
    PYTHON,
    SMS_PATH,
    ansible_env,
    before_collection,
    delta,
    playbook,
    request_counts,
    summary,
    timed_run,
    write_inventory,
)
from postgresql import running_postgresql

from thingspace_emulator.testing import running_emulator

DEVICES = bench_emulator.DEVICES
BATCH = bench_emulator.BATCH


def machine():
    def version(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    def package(name):
        try:
            from importlib.metadata import version as dist_version

            return dist_version(name)
        except Exception:  # any failure means "not known"
            return "unknown"

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "os": "%s %s" % (platform.system(), platform.release()),
        "python": platform.python_version(),
        "ansible_core": package("ansible-core"),
        "requests": package("requests"),
        "pydantic": package("pydantic"),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": package("psycopg"),
        "git": version(["git", "-C", BENCH_DIR, "describe", "--always", "--dirty"]),
        "load": [],
    }


def step(results, text):
    """Print the phase starting and record the load average (1 min) at its start, for the page."""
    print(text, flush=True)
    results["machine"]["load"].append(round(os.getloadavg()[0], 1))


def write_devices(path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"devices": [{"kind": "mdn", "id": playbooks.mdn(n)} for n in range(DEVICES)]}, handle)


def check_sent(emulator, requests_expected):
    """The emulator accepted every device once, in ``requests_expected`` requests."""
    messages = emulator.sms()
    devices = sum(message["deviceCount"] for message in messages)
    if len(messages) != requests_expected or devices != DEVICES:
        raise RuntimeError("expected %d devices in %d requests, the emulator has %d in %d" % (DEVICES, requests_expected, devices, len(messages)))


def bench_bulk(ctx, rounds):
    """Items 1 and 2."""
    runs = {"module": [], "file": [], "uri": [], "floor": [], "rerun": [], "file_rerun": [], "ansible": []}
    requests = {}
    rerun_requests = {"module": [], "file": []}
    order = ["module", "file", "uri", "floor", "ansible"]
    if "env_before" in ctx:
        runs["before"] = []
        order.append("before")
    floor_command = [PYTHON, os.path.join(BENCH_DIR, "requests_floor.py"), ctx["devices"], playbooks.ACCOUNT, playbooks.MESSAGE]
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            ctx["emulator"].reset()
            name = "bulk-%s-%d" % (variant, index)
            if variant in ("module", "file"):
                play = ctx["plays"]["bulk_%s.yml" % variant]
                env = dict(ctx["env"], THINGSPACE_STATE_DIR=os.path.join(ctx["workdir"], "state-" + uuid.uuid4().hex))
                runs[variant].append(playbook(ctx["workdir"], ctx["inventory"], play, env, name))
                before = request_counts(ctx["emulator"])
                check_sent(ctx["emulator"], DEVICES // BATCH)
                runs["rerun" if variant == "module" else "file_rerun"].append(playbook(ctx["workdir"], ctx["inventory"], play, env, name + "-rerun"))
                rerun_requests[variant].append(delta(request_counts(ctx["emulator"]), before))
            elif variant == "uri":
                runs["uri"].append(playbook(ctx["workdir"], ctx["inventory"], ctx["plays"]["bulk_uri.yml"], ctx["env"], name))
                before = request_counts(ctx["emulator"])
                check_sent(ctx["emulator"], DEVICES // BATCH)
            elif variant == "before":
                env = dict(ctx["env_before"], THINGSPACE_STATE_DIR=os.path.join(ctx["workdir"], "state-" + uuid.uuid4().hex))
                runs["before"].append(playbook(ctx["workdir"], ctx["inventory"], ctx["plays"]["bulk_module.yml"], env, name))
                before = request_counts(ctx["emulator"])
                check_sent(ctx["emulator"], DEVICES // BATCH)
            elif variant == "ansible":
                runs["ansible"].append(playbook(ctx["workdir"], ctx["inventory"], ctx["plays"]["bulk_ansible.yml"], ctx["env"], name))
                before = request_counts(ctx["emulator"])
            else:
                runs["floor"].append(timed_run(floor_command, ctx["env"], ctx["workdir"], os.path.join(ctx["workdir"], "logs", name + ".log")))
                before = request_counts(ctx["emulator"])
                check_sent(ctx["emulator"], DEVICES // BATCH)
            requests[variant] = _count_text(before)
    return {
        "devices": DEVICES,
        "batch": BATCH,
        "rounds": rounds,
        "wall": {name: summary([t.wall for t in values]) for name, values in runs.items()},
        "cpu": {name: summary([t.cpu for t in values]) for name, values in runs.items()},
        "requests": requests,
        "rerun_requests": [_count_text(counts) for counts in rerun_requests["module"]],
        "rerun_sms_posts": [counts.get(("POST", SMS_PATH), 0) for counts in rerun_requests["module"]],
        "rerun_all_requests": [sum(counts.values()) for counts in rerun_requests["module"]],
        "file_rerun_sms_posts": [counts.get(("POST", SMS_PATH), 0) for counts in rerun_requests["file"]],
        "file_rerun_all_requests": [sum(counts.values()) for counts in rerun_requests["file"]],
    }


def _count_text(counts):
    return {"%s %s" % key: value for key, value in sorted(counts.items())}


def bench_tasks(ctx, rounds, tasks, uri=True):
    """Item 3: the vz_sms_send play, the uri play (not with ``uri=False``), the debug play (the floor of any task: Ansible's
    own cost per task) and the bench_floor play (the floor of a task that sends one request and commits once to SQLite)."""
    order = ["module", "debug", "floor"] + (["uri"] if uri else []) + (["before"] if "env_before" in ctx else [])
    runs = {name: [] for name in order}
    logins = {name: [] for name in order if name != "debug"}
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            ctx["emulator"].reset()
            env = dict(ctx["env_before" if variant == "before" else "env"], THINGSPACE_STATE_DIR=os.path.join(ctx["workdir"], "state-" + uuid.uuid4().hex))
            if variant == "floor":
                env["ANSIBLE_ACTION_PLUGINS"] = os.path.join(BENCH_DIR, "action_plugins")
            play = ctx["plays"]["tasks_%s.yml" % ("module" if variant == "before" else variant)]
            runs[variant].append(playbook(ctx["workdir"], ctx["inventory"], play, env, "tasks-%s-%d" % (variant, index)))
            counts = request_counts(ctx["emulator"])
            sms = counts.get(("POST", SMS_PATH), 0)
            if sms != (0 if variant == "debug" else tasks):
                raise RuntimeError("%s play: %d POST /sms, expected %d" % (variant, sms, tasks))
            if variant != "debug":
                logins[variant].append({"oauth": counts.get(("POST", OAUTH_PATH), 0), "session": counts.get(("POST", LOGIN_PATH), 0), "sms": sms})
    return {
        "tasks": tasks,
        "rounds": rounds,
        "wall": {name: summary([t.wall for t in values]) for name, values in runs.items()},
        "cpu": {name: summary([t.cpu for t in values]) for name, values in runs.items()},
        "logins": logins,
        "load_average": os.getloadavg(),
    }


def bench_profile(ctx, rounds):
    """Where one task's time goes (1 device, token cache warm) and where the 100,000-device run's goes: as a module, as
    the action plugin runs it in the controller, and as a module of the collection at --before."""
    result = {}
    profiles = (("one", "one_task_as_module.yml", "one_task.yml", rounds), ("bulk", "bulk_as_module.yml", "bulk_module.yml", 1),
                ("bulk_file", "bulk_file_as_module.yml", None, 1))
    for name, as_module, before_play, count in profiles:
        ctx["emulator"].reset()
        payload = module_profile.capture_payload(ctx["plays"][as_module], ctx["env"], ctx["inventory"], ctx["workdir"], "profile-" + name)
        result[name] = module_profile.profile(payload, ctx["env"], count, plain=name == "one")
        result[name + "_controller"] = result[name].pop("controller")
        if "env_before" in ctx and before_play:  # the collection at --before has no devices_file
            ctx["emulator"].reset()
            payload = module_profile.capture_payload(ctx["plays"][before_play], ctx["env_before"], ctx["inventory"], ctx["workdir"], "profile-%s-before" % name)
            # The collection at --before has no action plugin.
            result[name + "_before"] = module_profile.profile(payload, ctx["env_before"], count, plain=name == "one", in_controller=False)
    ctx["emulator"].reset()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", metavar="FILE", help="write the Markdown report here (the plot goes next to it, .png)")
    parser.add_argument("--json-out", metavar="FILE", help="write every figure here (JSON)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each comparison (default %(default)s)")
    parser.add_argument("--tasks", type=int, default=50, help="tasks in the per-task play (default %(default)s)")
    parser.add_argument("--profile-rounds", type=int, default=5, help="repetitions of the one-task profile (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (playbooks, logs, payloads)")
    parser.add_argument("--before", metavar="REF", help="also measure the collection at this git ref, side by side")
    parser.add_argument("--from-json", metavar="FILE", help="measure nothing: write the report from the figures of an earlier --json-out")
    parser.add_argument("--callbacks-sustained", type=int, metavar="SECONDS",
                        help="also the callbacks source sustained for SECONDS from the emulator, PostgreSQL and SQLite in turn (issue 24: 600)")
    parser.add_argument("--scale-devices", type=int, default=int(os.environ.get("BENCH_DEVICES") or 0), metavar="N",
                        help="also the fleet-scale runs: devices_file over N devices against the floor, a send over 100,000 inventory hosts "
                             "in 4 job slices, vz_sms_delivery_info over N devices and the campaign's preview of N devices (default: BENCH_DEVICES, "
                             "else not run)")
    parser.add_argument("--only", choices=["inventory", "tasks"], help="measure only this phase and print its figures (no report)")
    parser.add_argument("--no-uri", action="store_true", help="with --only tasks: leave out the uri play (the longest)")
    args = parser.parse_args()
    if args.only:
        return only_phase(args)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as handle:
            results = json.load(handle)
        if args.report:
            report.write(results, args.report)
        print(report.summary_text(results))
        return 0

    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="thingspace-bench-")
    os.makedirs(os.path.join(workdir, "logs"))
    results = {"machine": machine(), "rounds": args.rounds}
    stack = contextlib.ExitStack()
    try:
        fleet = os.path.join(workdir, "fleet.json")
        bench_emulator.write_fleet(fleet)
        devices = os.path.join(workdir, "devices.json")
        write_devices(devices)
        plays = playbooks.write_all(workdir, args.tasks)
        inventory = write_inventory(workdir)
        if args.before:
            before_path, results["before"] = before_collection(workdir, args.before)
        step(results, "starting PostgreSQL ...")
        server = stack.enter_context(running_postgresql(durable=True))
        results["machine"]["postgresql"] = server.execute("SHOW server_version")[0][0]
        # With --scale-devices beyond ledger_scaling's sizes, the ledger at that size too (issue 24: 1,000,000).
        sizes = ledger_scaling.SIZES + tuple(size for size in (args.scale_devices,) if size > ledger_scaling.SIZES[-1])
        step(results, "4. ledger scaling at %s devices, SQLite and PostgreSQL ..." % ", ".join(str(size) for size in sizes))
        results["ledger"] = ledger_scaling.run(rounds=max(5, args.rounds), sizes=sizes)
        results["ledger_postgresql"] = ledger_scaling.run(rounds=max(5, args.rounds), sizes=sizes, server=server)
        step(results, "starting the emulator with %d devices ..." % DEVICES)
        emulator_args = ("--fleet", fleet, "--quiet", "--allow-any-callback-port", "--delivery-delay", "0")
        with running_emulator(*emulator_args, timeout=300) as emulator:
            ctx = {
                "emulator": emulator,
                "workdir": workdir,
                "inventory": inventory,
                "plays": plays,
                "devices": devices,
                "env": ansible_env(workdir, emulator.url),
            }
            if args.before:
                ctx["env_before"] = ansible_env(workdir, emulator.url, collections=before_path)
            step(results, "1-2. bulk send and re-run, %d rounds ..." % args.rounds)
            results["bulk"] = bench_bulk(ctx, args.rounds)
            step(results, "3. %d tasks per play, %d rounds ..." % (args.tasks, args.rounds))
            results["tasks"] = bench_tasks(ctx, args.rounds, args.tasks)
            step(results, "6. four controllers and one, ledger in PostgreSQL, %d rounds ..." % args.rounds)
            results["controllers"] = bench_controllers.run(ctx, server, args.rounds, DEVICES)
            step(results, "profile of the module ...")
            results["profile"] = bench_profile(ctx, args.profile_rounds)
            step(results, "9. the fleet as inventory, %d rounds ..." % args.rounds)
            results["inventory"] = bench_inventory.run(ctx, args.rounds)
            step(results, "5. emulator ...")
            results["emulator"] = bench_emulator.run_on(emulator, workdir)
            bench_emulator.check_goals(results["emulator"])
        step(results, "7. the callbacks source into memory, SQLite and PostgreSQL, %d rounds ..." % args.rounds)
        results["callbacks"] = bench_callbacks.run(rounds=args.rounds, server=server)
        if args.callbacks_sustained:
            step(results, "7. the callbacks source sustained for %d s from the emulator, PostgreSQL then SQLite ..." % args.callbacks_sustained)
            results["callbacks_sustained"] = {store: bench_callbacks.sustained(args.callbacks_sustained, store=store, server=server)
                                              for store in ("postgresql", "sqlite")}
        step(results, "8. a staged campaign of %d devices, SQLite and PostgreSQL ..." % bench_campaign.DEVICES)
        results["campaign"] = bench_campaign.run(server=server, rounds=args.rounds)
        if args.scale_devices:
            step(results, "10. fleet scale: devices_file over %d devices against the floor, %d rounds ..." % (args.scale_devices, args.rounds))
            results["scale"] = bench_scale.run(args.scale_devices, rounds=args.rounds)
            step(results, "10. a send over %d inventory hosts in %d job slices ..." % (bench_slices.HOSTS, bench_slices.SLICES))
            results["slices"] = bench_slices.run(server)
            step(results, "8. the campaign gate over %d written devices, SQLite and PostgreSQL ..." % args.scale_devices)
            results["campaign_gate"] = bench_campaign.run_written(args.scale_devices, rounds=args.rounds)
            step(results, "10. vz_sms_delivery_info over a ledger of %d devices, SQLite and PostgreSQL ..." % args.scale_devices)
            results["delivery_info"] = bench_delivery_info.run(args.scale_devices, rounds=args.rounds, server=server)
            step(results, "10. the campaign's preview of %d devices ..." % args.scale_devices)
            results["preview"] = bench_preview.run(args.scale_devices)
    finally:
        stack.close()
        if args.keep:
            print("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["runtime_seconds"] = time.perf_counter() - started
    results["machine"]["load"].append(round(os.getloadavg()[0], 1))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2, default=str)
    if args.report:
        report.write(results, args.report)
        print("wrote %s" % args.report)
    print(report.summary_text(results))
    return 0


def only_phase(args):
    """One phase alone on the emulator with the 100,000-device fleet: 9 (inventory) or 3 (tasks); its figures printed
    (and written with --json-out)."""
    workdir = tempfile.mkdtemp(prefix="thingspace-bench-")
    os.makedirs(os.path.join(workdir, "logs"))
    try:
        fleet = os.path.join(workdir, "fleet.json")
        bench_emulator.write_fleet(fleet)
        with running_emulator("--fleet", fleet, "--quiet", timeout=300) as emulator:
            ctx = {"emulator": emulator, "workdir": workdir, "inventory": write_inventory(workdir), "env": ansible_env(workdir, emulator.url)}
            if args.only == "tasks":
                ctx["plays"] = playbooks.write_all(workdir, args.tasks)
                results = {"machine": machine()}
                if args.before:
                    before_path, results["before"] = before_collection(workdir, args.before)
                    ctx["env_before"] = ansible_env(workdir, emulator.url, collections=before_path)
                results["tasks"] = bench_tasks(ctx, args.rounds, args.tasks, uri=not args.no_uri)
            else:
                results = {"machine": machine(), "inventory": bench_inventory.run(ctx, args.rounds)}
    finally:
        if args.keep:
            print("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2, default=str)
    print(report.tasks_text(results["tasks"]) if args.only == "tasks" else bench_inventory.summary_text(results["inventory"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
