"""The user guides run as written: every shell step and every playbook of README.md and docs/docsite/rst/*.rst.

Blocks are read as a reader sees them: ```sh/```shell/```console in Markdown, ``.. code-block:: shell`` (sh, bash,
console) in reStructuredText, and every yaml/yaml+jinja block that is a playbook (a list of plays). Each document's
blocks run in order, in one fresh directory (a file one step writes is there for the next), against an emulator on
loopback with its credentials exported as the guides say (THINGSPACE_*), a fresh state directory and the checkout's
tools on PATH. A console block runs its ``$`` lines; the rest is output. A playbook runs with ansible-playbook.

Two tables say what is not run as written; each entry gives its reason, and an entry that matches no block fails:
RUNS_ELSEWHERE (blocks that cannot run here) and SUBSTITUTIONS (the few values a reader supplies that the test
supplies instead). Any other block that fails is a step a user copies that does not work."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from postgresql import running_postgresql
from with_rulebook import free_port

from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import LISTENER_PORTS
from thingspace_emulator.testing import running_emulator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs" / "docsite" / "rst").glob("*.rst"))]
SHELLS = {"sh", "shell", "bash", "console"}
TIMEOUT = 300
# The emulator's default credentials (docs/emulator.md), which the guides export as the local example.
CREDENTIALS = {"client_id": "emulator-client", "client_secret": "emulator-secret", "username": "emulator-user", "password": "emulator-pass"}

# Blocks not run here: (document, the block's first line): why.
RUNS_ELSEWHERE = {
    ("README.md", "make demo   # creates .venv with what the demo needs, starts the emulator and ansible-rulebook on loopback, runs playbooks/demo.yml"):
        "make test runs this suite (and takes an hour); tests/reliability/test_secrets.py runs the demo as make demo does",
    ("docs/docsite/rst/guide_getting_started.rst", "$ ansible-galaxy collection install thingspace.m2m"):
        "installs from Galaxy and PyPI; make venv installed both here, and tests/release/test_galaxy_user.py runs the guide from the built tarball",
    ("docs/docsite/rst/guide_authentication.rst", "- name: Roll out wave 3"):
        "reads an ansible-vault file, whose password the reader types (the next block creates it)",
    ("docs/docsite/rst/guide_authentication.rst", "$ ansible-vault create secrets.vault.yml"):
        "interactive: ansible-vault opens an editor and asks for a password",
    ("docs/docsite/rst/guide_awx.rst", "$ ansible-builder build -f execution-environment.yml -t registry.example.com/ee/thingspace-m2m:1"):
        "builds and pushes a container image (ansible-builder, podman, a registry)",
    ("docs/docsite/rst/guide_awx.rst", "# rollout.yml: the collection's staged campaign, run from the project"):
        "a project file AWX runs with the job template's variables and credentials",
    ("docs/docsite/rst/guide_awx.rst", "# campaign_step.yml: one step of a running campaign"):
        "a project file AWX runs with the job template's variables and credentials",
    ("docs/docsite/rst/guide_awx.rst", "- name: Set up thingspace.m2m in AWX"):
        "needs an AWX controller and the awx.awx collection",
    ("docs/docsite/rst/guide_eda_controller.rst", "$ ansible-builder build -f decision-environment.yml -t registry.example.com/de/thingspace-m2m:1"):
        "builds and pushes a container image (ansible-builder, podman, a registry)",
    ("docs/docsite/rst/guide_eda_controller.rst", "- name: Set up the campaign rulebook in EDA controller"):
        "needs an EDA controller, an AWX controller and the ansible.eda collection",
}
# Steps that serve until stopped (a reader leaves them running in a terminal): (document, first line): the port the
# test waits for before the next step; they are stopped after the document's last step.
SERVERS = {
    ("docs/docsite/rst/guide_callbacks.rst", "export THINGSPACE_CALLBACK_USERNAME=thingspace THINGSPACE_CALLBACK_PASSWORD=...   # as registered"): "{port}",
    ("docs/docsite/rst/guide_campaigns.rst", "export THINGSPACE_CALLBACK_USERNAME=thingspace THINGSPACE_CALLBACK_PASSWORD=...   # as registered below"):
        "{port}",
}

# Values a reader supplies that the test supplies instead: (document, text in the block, replacement, why).
SUBSTITUTIONS = (
    ("docs/docsite/rst/guide_getting_started.rst", "$ python3 -m pip install ~/.ansible/collections/ansible_collections/thingspace/m2m/emulator\n", "",
     "make venv installed the emulator; tests/release/test_galaxy_user.py installs it from the collection as written"),
    ("docs/docsite/rst/guide_getting_started.rst", "--port 8780", "--port {port}", "another run may hold 8780: a free port"),
    ("docs/docsite/rst/guide_getting_started.rst", "http://127.0.0.1:8780", "http://127.0.0.1:{port}", "the same free port"),
    ("docs/docsite/rst/guide_callbacks.rst", "THINGSPACE_CALLBACK_PASSWORD=...", "THINGSPACE_CALLBACK_PASSWORD={listener_password}",
     "the listener password the reader registered from the vault (VAULT)"),
    ("docs/docsite/rst/guide_callbacks.rst", "callbacks_port: 5000", "callbacks_port: {port}", "another run may hold 5000: a free port"),
    ("docs/docsite/rst/guide_callbacks.rst", "sms_callbacks_public_url: https://iot.example.com:9002/thingspace",
     "sms_callbacks_public_url: http://127.0.0.1:{port}/thingspace",
     "the reader's reverse proxy (TLS, a public name, nginx) is not here: the source's own loopback address stands in"),
    ("docs/docsite/rst/guide_callbacks.rst", "wait_timeout: 1800", "wait_timeout: 120",
     "the emulator confirms within seconds: a wait that cannot succeed fails the test in minutes, not half an hour"),
    ("docs/docsite/rst/guide_campaigns.rst", "THINGSPACE_CALLBACK_PASSWORD=...", "THINGSPACE_CALLBACK_PASSWORD={listener_password}",
     "the listener password the reader registers from the vault (VAULT)"),
    ("docs/docsite/rst/guide_campaigns.rst", "callbacks_port: 9002\n", "callbacks_port: {port}\n", "another run may hold 9002: a free port"),
    ("docs/docsite/rst/guide_campaigns.rst", "http://127.0.0.1:9002", "http://127.0.0.1:{port}", "the same free port"),
    ("docs/docsite/rst/guide_postgresql.rst", "'postgresql://thingspace_ledger@db.example.com:5432/ops?sslmode=verify-full&sslrootcert=/etc/pki/db-ca.pem'",
     "'{ledger_url}'", "the reader's database: a PostgreSQL server the test starts on loopback (without TLS) stands in"),
    ("docs/docsite/rst/guide_postgresql.rst", "THINGSPACE_LEDGER_PASSWORD='...'", "THINGSPACE_LEDGER_PASSWORD='{ledger_password}'",
     "the password of the test's server"),
    ("docs/docsite/rst/guide_postgresql.rst", "-e @wave1.yml", "-e @../wave.yml", "the wave the reader sent with the SQLite ledger (BEFORE)"),
    ("docs/docsite/rst/guide_awx.rst", "'postgresql://thingspace_ledger@db.example.com:5432/ops?sslmode=verify-full'", "'{ledger_url}'",
     "the reader's database: a PostgreSQL server the test starts on loopback (without TLS) stands in"),
    ("docs/docsite/rst/guide_awx.rst", "THINGSPACE_LEDGER_PASSWORD='...'", "THINGSPACE_LEDGER_PASSWORD='{ledger_password}'",
     "the password of the test's server"),
)
# What a step's output must show, beyond its exit status 0 (a play that ignores an error passes): (document, first line): text.
EXPECT = {
    ("docs/docsite/rst/guide_provision.rst", "$ ansible-playbook thingspace.m2m.provision -e @wave3.yml --check"):
        "Check mode: would send to the selection group_name=east-wave (10 devices); 2 device(s) not active would be left out",
    ("docs/docsite/rst/guide_provision.rst", "$ ansible-playbook thingspace.m2m.provision -e @wave3.yml"):
        "Nothing to send: the 2 device(s) left to send under idempotency key wave3-apn-v1 are not active",
    ("docs/docsite/rst/guide_provision.rst", "$ ansible localhost -m thingspace.m2m.vz_sms_delivery_info -a idempotency_key=wave3-apn-v1"):
        "10 device(s): 10 accepted",
    ("docs/docsite/rst/guide_postgresql.rst",
     "$ export THINGSPACE_LEDGER_URL='postgresql://thingspace_ledger@db.example.com:5432/ops?sslmode=verify-full&sslrootcert=/etc/pki/db-ca.pem'"):
        "Nothing to send",
    ("docs/docsite/rst/guide_callbacks.rst", "- name: Provision east-wave and report its delivery"): "12 device(s): 10 Delivered, 2 Undelivered",
    ("docs/docsite/rst/guide_inventory.rst", "cat > update.yml <<'PLAY'"):
        "Sent to 6 device(s) in 1 request(s); 2 device(s) not active were left out (skip_inactive: true; devices_inactive); not active: "
        "89148000000000000118, 89148000000000000233",
    ("docs/docsite/rst/guide_inventory.rst", "cat > east-ledger.thingspace.yml <<'SOURCE'"): '"key": "east-fw-1.2"',
    ("docs/docsite/rst/guide_campaigns.rst", "- name: A staged campaign to east-wave"): "Campaign apn-v1: completed, wave 3 of 3",
    ("docs/docsite/rst/guide_campaigns.rst", "- name: A campaign that aborts"): "Campaign fw-7: aborted, wave 1 of 3",
    ("docs/docsite/rst/guide_campaigns.rst", "- name: Pause, resume and abort a campaign"): "Campaign apn-v1-west aborted by hand",
    ("docs/docsite/rst/guide_awx.rst", "ansible-inventory -i inventories/fleet.thingspace.yml --list --yaml --output fleet.yml"):
        "Nothing to send: the 10 device(s) already got this message under idempotency key east-reboot-1",
}
# What a reader of a document has done before its first step, run first: (document, a shell step, why).
BEFORE = (
    ("docs/docsite/rst/guide_postgresql.rst", "ansible-playbook thingspace.m2m.provision -e @../wave.yml",
     "a reader who moves a ledger to PostgreSQL has sent with the SQLite ledger: one send makes it"),
    *((document, 'ansible-galaxy collection build --output-path built "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/thingspace/m2m" && '
                 'mv built/thingspace-m2m-*.tar.gz thingspace-m2m-0.2.0.tar.gz',
       "a reader who builds an execution or decision environment has the collection's tarball: built from the checkout, named as the guide "
       "names it")
      for document in ("docs/docsite/rst/guide_awx.rst", "docs/docsite/rst/guide_eda_controller.rst")),
)
# What the vault holds in the plays that read vault_* variables: the emulator's credentials.
VAULT = {"vault_thingspace_" + name: value for name, value in CREDENTIALS.items()} | {"vault_listener_password": "listener-pw-docs"}


def blocks(document):
    """[(line, language, text)] of a document's code blocks."""
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    found = []
    if document.endswith(".md"):
        start = None
        for number, line in enumerate(lines):
            if line.startswith("```"):
                if start is None:
                    start, language = number, line[3:].strip()
                else:
                    found.append((start + 2, language, "\n".join(lines[start + 1:number]) + "\n"))
                    start = None
        return found
    for number, line in enumerate(lines):
        match = re.match(r"\.\. code-block:: (\S+)", line)
        if not match:
            continue
        body, end = [], number + 1
        while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
            body.append(lines[end])
            end += 1
        indent = min(len(text) - len(text.lstrip()) for text in body if text.strip())
        text = "\n".join(text[indent:] for text in body).strip("\n") + "\n"
        found.append((number + 3, match.group(1), text))
    return found


