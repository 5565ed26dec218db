"""Where the time of one vz_sms_send task goes, measured on the module the controller really ships and on the code the
action plugin runs in the controller's worker.

A play runs with ANSIBLE_KEEP_REMOTE_FILES=1 and a task ``environment`` (so the action plugin hands the task to the
module), which keeps the AnsiballZ payload; ``payload explode`` unpacks it. Then, each in a new process:
``python -c pass`` (interpreter start), the payload as the controller runs it, and the exploded module run by this
file's driver (``--driver DIR``), plain and instrumented. The instrumented driver imports what the module imports, one
group at a time (timed in that order, so a shared dependency counts for the first group that needs it), then runs the
module with timers around the functions of its hot path. Each timer counts its own time only (time spent in another
timed function inside it counts there). ``--controller DIR`` does the same with the payload's arguments as the action
plugin runs them in the controller (plugins/plugin_utils/controller.py): no AnsiballZ, Ansible's argument validator.

    python benchmarks/module_profile.py --driver DEBUG_DIR [--plain | --controller] [--out FILE]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict

STAGES = (
    # name, what it is
    ("import_basic", "import ansible.module_utils.basic (and the AnsiballZ loader)"),
    ("import_requests", "import requests"),
    ("import_pydantic", "import pydantic (BaseModel, RootModel)"),
    ("import_models", "collection models.py: building the pydantic model classes"),
    ("import_sqlite3", "import sqlite3"),
    ("import_collection", "the other collection module_utils and the module"),
    ("import_controller", "the action plugin's code and ansible.plugins.action (in the controller)"),
    ("load_params", "reading the module arguments (JSON)"),
    ("argspec", "argument spec validation (Ansible's validator)"),
    ("module_init", "rest of ThingSpaceModule() or ControllerModule() (checks, credentials)"),
    ("plan", "plan_send: message and device checks (with devices_file: reading the file)"),
    ("ledger_open", "ledger: open, WAL, schema"),
    ("ledger_diff", "ledger: states() (the diff)"),
    ("ledger_write", "ledger: claim and settle"),
    ("client_init", "transport: requests.Session set-up"),
    ("auth", "tokens: token cache file, lock (login when not cached)"),
    ("request_build", "request body: pydantic models built"),
    ("request_dump", "request body: pydantic model_dump"),
    ("http", "HTTP through requests (includes the emulator's time)"),
    ("parse", "answer parsing (pydantic)"),
    ("exit_json", "exit_json: no_log scrub, JSON encoding (and print, as a module)"),
    ("other", "everything else in the module run"),
)
IMPORT_STAGES = tuple(name for name, _label in STAGES if name.startswith("import_"))
MODULE_FQN = "ansible_collections.thingspace.m2m.plugins.modules.vz_sms_send"
UTILS = "ansible_collections.thingspace.m2m.plugins.module_utils"
CONTROLLER = "ansible_collections.thingspace.m2m.plugins.plugin_utils.controller"
COLLECTION_UTILS = ("errors", "env", "private_files", "sms", "auth", "transport", "client", "callbacks", "ledger", "send", "module")


# --- the driver (runs in its own process) ---------------------------------------------------------------------------


class Timers:
    """Exclusive timers: a timed call's time minus the time of timed calls inside it."""

    def __init__(self):
        self.totals = defaultdict(float)
        self.stack = []
        self.missing = []

    def wrap(self, owner, attribute, label):
        original = getattr(owner, attribute, None) if owner is not None else None
        if original is None:
            self.missing.append("%s.%s" % (getattr(owner, "__name__", owner), attribute))
            return
        timers = self

        def timed(*args, **kwargs):
            started = time.perf_counter()
            timers.stack.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = timers.stack.pop()
                timers.totals[label] += elapsed - inner
                if timers.stack:
                    timers.stack[-1] += elapsed

        setattr(owner, attribute, timed)


def _import(name):
    __import__(name)
    return sys.modules[name]


def _optional(name):
    try:
        return _import(name)
    except ImportError:
        return None


