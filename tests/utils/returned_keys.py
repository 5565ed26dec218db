"""The keys each module returns, recorded by the test runs, against the keys its RETURN documents.

The unit runner (tests/unit/conftest.py) and the integration runs (the callback plugin in
tests/integration/callback_plugins/) append one JSON line per module run, ``{"module", "keys", "failed"}``, to a file in
a records directory (``make unit``: the variable ``RETURNED_KEYS``; the callback: tests/output/ of the copy
``make integration`` runs). ``python tests/utils/returned_keys.py DIR`` (``make returns``) then fails unless, for
every module:

- every key a run returned is in RETURN (failed runs too, but for the failure fields every task has, FAILURE_FIELDS);
- every key in RETURN was returned by some run, so a key returned only in rare cases needs a test of that case.

Keys Ansible itself adds or documents for every module (``COMMON``) are left out on both sides."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "plugins" / "modules"
# Ansible's common return values and what the executor adds to any result.
COMMON = frozenset(["changed", "failed", "skipped", "warnings", "deprecations", "invocation", "diff", "exception", "attempts", "item",
                    "ansible_loop_var", "ansible_index_var", "skip_reason", "false_condition", "retries"])
# Of those, the keys Ansible reads as the task's own status: a module field of that name changes how the task is shown
# and tested (a campaign step returning a count "skipped" was shown skipped and was `is skipped`).
STATUS = frozenset(["skipped", "attempts", "retries", "skip_reason", "false_condition", "item", "ansible_loop_var", "ansible_index_var"])

# What every failed task of the collection returns, documented once in the troubleshooting guide (TROUBLESHOOTING):
# msg, and what ThingSpace answered (errors.ThingSpaceError.to_result). A failed run's other keys are checked.
FAILURE_FIELDS = frozenset(["msg", "status", "error_code", "error_message"])
TROUBLESHOOTING = ROOT / "docs" / "docsite" / "rst" / "guide_troubleshooting.rst"


def record(directory, module, keys, failed):
    """Append one run of ``module`` (its short name) to ``directory``'s file of this process."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ("%s.jsonl" % _process_name()), "a") as out:
        out.write(json.dumps({"module": module, "keys": sorted(keys), "failed": bool(failed)}) + "\n")


def _process_name():
    return "run-%d" % os.getpid()


def documented(module):
    """The top-level keys of ``module``'s RETURN."""
    tree = ast.parse((MODULES / ("%s.py" % module)).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "RETURN" for target in node.targets):
            return set(yaml.safe_load(node.value.value) or {}) - COMMON
    raise ValueError("%s has no RETURN" % module)


def returned(directory):
    """module → the keys its runs returned, from every record file under ``directory``; a failed run's failure fields
    are left out (FAILURE_FIELDS)."""
    keys = {}
    for path in sorted(Path(directory).rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            run = json.loads(line)
            left_out = COMMON | (FAILURE_FIELDS if run["failed"] else frozenset())
            keys.setdefault(run["module"], set()).update(key for key in run["keys"] if not key.startswith("_ansible_") and key not in left_out)
    return keys


def problems(directory):
    """What differs between the recorded runs and RETURN, one line each; empty when they agree."""
    runs = returned(directory)
    guide = TROUBLESHOOTING.read_text()
    found = ["%s does not name the failure field %r" % (TROUBLESHOOTING.relative_to(ROOT), key) for key in sorted(FAILURE_FIELDS)
             if "``%s``" % key not in guide]
    for path in sorted(MODULES.glob("*.py")):
        module = path.stem
        if module not in runs:
            found.append("%s: no run recorded" % module)
            continue
        docs = documented(module)
        found.extend("%s: RETURN documents %r, which Ansible reads as the task's status" % (module, key) for key in sorted(docs & STATUS))
        found.extend("%s: returns %r, which RETURN does not document" % (module, key) for key in sorted(runs[module] - docs))
        found.extend("%s: RETURN documents %r, which no test run returned" % (module, key) for key in sorted(docs - runs[module]))
    return found


def main(argv):
    if len(argv) != 2 or not Path(argv[1]).is_dir():
        sys.exit("usage: %s DIR (the records of make unit and make integration)" % argv[0])
    found = problems(argv[1])
    for line in found:
        print(line)
    if found:
        sys.exit("%d difference(s) between what the modules return and their RETURN" % len(found))
    print("every module returns exactly what its RETURN documents (%d modules)" % len(list(MODULES.glob("*.py"))))


if __name__ == "__main__":
    main(sys.argv)
