"""A Galaxy user's path: the getting-started guide run as written by someone who has only the built tarball.

The reader's set-up before the guide (its Install section says so): a virtual environment with ansible-core, made
here in a temporary HOME from the interpreter this run uses. Then every step of the guide runs in order as one shell
session in a directory of that HOME (its exports and the emulator it starts in the background last until the end),
each playbook saved to a file and run with ansible-playbook: the collection installed from the tarball with
ansible-galaxy, the Python requirements and the emulator installed with pip from the installed collection, the
emulator started, the playbooks run against it. Nothing of the checkout is on any path: PATH leaves out the checkout's
venv, PYTHONPATH and ANSIBLE_* are unset, the working directory is in the temporary HOME. pip installs from the
package registry, pinned by the checkout's constraints file (PIP_CONSTRAINT, copied into HOME), through the pip cache of
the user running the tests (PIP_CACHE_DIR), which makes a second run faster."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from test_guides import console_commands, run, steps
from with_rulebook import free_port

ROOT = Path(__file__).resolve().parents[2]
GUIDE = "docs/docsite/rst/guide_getting_started.rst"
CONSTRAINTS = ROOT / "requirements" / ("constraints-py%d.%d.txt" % sys.version_info[:2])
# What the test supplies instead of the reader: (text in a step, replacement, why).
SUBSTITUTIONS = (
    ("ansible-galaxy collection install thingspace.m2m\n", "ansible-galaxy collection install {tarball}\n",
     "the tarball stands in for Galaxy, as the guide says for a release tarball"),
    ("--port 8780", "--port {port}", "another run may hold 8780: a free port"),
    ("http://127.0.0.1:8780", "http://127.0.0.1:{port}", "the same free port"),
)
# The step that starts the emulator in the background: the test waits for its port before the next step (a reader
# types the next commands in the meantime).
SERVER = "$ python3 -m pip install ~/.ansible/collections/ansible_collections/thingspace/m2m/emulator"
# What the guide's steps must show, beyond their exit status.
EXPECT = ("Sent to the selection group_name=east-wave (12 devices) in 1 request(s)",
          "Nothing to send: the 12 device(s) already got this message under idempotency key wave1-apn-v1")


def wait_for_port(port):
    return ("for i in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null && break; sleep 0.2; done; "
            "(exec 3<>/dev/tcp/127.0.0.1/%d) || { echo 'the emulator does not listen on %d' >&2; exit 1; }\n" % (port, port, port))


def session(work, values):
    """The guide's steps as one bash script: shell and console steps as written, playbooks saved and run."""
    script = []
    for line, kind, first, text in steps(GUIDE):
        for old, new, _why in SUBSTITUTIONS:
            text = text.replace(old, new.format(**values))
        if kind == "playbook":
            playbook = work / ("block-%d.yml" % line)
            playbook.write_text(text)
            script.append("ansible-playbook %s\n" % shlex.quote(playbook.name))
        else:
            script.append(console_commands(text) if kind == "console" else text)
            if first == SERVER:
                script.append(wait_for_port(values["port"]))
    return "".join(script)


def test_the_getting_started_guide_from_the_tarball(tarball, tmp_path):
    firsts = [first for _line, _kind, first, _text in steps(GUIDE)]
    assert SERVER in firsts, "the guide no longer starts the emulator with %r" % SERVER
    texts = "".join(text for _line, _kind, _first, text in steps(GUIDE))
    assert all(old in texts for old, _new, _why in SUBSTITUTIONS), "a SUBSTITUTIONS entry matches no step of the guide"

    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    (home / "constraints.txt").write_text(CONSTRAINTS.read_text())
    venv = home / "ansible"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    outside = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry and not Path(entry).resolve().is_relative_to(ROOT)]
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("ANSIBLE_", "THINGSPACE_", "PYTHON", "VIRTUAL_ENV", "PIP_CONSTRAINT", "MAKE"))}
    env.update(HOME=str(home), PATH=os.pathsep.join([str(venv / "bin"), *outside]), VIRTUAL_ENV=str(venv), ANSIBLE_NOCOLOR="1",
               PIP_CONSTRAINT=str(home / "constraints.txt"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               # pip's cache of the user running the tests: the wheels of the last run, not a path of the checkout
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"))
    run(["python3", "-m", "pip", "install", "-q", "ansible-core"], work, env, "the reader's set-up: ansible-core in a virtual environment")

    values = {"tarball": str(tarball), "port": free_port()}
    output = run(["bash", "-e", "-c", session(work, values)], work, env, "%s from the tarball" % GUIDE)
    for text in EXPECT:
        assert text in output, "%r is not in the output:\n%s" % (text, output[-6000:])

    # The installed collection is as the tarball made it: installing the emulator wrote nothing into it (Python's
    # __pycache__ of the plugins Ansible loaded aside).
    verify = subprocess.run(["ansible-galaxy", "collection", "verify", "--offline", "thingspace.m2m"], cwd=work, env=env, capture_output=True, text=True,
                            check=False)
    changed = [line.strip() for line in verify.stdout.splitlines() if line.startswith("    ") and "__pycache__" not in line]
    assert "Verifying 'thingspace.m2m:" in verify.stdout and not changed, verify.stdout + verify.stderr
    # What ran was the tarball's collection and the emulator it ships, both under HOME.
    listed = run(["ansible-galaxy", "collection", "list", "thingspace.m2m"], work, env, "ansible-galaxy collection list")
    assert str(home / ".ansible" / "collections" / "ansible_collections") in listed and str(ROOT) not in listed, listed
    emulator = run(["python3", "-c", "import thingspace_emulator; print(thingspace_emulator.__file__)"], work, env, "the emulator's package")
    assert emulator.strip().startswith(str(venv)), emulator