def driver(debug_dir, plain, controller=False):
    """Run the exploded module once, or its arguments as the action plugin runs them in the controller (``controller``,
    the collection from ANSIBLE_COLLECTIONS_PATH); a dict of seconds per stage (empty when ``plain``)."""
    payload_dir = os.path.dirname(os.path.abspath(debug_dir))
    sys.path = [p for p in sys.path if p not in ("", payload_dir, os.path.dirname(os.path.abspath(__file__)))]
    sys.path.insert(0, os.environ["ANSIBLE_COLLECTIONS_PATH"] if controller else debug_dir)
    with open(os.path.join(debug_dir, "args"), "rb") as handle:
        params = handle.read()
    timers = Timers()
    imports = {}
    started = time.perf_counter()
    if not plain:
        mark = time.perf_counter()
        for stage, names in (
            ("import_basic", ["ansible.module_utils.basic"] + ([] if controller else ["ansible.module_utils._internal._ansiballz._loader"])),
            ("import_requests", ["requests"]),
            ("import_pydantic", ["pydantic", "pydantic.main", "pydantic.root_model", "pydantic.alias_generators"]),
            ("import_models", [UTILS + ".models"]),
            ("import_sqlite3", ["sqlite3"]),
            ("import_collection", [UTILS + "." + name for name in COLLECTION_UTILS]),
            ("import_controller", [MODULE_FQN, CONTROLLER] if controller else []),
        ):
            for name in names:
                _optional(name)
            now = time.perf_counter()
            imports[stage] = now - mark
            mark = now
        basic = sys.modules["ansible.module_utils.basic"]
        arg_spec = _import("ansible.module_utils.common.arg_spec")
        requests = sys.modules.get("requests")
        models = sys.modules.get(UTILS + ".models")
        transport = sys.modules.get(UTILS + ".transport")
        auth = sys.modules.get(UTILS + ".auth")
        ledger = sys.modules.get(UTILS + ".ledger")
        send = sys.modules.get(UTILS + ".send")
        module = sys.modules.get(UTILS + ".module")
        timers.wrap(basic, "_load_params", "load_params")
        timers.wrap(arg_spec.ModuleArgumentSpecValidator, "validate", "argspec")
        timers.wrap(sys.modules[CONTROLLER].ControllerModule if controller else getattr(module, "ThingSpaceModule", None), "__init__", "module_init")
        timers.wrap(send, "plan_send", "plan")
        if controller:  # imported above, with its own reference to plan_send
            timers.wrap(sys.modules[MODULE_FQN], "plan_send", "plan")
        ledger_class = getattr(ledger, "Ledger", None)
        timers.wrap(ledger_class, "__init__", "ledger_open")
        timers.wrap(ledger_class, "diff", "ledger_diff")
        for name in ("claim", "settle", "release", "close"):
            timers.wrap(ledger_class, name, "ledger_write")
        timers.wrap(getattr(transport, "Transport", None), "__init__", "client_init")
        timers.wrap(getattr(auth, "Authenticator", None), "headers", "auth")
        timers.wrap(getattr(send, "SmsSend", None), "_request", "request_build")
        timers.wrap(getattr(models, "Wire", None), "wire", "request_dump")
        timers.wrap(getattr(getattr(requests, "sessions", None), "Session", None), "request", "http")
        timers.wrap(models, "parse", "parse")
        timers.wrap(basic.AnsibleModule, "exit_json", "exit_json")
        timers.wrap(basic.AnsibleModule, "fail_json", "exit_json")
        if controller:
            timers.wrap(sys.modules[CONTROLLER].ControllerModule, "_result", "exit_json")
    if controller:
        run_started = time.perf_counter()
        result, printed = _run_in_controller(json.loads(params)["ANSIBLE_MODULE_ARGS"])
        finished = time.perf_counter()
    else:
        from ansible.module_utils._internal._ansiballz import _loader

        out = sys.stdout
        sys.stdout = io.StringIO()
        run_started = time.perf_counter()
        try:
            _loader.run_module(json_params=params, profile="legacy", module_fqn=MODULE_FQN, modlib_path=debug_dir, extensions={})
        except SystemExit:
            pass
        finally:
            finished = time.perf_counter()
            printed = sys.stdout.getvalue()
            sys.stdout = out
        result = json.loads(printed.strip().splitlines()[-1])
    if result.get("failed"):
        raise RuntimeError("the module failed: %s" % result.get("msg") or result)
    stages = dict(imports)
    stages.update(timers.totals)
    module_run = finished - run_started
    stages["other"] = module_run - sum(timers.totals.values())
    return {
        "stages": stages,
        "module_run": module_run,
        "driver_total": finished - started,
        "missing_timers": timers.missing,
        "devices_sent": result.get("devices_sent"),
        "request_ids": len(result.get("request_ids") or []),
        "result_bytes": len(printed),
    }


def _run_in_controller(module_args):
    """(result, its JSON) of the task's arguments run as ControllerAction runs them, internal _ansible_* keys left out."""
    from functools import partial

    controller = _import(CONTROLLER)
    module = _import(MODULE_FQN)
    args = {name: value for name, value in module_args.items() if not name.startswith("_ansible_")}
    try:
        module.main(partial(controller.ControllerModule, args, module_args.get("_ansible_check_mode", False), module_args["_ansible_module_name"],
                            inject_invocation=module_args.get("_ansible_inject_invocation", True)))
    except controller.TaskExit as done:
        return done.result, json.dumps(done.result)
    raise RuntimeError("the module's main returned without a result")


# --- the outer measurement (runs from run.py) ------------------------------------------------------------------------


