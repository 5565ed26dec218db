"""A wrong option of either source of the rulebook thingspace.m2m.sms_callbacks, under the real ansible-rulebook:
it exits non-zero (the other source stops too) with one line naming the source, the option and the reason, and no
traceback. Nothing is reached but loopback: the history source's API URL is a closed port of 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from with_rulebook import free_port, running_rulebook

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXIT_TIMEOUT = 120


@pytest.mark.parametrize("change, line", [
    ({"callbacks_port": 70000}, "thingspace.m2m.callbacks: port 70000 is not a TCP port"),
    ({"callbacks_port": None}, "thingspace.m2m.callbacks: the argument port is required"),
    ({"thingspace_account": None}, "thingspace.m2m.sms_history: the argument account_name is required"),
    ({"callbacks_path": "/a/{b}"}, "thingspace.m2m.callbacks: path '/a/{b}' must not contain braces"),
    ({"history_interval": 0}, "thingspace.m2m.sms_history: interval and timeout must be more than 0, retries 0 or more"),
    ({"history_retries": "many"}, "thingspace.m2m.sms_history: the argument retries has the wrong type: expected a whole number"),
], ids=["callbacks port", "no callbacks port", "no account", "callbacks path", "history interval", "history retries"])
def test_a_wrong_option_stops_the_rulebook_with_one_line(tmp_path, change, line):
    variables = dict({"callbacks_port": free_port(), "callbacks_check_port": False, "thingspace_account": "0000123456-00001",
                      "history_interval": 5, "reply_keyword": "YES"}, **change)
    env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ["PATH"]), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_HOME=str(tmp_path / "ansible"), THINGSPACE_STATE_DIR=str(tmp_path / "state"),
               THINGSPACE_API_URL="http://127.0.0.1:%d" % free_port(), THINGSPACE_CLIENT_ID="c", THINGSPACE_CLIENT_SECRET="s",
               THINGSPACE_USERNAME="u", THINGSPACE_PASSWORD="p", THINGSPACE_CALLBACK_USERNAME="rulebook", THINGSPACE_CALLBACK_PASSWORD="pw")
    with running_rulebook(str(tmp_path), env, variables, subprocess.PIPE) as (rulebook, _inventory):
        output = rulebook.communicate(timeout=EXIT_TIMEOUT)[0]
    assert rulebook.returncode != 0, output
    assert output.rstrip().splitlines()[-1] == line, output
    assert "Traceback" not in output and not re.search(r"\.py:\d+ ", output), output
