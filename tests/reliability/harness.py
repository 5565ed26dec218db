"""Drive the collection the way users do: ansible-playbook subprocesses against a loopback emulator.

``Ansible`` writes a playbook from task dicts, runs it (or starts it in the background) with a private
state directory, environment and temp dirs, and reads back what every task registered. Helpers for the
emulator's request log, the process tree of a run (to SIGKILL it) and polling waits live here too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger  # noqa: E402
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import LEDGER_NAME  # noqa: E402

BIN = Path(sys.executable).parent
ACCOUNT = "0000777777-00001"
FLEET_SIZE = 300
CREDENTIALS = {"client_id": "emulator-client", "client_secret": "emulator-secret", "username": "emulator-user", "password": "emulator-pass"}
# How plays pass them, as users do: variables (from an extra-vars file here, a vault in real life), never literals.
CREDENTIAL_ARGS = {name: "{{ thingspace_%s }}" % name for name in CREDENTIALS}

# A task environment makes the action plugin hand the task to the module (plugins/plugin_utils/controller.py).
AS_MODULE = {"environment": {"THINGSPACE_TEST_RUN": "as a module"}}

TOKEN_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
SMS_PATH = "/api/m2m/v1/sms"


class _Dumper(yaml.SafeDumper):
    """Writes shared values out in full (no YAML anchors), so a playbook reads as written."""

    def ignore_aliases(self, data):
        return True


def device(number):
    """Device ``number`` of the generated fleet, by its ICCID."""
    return {"kind": "iccid", "id": "8914800000%09d0" % number}


def devices(start, stop):
    return [device(number) for number in range(start, stop)]


def write_fleet(path, size=FLEET_SIZE):
    """A JSON fleet: one account, ``size`` active reachable devices (ICCID and MDN), all in group ``all``."""
    fleet = {
        "accounts": [
            {
                "name": ACCOUNT,
                "groups": [{"name": "all"}],
                "servicePlans": ["m2m-basic"],
                "devices": [
                    {"deviceIds": [device(n), {"kind": "mdn", "id": "555%07d" % n}], "groupNames": ["all"], "servicePlan": "m2m-basic"}
                    for n in range(size)
                ],
            }
        ]
    }
    Path(path).write_text(json.dumps(fleet), encoding="utf-8")


def wait_until(predicate, what, timeout=20.0):
    """Poll ``predicate`` until it returns something true; return that, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def received(emulator):
    """iccid → smsReceived for every device of the account."""
    counts = {}
    for entry in emulator.devices(ACCOUNT):
        iccid = next(ident["id"] for ident in entry["deviceIds"] if ident["kind"].lower() == "iccid")
        counts[iccid] = entry["smsReceived"]
    return counts


def receipts(emulator, wanted):
    """smsReceived of each device in ``wanted``, in order."""
    counts = received(emulator)
    return [counts[dev["id"]] for dev in wanted]


def statuses(emulator, method, path):
    """HTTP statuses the emulator answered to ``method path``, in order (None: connection dropped)."""
    return [entry["status"] for entry in emulator.requests(method=method, path=path)]


def ledger_rows(ansible):
    """(target, state, claim) of every row of the ledger of ``ansible`` (an Ansible), read through the collection's
    Ledger; [] before it exists."""
    ledger = Ledger(ansible.ledger, read_only=True)
    try:
        return [(target, state, claim) for _scope, _key, target, state, _request_id, claim in ledger.records()]
    finally:
        ledger.close()


def ledger_states(ansible):
    """state → number of targets, in the ledger of ``ansible``."""
    counts = {}
    for _target, state, _claim in ledger_rows(ansible):
        counts[state] = counts.get(state, 0) + 1
    return counts


