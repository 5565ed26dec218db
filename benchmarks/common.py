"""Shared pieces of the benchmarks: paths, the environment the playbooks run in, timing of subprocesses,
counting requests in the emulator's log, medians and ratios."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
COLLECTIONS = os.path.join(REPO, ".collections")
PYTHON = sys.executable

# tests/utils/postgresql.py: the PostgreSQL server the ledger benchmarks start, as the tests do.
sys.path.insert(0, os.path.join(REPO, "tests", "utils"))

CREDENTIALS = {
    "THINGSPACE_CLIENT_ID": "emulator-client",
    "THINGSPACE_CLIENT_SECRET": "emulator-secret",
    "THINGSPACE_USERNAME": "emulator-user",
    "THINGSPACE_PASSWORD": "emulator-pass",
}
OAUTH_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
SMS_PATH = "/api/m2m/v1/sms"


def before_collection(workdir, ref):
    """The collection at ``ref`` under WORKDIR/before/ansible_collections/thingspace/m2m: (collections path, commit)."""
    root = os.path.join(workdir, "before")
    dest = os.path.join(root, "ansible_collections", "thingspace", "m2m")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", ref], capture_output=True, text=True, check=True).stdout.strip()
    return root, commit


def ansible_env(workdir, api_url, collections=COLLECTIONS, **extra):
    """The environment of every playbook and script run: the emulator's URL and credentials, this checkout as
    the collection, temporary files inside ``workdir``, no ansible.cfg from elsewhere."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("THINGSPACE_", "ANSIBLE_")):
            del env[name]
    env.update(CREDENTIALS)
    env.update(
        THINGSPACE_API_URL=api_url,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "ansible-local"),
        ANSIBLE_REMOTE_TMP=os.path.join(workdir, "ansible-remote"),
        ANSIBLE_CONFIG=os.path.join(workdir, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=os.path.dirname(PYTHON) + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra)
    return env


def write_inventory(workdir):
    """An ansible.cfg-free set-up: localhost on the local connection with this Python."""
    with open(os.path.join(workdir, "ansible.cfg"), "w", encoding="utf-8") as handle:
        handle.write("[defaults]\n")
    path = os.path.join(workdir, "inventory.ini")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % PYTHON)
    return path


class Timing(tuple):
    """(wall, cpu) seconds of a finished command; cpu is user + system time of it and every descendant it waited for."""

    __slots__ = ()

    def __new__(cls, wall, cpu):
        return super().__new__(cls, (wall, cpu))

    wall = property(lambda self: self[0])
    cpu = property(lambda self: self[1])


def peak_kb():
    """This process's peak resident memory since it started (exec) in kB, as the kernel counts it (VmHWM): unlike
    ru_maxrss, it does not hold the peak of the process that forked it."""
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command, env, cwd, log_path):
    """Run ``command`` to completion; its Timing. Output goes to ``log_path``; a failure raises with the end of
    that output."""
    with open(log_path, "wb") as log:
        cpu = _children_cpu()
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False)
        elapsed = Timing(time.perf_counter() - started, _children_cpu() - cpu)
    if completed.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read()[-3000:]
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(command[:3]), completed.returncode, tail))
    return elapsed


def playbook(workdir, inventory, play, env, log_name):
    """Timing of ``ansible-playbook`` on ``play`` (a file in ``workdir``)."""
    command = [os.path.join(os.path.dirname(PYTHON), "ansible-playbook"), "-i", inventory, play]
    return timed_run(command, env, workdir, os.path.join(workdir, "logs", log_name + ".log"))


def request_counts(emulator):
    """How many requests of each (method, path) the emulator has logged since its last reset."""
    return Counter((entry["method"], entry["path"]) for entry in emulator.requests())


def delta(after, before):
    return {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0)}


def median(values):
    return statistics.median(values)


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("inf")


def emit(result, path=None):
    """Print the figures of a benchmark run alone as JSON, and write them to ``path`` when given."""
    text = json.dumps(result, indent=2)
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    print(text)


def summary(values):
    """Median, min and max of a list of timings (seconds)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}
