"""Every suite has a time limit (tests/utils/time_limit.py, pytest-timeout): a test that hangs fails with its name within
the limit and the suite goes on, instead of hanging until the CI job's limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITES = {"unit": 120, "emulator": 60, "reliability": 600, "eda": 300, "docs": 600, "release": 600}

HANGING = '''
import asyncio
import socket

import pytest


def test_waits_for_a_connection_that_never_comes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.accept()


@pytest.mark.asyncio
async def test_a_source_that_listens_and_never_stops():
    await asyncio.Future()


def test_after_them():
    pass
'''

LIMITS = '''
def pytest_collection_finish(session):
    for item in session.items:
        marker = item.get_closest_marker("timeout")
        print("LIMIT", item.nodeid, marker.args[0] if marker else None)
'''


def pytest_run(*args, cwd, pythonpath=None):
    """pytest in a subprocess, its summary lines whole (COLUMNS)."""
    env = dict(os.environ, COLUMNS="300", **({"PYTHONPATH": str(pythonpath)} if pythonpath else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, env=env)


def test_a_hanging_test_fails_with_its_name_within_the_limit(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent('''
        import sys
        sys.path.insert(0, %r)
        from time_limit import time_limit
        pytest_collection_modifyitems = time_limit(__file__, 2)
    ''' % str(ROOT / "tests" / "utils")))
    (tmp_path / "test_hangs.py").write_text(HANGING)
    started = time.monotonic()
    run = pytest_run("-q", "--rootdir", str(tmp_path), str(tmp_path), cwd=tmp_path)
    took = time.monotonic() - started
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED test_hangs.py::test_waits_for_a_connection_that_never_comes - Failed: Timeout" in run.stdout, run.stdout
    assert "FAILED test_hangs.py::test_a_source_that_listens_and_never_stops - Failed: Timeout" in run.stdout, run.stdout
    assert "2 failed, 1 passed" in run.stdout and took < 30


def test_every_test_of_every_suite_has_its_suite_s_limit(tmp_path):
    suites = {path.parent.name for path in (ROOT / "tests").glob("*/conftest.py")}
    assert suites == set(SUITES), "suites without a limit here: %s" % sorted(suites - set(SUITES))
    (tmp_path / "print_limits.py").write_text(LIMITS)
    for suite, seconds in SUITES.items():  # one run each, as make runs them (their test files share names)
        run = pytest_run("--collect-only", "-q", "-p", "print_limits", "tests/" + suite, cwd=ROOT, pythonpath=tmp_path)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        limits = {line.rsplit(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith("LIMIT ")}
        assert limits == {str(seconds)}, (suite, limits)