class TokenGate:
    """Holds the token cache lock of a state dir (``tokens.json.lock``, module_utils/auth.py). A send claims its
    first batch in the ledger, then takes this lock to get its tokens: while the gate is closed, every run of
    that state dir stops there, alive, with its first claim pending. No timing involved."""

    def __init__(self, state_dir):
        Path(state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(str(Path(state_dir) / "tokens.json.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def open(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.open()


def secret_values(emulator, state_dir):
    """Every access and session token the emulator issued, and those in the token cache file."""
    state = emulator.state()
    values = {item["token"] for item in state.get("accessTokens", [])} | {item["token"] for item in state.get("sessions", [])}
    cache = Path(state_dir) / "tokens.json"
    if cache.exists():
        for entry in json.loads(cache.read_text())["entries"].values():
            values.update(value for name, value in entry.items() if name in ("access_token", "session_token") and value)
    return values


class Play:
    """A finished ansible-playbook run. ``results[name]`` is what the task registered as ``name`` (on the
    first host); ``by_host[host][name]`` for several hosts."""

    def __init__(self, command, returncode, stdout, stderr, by_host, seconds):
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.by_host = by_host
        self.seconds = seconds

    @property
    def results(self):
        return next(iter(self.by_host.values()))

    def describe(self):
        return "%s exited %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (" ".join(self.command), self.returncode, self.stdout[-6000:], self.stderr[-3000:])


class Running:
    """A playbook started in the background (``Ansible.start``); ``finish()`` waits and returns the Play."""

    def __init__(self, command, process, results_prefix, hosts, started):
        self.command = command
        self.process = process
        self.results_prefix = results_prefix
        self.hosts = hosts
        self.started = started

    def finish(self, timeout=120):
        stdout, stderr = self.process.communicate(timeout=timeout)
        by_host = {}
        for host in self.hosts:
            path = Path("%s.%s.json" % (self.results_prefix, host))
            by_host[host] = json.loads(path.read_text()) if path.exists() else {}
        return Play(self.command, self.process.returncode, stdout, stderr, by_host, time.monotonic() - self.started)


class Ansible:
    """Runs playbooks against ``api_url`` with a private state dir (token cache, ledger), temp dirs and home.
    ``database`` (a ``_store_postgresql.Database``) puts the ledger there instead, through the THINGSPACE_LEDGER_*
    variables; ``ledger`` is where the ledger is, as ``Ledger`` takes it."""

    def __init__(self, workdir, api_url, database=None):
        self.workdir = Path(workdir)
        self.api_url = api_url
        self.state_dir = self.workdir / "state"
        self.ledger = database or str(self.state_dir / LEDGER_NAME)
        self.runs = 0
        if not (COLLECTIONS / "ansible_collections" / "thingspace" / "m2m").exists():
            raise RuntimeError("%s is missing: run `make venv` (it links the checkout there)" % COLLECTIONS)
        home = self.workdir / "home"
        tmp = self.workdir / "ansible-tmp"
        home.mkdir(parents=True, exist_ok=True)
        env = {name: value for name, value in os.environ.items() if not name.startswith(("ANSIBLE_", "THINGSPACE_"))}
        env.update(
            PATH="%s%s%s" % (BIN, os.pathsep, env.get("PATH", "")),
            HOME=str(home),
            ANSIBLE_HOME=str(home / ".ansible"),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_LOCAL_TEMP=str(tmp),
            ANSIBLE_REMOTE_TMP=str(tmp),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        )
        if database:
            env.update(THINGSPACE_LEDGER_URL=database.url, THINGSPACE_LEDGER_PASSWORD=database.password, THINGSPACE_LEDGER_SCHEMA=database.schema)
        self.env = env

    def defaults(self, credentials=True):
        """module_defaults of the thingspace action group: the API, the state dir and (unless False) the credentials."""
        values = {"api_url": self.api_url, "state_dir": str(self.state_dir)}
        if credentials:
            values.update(CREDENTIAL_ARGS)
        return values

    def _write(self, tasks, hosts, credentials, variables, strategy):
        self.runs += 1
        base = self.workdir / ("play%02d" % self.runs)
        extra_vars = base.with_suffix(".vars.yml")
        extra_vars.write_text(yaml.safe_dump(dict({"thingspace_" + k: v for k, v in CREDENTIALS.items()}, **(variables or {}))), encoding="utf-8")
        names = [task["register"] for task in tasks if "register" in task]
        results = "%s.{{ inventory_hostname }}.json" % base
        content = "{{ %s | to_json }}" % ("{%s}" % ", ".join("%r: %s | default(none)" % (name, name) for name in names))
        play = {
            "name": "reliability",
            "hosts": "all",
            "gather_facts": False,
            "strategy": strategy,
            "module_defaults": {"group/thingspace.m2m.thingspace": self.defaults(credentials)},
            "tasks": [*tasks, {"name": "Save the registered results", "ansible.builtin.copy": {"content": content, "dest": results}}],
        }
        playbook = base.with_suffix(".yml")
        playbook.write_text(yaml.dump([play], Dumper=_Dumper, sort_keys=False, allow_unicode=True), encoding="utf-8")
        inventory = base.with_suffix(".ini")
        inventory.write_text("".join("%s ansible_connection=local\n" % host for host in hosts), encoding="utf-8")
        return base, playbook, inventory, extra_vars

    def start(self, tasks, hosts=("localhost",), credentials=True, variables=None, args=(), env=None, umask=-1, strategy="linear"):
        """Start ansible-playbook in the background; the caller must ``finish()`` it (or kill its tree).
        ``variables`` become extra vars (with the credentials as ``thingspace_*``)."""
        base, playbook, inventory, extra_vars = self._write(tasks, hosts, credentials, variables, strategy)
        command = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", "@%s" % extra_vars, *args, str(playbook)]
        return self._spawn(command, env, umask, base, hosts)

    def run(self, tasks, **kwargs):
        """Run a playbook to its end; the play's own tasks ignore errors, so it fails only if Ansible does."""
        play = self.start(tasks, **kwargs).finish()
        assert play.returncode == 0, play.describe()
        assert "reserved name" not in play.stderr, "a register name is reserved by Ansible:\n%s" % play.stderr
        return play

    def run_playbook(self, playbook, args=(), env=None, wrapper=()):
        """Run an existing playbook (its own inventory: localhost) to its end, whatever its exit status; ``wrapper`` is a
        command that runs it (``with_rulebook.py ... --``)."""
        command = [*wrapper, str(BIN / "ansible-playbook"), *args, str(playbook)]
        return self._spawn(command, env, -1, None, ()).finish()

    def _spawn(self, command, env, umask, results_prefix, hosts):
        process = subprocess.Popen(
            command, cwd=self.workdir, env=dict(self.env, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, umask=umask
        )
        return Running(command, process, results_prefix, hosts, time.monotonic())


def task(module, register, **args):
    """A task of a thingspace.m2m module that registers its result as ``register`` and does not stop the play."""
    return {"name": register, "thingspace.m2m.%s" % module: args, "register": register, "ignore_errors": True}


def admin_task(emulator_url, register, path, body):
    """A play task calling the emulator's admin API (POST, JSON)."""
    return {
        "name": register,
        "ansible.builtin.uri": {"url": "%s/_emulator/%s" % (emulator_url, path), "method": "POST", "body_format": "json", "body": body},
        "register": register,
    }


def process_tree(root):
    """``root`` and every descendant, parents before children (from /proc). Ansible's workers call setsid,
    so the tree, not the process group, holds the module processes."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def alive(pid):
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command_line(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_tree(running):
    """SIGKILL a background run and all its descendants, children first; wait until none runs.
    Returns the command lines killed and what the run printed."""
    tree = process_tree(running.process.pid)
    killed = []
    for pid in reversed(tree):
        killed.append(command_line(pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stdout, stderr = running.process.communicate(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in tree), "the killed processes to be gone", timeout=10)
    return killed, stdout + stderr
