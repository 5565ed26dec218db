"""Run a command while ansible-rulebook runs the rulebook thingspace.m2m.sms_callbacks on loopback:
`with_rulebook.py [--log FILE] -- CMD...` (inside with_emulator.py, whose THINGSPACE_* variables both use).

The rulebook's callbacks source listens on 127.0.0.1, on a free port of those ThingSpace accepts for listeners (so the
modules have nothing to warn about), and records into the ledger of THINGSPACE_STATE_DIR. The command gets
THINGSPACE_CALLBACKS_URL (the source's base URL, to which <account>/<service> is appended), the listener credentials
THINGSPACE_CALLBACK_USERNAME and THINGSPACE_CALLBACK_PASSWORD (those of the environment, else a new password) and
ANSIBLE_INVENTORY, the rulebook's inventory (localhost). The rulebook stops when the command ends; its output goes to
--log. The command's exit status is returned."""

import argparse
import contextlib
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".collections"))
from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import LISTENER_PORTS

BIN = os.path.dirname(sys.executable)
START_TIMEOUT = 60


def free_port(candidates=(0,)):
    """A port of ``candidates`` (any port: 0) that is free on 127.0.0.1 now, tried in random order; None if none is."""
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    return None


@contextlib.contextmanager
def running_rulebook(work, env, variables, stdout, rulebook="thingspace.m2m.sms_callbacks"):
    """ansible-rulebook running the rulebook ``rulebook`` (thingspace.m2m.sms_callbacks) for localhost, with ``variables`` (written into
    ``work`` with the inventory) and its output to ``stdout``, until the block ends: (the process, the inventory's path,
    which playbooks run beside it use too)."""
    inventory, variables_path = os.path.join(work, "inventory.yml"), os.path.join(work, "vars.yml")
    with open(inventory, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}, handle)
    with open(variables_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(variables, handle)
    rulebook = subprocess.Popen([os.path.join(BIN, "ansible-rulebook"), "-r", rulebook, "-i", inventory,
                                 "--vars", variables_path, "-v"], env=env, cwd=work, stdout=stdout, stderr=subprocess.STDOUT, text=True)
    try:
        yield rulebook, inventory
    finally:
        rulebook.terminate()
        try:
            rulebook.wait(20)
        except subprocess.TimeoutExpired:
            rulebook.kill()
            rulebook.wait()


def wait_for_port(port, rulebook, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if rulebook.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    with open(log_path, encoding="utf-8", errors="replace") as log:
        sys.exit("with_rulebook.py: the callbacks source did not listen on port %d; ansible-rulebook wrote:\n%s" % (port, log.read()[-4000:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", default="rulebook.log", help="where ansible-rulebook's output goes")
    parser.add_argument("--account", default="0000123456-00001", help="the account whose queued device SMS the rulebook reads")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given")
    # Not 80 or 443: binding them needs privileges.
    port = free_port(sorted(LISTENER_PORTS - {80, 443}))
    if port is None:
        sys.exit("with_rulebook.py: every port ThingSpace accepts for listeners (9001-9006, 50551-50559, 28200-28220) is taken on 127.0.0.1")
    listener = {"THINGSPACE_CALLBACK_USERNAME": os.environ.get("THINGSPACE_CALLBACK_USERNAME") or "rulebook",
                "THINGSPACE_CALLBACK_PASSWORD": os.environ.get("THINGSPACE_CALLBACK_PASSWORD") or secrets.token_urlsafe(16)}
    # ansible-rulebook runs ansible-galaxy, and the reply playbook, from PATH.
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], **listener)
    with tempfile.TemporaryDirectory(prefix="thingspace-rulebook-") as work:
        variables = {"callbacks_port": port, "thingspace_account": options.account, "history_interval": 5, "reply_keyword": "YES"}
        with open(options.log, "w", encoding="utf-8") as log, running_rulebook(work, env, variables, log) as (rulebook, inventory):
            wait_for_port(port, rulebook, options.log)
            print("==> ansible-rulebook: the callbacks source of the rulebook thingspace.m2m.sms_callbacks listening at http://127.0.0.1:%d "
                  "(its log: %s)" % (port, options.log), file=sys.stderr, flush=True)
            code = subprocess.call(command, env=dict(env, THINGSPACE_CALLBACKS_URL="http://127.0.0.1:%d" % port, ANSIBLE_INVENTORY=inventory))
    return code


if __name__ == "__main__":
    sys.exit(main())
