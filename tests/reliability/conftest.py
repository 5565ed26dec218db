"""Fixtures: one emulator for the session (a generated 300-device fleet), reset before every test; an
``ansible`` runner with a private state dir per test; ``figures`` that end up in tests/output/reliability.json
(docs/reliability.md is written from it); one PostgreSQL server for the session (tests/utils/postgresql.py).

A test marked ``both_ledgers`` runs twice: its ``ansible`` keeps the ledger in the state dir's SQLite file, then in
a fresh schema of the PostgreSQL server (``ledger_backend``)."""

from __future__ import annotations

import datetime
import json
import platform
import sys
import time

import pytest
from harness import ROOT, Ansible, write_fleet

sys.path.insert(0, str(ROOT / "tests" / "utils"))
from postgresql import postgresql  # noqa: F401  # pylint: disable=unused-import
from time_limit import time_limit

from thingspace_emulator import __version__ as emulator_version
from thingspace_emulator.testing import running_emulator

# Generous: the whole suite took 261 s (docs/reliability.md), a test a small part of it.
pytest_collection_modifyitems = time_limit(__file__, 600)

FIGURES_PATH = ROOT / "tests" / "output" / "reliability.json"
TIMINGS = ("accessTokenTtl", "sessionIdleTtl", "smsExpiry", "deliveryDelay", "devicePageSize", "callbackRetryDelays")
_figures = {}
_outcomes = {}
_started = time.monotonic()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    fleet = tmp_path_factory.mktemp("fleet") / "fleet.json"
    write_fleet(fleet)
    with running_emulator("--fleet", str(fleet), "--allow-any-callback-port", "--quiet") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_emulator(emulator):
    """Every test starts from the loaded fleet, with no faults, and the default timings afterwards."""
    config = emulator.call("GET", "config")
    emulator.reset()
    yield emulator
    emulator.reset()
    emulator.config(**{name: config[name] for name in TIMINGS})


def pytest_configure(config):
    config.addinivalue_line("markers", "both_ledgers: run the test with the ledger in SQLite, then in PostgreSQL")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_ledgers"):
        metafunc.parametrize("ledger_backend", ["sqlite", "postgresql"])


@pytest.fixture
def ledger_backend():
    """Where the ``ansible`` fixture keeps the ledger; tests marked both_ledgers get both."""
    return "sqlite"


@pytest.fixture
def database(request):
    """A fresh ledger schema on the session's PostgreSQL server, as ``Ledger`` takes it."""
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

    server = request.getfixturevalue("postgresql")
    return Database(server.url(), server.password, server.new_schema())


@pytest.fixture
def ansible(tmp_path, emulator, ledger_backend, request):
    return Ansible(tmp_path, emulator.url, request.getfixturevalue("database") if ledger_backend == "postgresql" else None)


@pytest.fixture
def figures(request):
    """figures[name] = value: measurements of this test, saved under its name."""
    return _figures.setdefault(request.node.name, {})


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        _outcomes[report.nodeid] = {"outcome": outcome, "seconds": round(report.duration, 2)}


def pytest_sessionfinish(session):
    if not _outcomes:  # nothing ran (--collect-only): the last run's figures stay
        return
    from ansible.release import __version__ as ansible_version

    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "ansible_core": ansible_version,
        "emulator": emulator_version,
        "platform": platform.platform(),
        "executable": sys.executable,
        "suite_seconds": round(time.monotonic() - _started, 1),
    }
    FIGURES_PATH.write_text(json.dumps({"run": run, "tests": _outcomes, "figures": _figures}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