def is_playbook(language, text):
    if language not in ("yaml", "yaml+jinja"):
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, list) and bool(data) and all(isinstance(play, dict) and ("hosts" in play or "ansible.builtin.import_playbook" in play)
                                                         for play in data)


def steps(document):
    """[(line, kind, first line, text)] of the blocks a reader runs: kind shell, console or playbook."""
    found = []
    for line, language, text in blocks(document):
        if language in SHELLS:
            found.append((line, "console" if language == "console" else "shell", text.splitlines()[0], text))
        elif is_playbook(language, text):
            found.append((line, "playbook", text.splitlines()[0], text))
    return found


def console_commands(text):
    """The commands of a console block: its ``$`` lines, with their continuation lines."""
    commands, continued = [], False
    for line in text.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line[2:] if line.startswith("$ ") and not continued else line)
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


def run(command, work, env, what):
    """Run ``command`` in its own process group; what it left in the background (a server a step started with &) is
    stopped when it ends. Its output goes to a file: a background process keeps a pipe open."""
    log = work.parent / "output.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    assert process.returncode == 0, "%s failed (exit %s):\n%s" % (what, process.returncode, log.read_text()[-6000:])
    return log.read_text()


@contextlib.contextmanager
def serving(command, work, env, what, port):
    """Run a step that serves until stopped, in the background: wait until ``port`` listens, stop it at the end."""
    log = work.parent / ("server-%d.log" % port)
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.2)
        assert process.poll() is None, "%s stopped (exit %s):\n%s" % (what, process.returncode, log.read_text()[-6000:])
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def test_every_listed_block_exists():
    """An entry of RUNS_ELSEWHERE or SUBSTITUTIONS that matches no block is stale: the guide changed under it."""
    firsts = {(document, first) for document in DOCUMENTS for _line, _kind, first, _text in steps(document)}
    listed = set(RUNS_ELSEWHERE) | set(SERVERS)
    assert not listed - firsts, "RUNS_ELSEWHERE or SERVERS entries that match no block: %r" % sorted(listed - firsts)
    texts = {document: "".join(text for _line, _kind, _first, text in steps(document)) for document in DOCUMENTS}
    stale = [(document, old) for document, old, _new, _why in SUBSTITUTIONS if old not in texts[document]]
    assert not stale, "SUBSTITUTIONS that match no block: %r" % stale


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_guide_runs_as_written(document, tmp_path):
    runnable = [step for step in steps(document) if (document, step[2]) not in RUNS_ELSEWHERE]
    if not runnable:
        pytest.skip("%s: no block to run (%d listed in RUNS_ELSEWHERE)" % (document, len(steps(document))))
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    vault = tmp_path / "vault.yml"
    vault.write_text(yaml.safe_dump(VAULT))
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(running_emulator("--allow-any-callback-port", "--quiet"))
        # A port ThingSpace accepts for listeners: the modules warn about any other.
        values = {"port": free_port(sorted(LISTENER_PORTS - {80, 443})), "listener_password": VAULT["vault_listener_password"]}
        if any(where == document and "{ledger_url}" in new for where, _old, new, _why in SUBSTITUTIONS):
            server = stack.enter_context(running_postgresql())
            values.update(ledger_url=server.url(), ledger_password=server.password)
        env = {name: value for name, value in os.environ.items() if not name.startswith(("ANSIBLE_", "THINGSPACE_"))}
        env.update({"THINGSPACE_" + name.upper(): value for name, value in CREDENTIALS.items()})
        env.update(PATH="%s%s%s" % (BIN, os.pathsep, env["PATH"]), HOME=str(tmp_path / "home"), THINGSPACE_API_URL=emulator.url,
                   THINGSPACE_STATE_DIR=str(tmp_path / "state"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
        (tmp_path / "wave.yml").write_text(yaml.safe_dump({
            "sms_provision_account_name": "0000123456-00001", "sms_provision_group_name": "east-wave", "sms_provision_message": "APN=iot.example;MODE=2",
            "sms_provision_idempotency_key": "docs-before-v1", "sms_provision_max_devices": 12}))
        for where, command, _why in BEFORE:
            if where == document:
                run(["bash", "-e", "-c", command], work, env, "%s: the step before its first (BEFORE)" % document)
        for line, kind, first, text in runnable:
            for where, old, new, _why in SUBSTITUTIONS:
                if where == document:
                    text = text.replace(old, new.format(**values))
            what = "%s:%d (%s)" % (document, line, kind)
            if (document, first) in SERVERS:
                stack.enter_context(serving(["bash", "-e", "-c", text], work, env, what, int(SERVERS[document, first].format(**values))))
            elif kind == "playbook":
                playbook = work / ("block-%d.yml" % line)
                playbook.write_text(text)
                output = run([str(BIN / "ansible-playbook"), "-e", "@%s" % vault, str(playbook)], work, env, what)
            else:
                output = run(["bash", "-e", "-c", console_commands(text) if kind == "console" else text], work, env, what)
            if (document, first) in EXPECT:
                assert EXPECT[document, first] in output, "%s: %r is not in its output:\n%s" % (what, EXPECT[document, first], output[-6000:])
