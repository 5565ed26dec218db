"""`make mutation`: mutation testing of collection files (the arguments, paths in the checkout) with mutmut against
tests/unit. Prints, and writes to tests/output/mutation.txt, the score per file and every surviving mutant with its diff.

mutmut names a mutant after the module its path spells and runs the tests on a copy in mutants/. So it runs in
.collections, where the files are ansible_collections/thingspace/m2m/<path>, the module name the tests import. The
copy is made afresh on each run, and gets its own .collections link: conftest.py puts ROOT/.collections first on
sys.path, and a subprocess test imports through it; both must reach the mutated copy, not the checkout.

The PostgreSQL ledger's tests need a server: this starts one per mutmut child (a test session takes one no other session
holds, tests/utils/postgresql.py) and sets CI, so that a missing server fails the run instead of skipping those tests,
which would leave their mutants undetected.

A file with no killed mutant fails the run: its tests did not run the mutated code (mutmut's own forced-failure
check stops the run earlier when no test reaches a mutated function at all).

A run can be stopped and taken up again: --minutes stops mutmut after that time (mutmut records each verdict as it
gets it), and the next run keeps the verdicts when every file but the mutated ones is as it was (FINGERPRINT); mutmut
itself then tests again only the mutants of functions that changed and of their callers. Anything else changed, or
--fresh, starts over. --survivors tests again only the undetected mutants of the previous run, against the tests as
they are now (after tests were added for them); the other verdicts stay as they were, and the next run without it
starts over.
"""

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from postgresql import POOL, PostgresqlUnavailable, running_postgresql

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".collections"
PREFIX = Path("ansible_collections/thingspace/m2m")
COPY = WORK / "mutants" / PREFIX
REPORT = ROOT / "tests" / "output" / "mutation.txt"
LOG = ROOT / "tests" / "output" / "mutation.log"
# What the kept verdicts were reached with: every file but the mutated ones, and mutmut's version.
FINGERPRINT = WORK / "mutants" / "thingspace-fingerprint"
# Stryker's definition: a timeout is a detected mutant too.
DETECTED = ("killed", "timeout", "segfault")
UNCHECKED = "not checked"
# Tests that read the collection's source as text, not run it: mutmut's copy imports mutmut.
SOURCE_READERS = ("tests/unit/test_environments.py",)


def undetected(status):
    return status not in DETECTED and status != UNCHECKED


def listed_files():
    """The checkout's files as git lists them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True).stdout
    return sorted(name for name in listed.decode().split("\0") if name and (ROOT / name).is_file())


def fingerprint(files):
    """A digest of every listed file but ``files`` (path and content) and of mutmut's version."""
    from importlib.metadata import version

    digest = hashlib.sha256(version("mutmut").encode())
    for name in listed_files():
        if name not in files:
            digest.update(b"\0%s\0%s" % (name.encode(), hashlib.sha256((ROOT / name).read_bytes()).digest()))
    return digest.hexdigest()


def copy_unmutated(files):
    """Every listed file but ``files`` into mutants/, as it is in the checkout."""
    for name in listed_files():
        if name not in files:
            target = COPY / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)


def prepare(files, fresh):
    """mutants/ with every file but the ones mutmut copies and mutates, a link back to itself, and mutmut's config;
    the previous run's mutants/ (its verdicts) is kept when the fingerprint is the same and ``fresh`` is false.
    Returns whether it was kept."""
    if not (WORK / PREFIX).is_dir():
        sys.exit("mutation.py: %s is missing; run make venv" % (WORK / PREFIX))
    current = fingerprint(files)
    kept = not fresh and FINGERPRINT.is_file() and FINGERPRINT.read_text() == current
    if not kept:
        shutil.rmtree(WORK / "mutants", ignore_errors=True)
        copy_unmutated(files)
        link = COPY / ".collections" / PREFIX
        link.parent.mkdir(parents=True)
        link.symlink_to(COPY)
        FINGERPRINT.write_text(current)
    paths = ", ".join('"%s"' % (PREFIX / name) for name in files)
    selection = ", ".join('"%s"' % arg for arg in [PREFIX / "tests" / "unit", *("--ignore=%s" % (PREFIX / name) for name in SOURCE_READERS)])
    (WORK / "pyproject.toml").write_text(
        "# Written by tests/utils/mutation.py for `make mutation`.\n[tool.mutmut]\nsource_paths = [%s]\n"
        "pytest_add_cli_args_test_selection = [%s]\nuse_git_change_detection = false\n" % (paths, selection)
    )
    return kept


def forget_interrupted():
    """Mark the mutants a stopped run interrupted as not checked, so that this run tests them (mutmut keeps any verdict)."""
    os.chdir(WORK)
    from mutmut.__main__ import walk_mutatable_files
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        interrupted = [key for key, code in data.exit_code_by_key.items() if status_by_exit_code[code] == "check was interrupted by user"]
        if interrupted:
            data.exit_code_by_key.update(dict.fromkeys(interrupted))
            data.save()
    os.chdir(ROOT)


