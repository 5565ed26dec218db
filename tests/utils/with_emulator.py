"""Run a command with a ThingSpace emulator on loopback: `with_emulator.py [--config FILE] [--emulator-arg=ARG ...] -- CMD...`.

The command gets THINGSPACE_API_URL and the emulator's default credentials in its environment; --config also
writes them as Ansible variables (the ansible-test integration_config.yml). The emulator stops when the command
ends; the command's exit status is returned."""

import argparse
import os
import subprocess
import sys

import yaml

from thingspace_emulator.testing import running_emulator

CREDENTIALS = {
    "client_id": "emulator-client",
    "client_secret": "emulator-secret",
    "username": "emulator-user",
    "password": "emulator-pass",
}

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", help="write the integration variables (YAML) here")
parser.add_argument("--emulator-arg", action="append", default=[], help="argument for thingspace-emulator (repeatable)")
parser.add_argument("command", nargs=argparse.REMAINDER)
options = parser.parse_args()
command = options.command[1:] if options.command[:1] == ["--"] else options.command
if not command:
    parser.error("no command given")

with running_emulator(*options.emulator_arg) as emulator:
    print("==> thingspace-emulator listening at %s (its log: %s)" % (emulator.url, emulator.log_path), file=sys.stderr, flush=True)
    env = dict(os.environ, THINGSPACE_API_URL=emulator.url, **{"THINGSPACE_" + k.upper(): v for k, v in CREDENTIALS.items()})
    if options.config:
        os.makedirs(os.path.dirname(os.path.abspath(options.config)), exist_ok=True)
        with open(options.config, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"thingspace_api_url": emulator.url, **{"thingspace_" + k: v for k, v in CREDENTIALS.items()}}, handle)
    code = subprocess.call(command, env=env)
    if code:
        with open(emulator.log_path, encoding="utf-8", errors="replace") as log:
            sys.stderr.write("--- emulator log ---\n" + log.read()[-4000:])
sys.exit(code)