def capture_payload(play, env, inventory, workdir, name):
    """Run ``play`` keeping the AnsiballZ payload; explode it into WORKDIR/NAME; the payload's path. The play's
    state dir (WORKDIR/NAME/state) keeps its token cache, so later runs of the payload do not log in."""
    target = os.path.join(workdir, name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    keep = os.path.join(target, "remote-tmp")
    env = dict(env, ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=keep, THINGSPACE_STATE_DIR=os.path.join(target, "state"))
    log = os.path.join(workdir, "logs", name + "-capture.log")
    with open(log, "wb") as out:
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, play],
                       env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, check=True)
    found = glob.glob(os.path.join(keep, "*", "AnsiballZ_vz_sms_send.py"))
    if not found:
        raise RuntimeError("no AnsiballZ payload kept under %s" % keep)
    payload = os.path.join(target, "AnsiballZ_vz_sms_send.py")
    shutil.copy(found[0], payload)  # the remote tmp dir stays: it holds the files the arguments name (devices_file)
    subprocess.run([sys.executable, payload, "explode"], cwd=target, env=env, stdout=subprocess.DEVNULL, check=True)
    with open(payload, encoding="utf-8") as handle:
        head = handle.read(200000)
    profile = re.search(r"\nprofile='([^']+)'", head)
    if profile and profile.group(1) != "legacy":
        raise RuntimeError("the payload uses serialization profile %r; the driver assumes 'legacy'" % profile.group(1))
    return payload


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(command, env, cwd):
    """(wall, cpu) seconds of ``command``."""
    cpu = _cpu()
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started, _cpu() - cpu


def _driver_run(debug_dir, env, plain, out, controller=False):
    command = [sys.executable, os.path.abspath(__file__), "--driver", debug_dir, "--out", out] + (["--plain"] if plain else []) + \
        (["--controller"] if controller else [])
    timing = _wall(command, env, os.path.dirname(debug_dir))
    with open(out, encoding="utf-8") as handle:
        return timing, json.load(handle)


def profile(payload, env, rounds, plain=True, in_controller=True):
    """Median wall times of the module process and the instrumented stages over ``rounds`` runs, and (``in_controller``)
    the stages of the same arguments run as the action plugin runs them in the controller (``controller``), in the same
    rounds so that the machine's load falls on both alike. Every run gets a new ledger file (so it sends) and the token cache of the
    capturing play (warm, as for every task of a play but the first). ``plain``: also time the exploded module without
    timers."""
    work = os.path.dirname(payload)
    debug_dir = os.path.join(work, "debug_dir")

    def run_env():
        return dict(env, THINGSPACE_STATE_DIR=os.path.join(work, "state"),
                    THINGSPACE_LEDGER_PATH=os.path.join(work, "ledger-%s.sqlite3" % uuid.uuid4().hex))

    walls = defaultdict(list)
    cpus = defaultdict(list)
    stages = defaultdict(list)
    controller = defaultdict(list)
    detail = {}

    def record(name, timing):
        walls[name].append(timing[0])
        cpus[name].append(timing[1])

    for _round in range(rounds):
        record("python_start", _wall([sys.executable, "-c", "pass"], env, work))
        record("payload", _wall([sys.executable, payload], run_env(), work))
        if plain:
            record("exploded", _driver_run(debug_dir, run_env(), True, os.path.join(work, "plain.json"))[0])
        timing, detail = _driver_run(debug_dir, run_env(), False, os.path.join(work, "instrumented.json"))
        record("instrumented", timing)
        for stage, seconds in detail["stages"].items():
            stages[stage].append(seconds)
        stages["module_run"].append(detail["module_run"])
        if in_controller:
            _timing, run = _driver_run(debug_dir, run_env(), False, os.path.join(work, "controller.json"), controller=True)
            for stage, seconds in run["stages"].items():
                controller[stage].append(seconds)
            controller["module_run"].append(run["module_run"])
    result = {
        "rounds": rounds,
        "walls": {name: statistics.median(values) for name, values in walls.items()},
        "cpus": {name: statistics.median(values) for name, values in cpus.items()},
        "stages": {name: statistics.median(values) for name, values in stages.items()},
        "devices_sent": detail["devices_sent"],
        "request_ids": detail["request_ids"],
        "result_bytes": detail["result_bytes"],
        "missing_timers": detail["missing_timers"],
        "payload_bytes": os.path.getsize(payload),
        "args_bytes": os.path.getsize(os.path.join(debug_dir, "args")),
    }
    if in_controller:
        result["controller"] = {"rounds": rounds, "stages": {name: statistics.median(values) for name, values in controller.items()}}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", metavar="DEBUG_DIR", required=True, help="an exploded AnsiballZ payload's debug_dir")
    parser.add_argument("--plain", action="store_true", help="no timers: only run the module")
    parser.add_argument("--controller", action="store_true", help="run the arguments as the action plugin runs them in the controller")
    parser.add_argument("--out", metavar="FILE", help="write the timings here (JSON)")
    args = parser.parse_args()
    summary = driver(os.path.abspath(args.driver), args.plain, args.controller)
    text = json.dumps(summary, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