def results():
    """{file: {mutant name: status}} and {mutant name: diff} of the survivors, read with mutmut in .collections."""
    os.chdir(WORK)
    from mutmut.__main__ import walk_mutatable_files
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    statuses, diffs = {}, {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        name = str(path.relative_to(PREFIX))
        statuses[name] = {key: status_by_exit_code[code] for key, code in data.exit_code_by_key.items()}
        for key, status in statuses[name].items():
            if undetected(status):
                diffs[key] = get_diff_for_mutant(key, path=path)
    return statuses, diffs


def report(statuses, diffs, seconds):
    lines = ["Mutation testing with mutmut against tests/unit, %.0f s" % seconds, ""]
    lines.append("%-42s %8s %8s %8s %8s %10s %7s" % ("file", "mutants", "checked", "killed", "timeout", "undetected", "score"))
    rows = []
    for name, by_key in sorted(statuses.items()):
        values = list(by_key.values())
        killed, timeout = values.count("killed") + values.count("segfault"), values.count("timeout")
        rows.append((name, len(values), len(values) - values.count(UNCHECKED), killed, timeout))
    rows.append(("all", *(sum(row[column] for row in rows) for column in (1, 2, 3, 4))))
    for name, count, checked, killed, timeout in rows:
        caught = killed + timeout
        lines.append("%-42s %8d %8d %8d %8d %10d %6.1f%%" % (name, count, checked, killed, timeout, checked - caught, 100.0 * caught / max(checked, 1)))
    lines += ["", "score: detected (killed or timed out) / checked mutants; undetected: survived, no tests, suspicious"]
    if rows[-1][1] > rows[-1][2]:
        lines.append("partial: %d mutants not checked yet; make mutation again goes on from here" % (rows[-1][1] - rows[-1][2]))
    lines.append("")
    for name, by_key in sorted(statuses.items()):
        survivors = sorted(key for key, status in by_key.items() if undetected(status))
        lines += ["## %s: %d undetected" % (name, len(survivors)), ""]
        for key in survivors:
            lines += ["%s (%s)" % (key.rpartition(".")[2], by_key[key]), diffs[key], ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="collection files to mutate, e.g. plugins/module_utils/sms.py")
    parser.add_argument("--max-children", type=int, default=os.cpu_count(), help="mutants tested at once")
    parser.add_argument("--minutes", type=float, help="stop mutmut after this long and report what it checked")
    parser.add_argument("--fresh", action="store_true", help="forget the previous run's verdicts")
    parser.add_argument("--survivors", action="store_true", help="test again the previous run's undetected mutants, against the tests as they are now")
    options = parser.parse_args()
    missing = [name for name in options.files if not (ROOT / name).is_file()]
    if missing:
        sys.exit("mutation.py: no such file: %s (set MUTATION_FILES)" % " ".join(missing))
    survivors = []
    if options.survivors:
        if not FINGERPRINT.is_file():
            sys.exit("mutation.py: --survivors needs a previous run")
        statuses, _diffs = results()
        survivors = sorted(key for by_key in statuses.values() for key, status in by_key.items() if undetected(status))
        copy_unmutated(options.files)
        FINGERPRINT.write_text("verdicts of other tests")  # the next run starts over
        print("mutation.py: testing again %d undetected mutants" % len(survivors), flush=True)
    elif prepare(options.files, options.fresh):
        print("mutation.py: going on from the previous run's verdicts (--fresh forgets them)", flush=True)
        forget_interrupted()
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", str(options.max_children), *survivors]
    started = time.monotonic()
    with contextlib.ExitStack() as servers:
        try:
            pool = [servers.enter_context(running_postgresql()).description() for _child in range(options.max_children)]
        except PostgresqlUnavailable as exc:
            sys.exit("mutation.py: the PostgreSQL ledger's tests need a server: %s" % exc)
        env = dict(os.environ, CI="1", **{POOL: json.dumps(pool)})
        with contextlib.ExitStack() as files:
            streams = {}
            if not sys.stdout.isatty():
                # mutmut's progress line is redrawn many times a second: a log keeps it out of CI output.
                print("mutation.py: mutmut run, output in %s" % LOG.relative_to(ROOT), flush=True)
                streams = dict(stdout=files.enter_context(open(LOG, "w", encoding="utf-8")), stderr=subprocess.STDOUT)
            mutmut = subprocess.Popen(command, cwd=WORK, env=env, **streams)
            try:
                code = mutmut.wait(timeout=options.minutes and options.minutes * 60)
            except subprocess.TimeoutExpired:
                # mutmut stops its workers on SIGINT and keeps every verdict it has; stopped before its mutants, it
                # exits with an error, and the report says that none was checked.
                mutmut.send_signal(signal.SIGINT)
                mutmut.wait()
                code = 0
    seconds = time.monotonic() - started
    if code:
        sys.exit("mutation.py: mutmut run failed (exit %d)" % code)
    statuses, diffs = results()
    text = report(statuses, diffs, seconds)
    REPORT.write_text(text + "\n", encoding="utf-8")
    print(text)
    print("Written to %s" % REPORT.relative_to(ROOT))
    unreached = [name for name, by_key in statuses.items() if "killed" not in by_key.values()]
    if unreached:
        sys.exit("mutation.py: no mutant of %s was killed: the tests did not run the mutated code" % ", ".join(unreached))


if __name__ == "__main__":
    main()
