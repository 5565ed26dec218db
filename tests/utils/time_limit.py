"""Every test suite's time limit (pytest-timeout): a suite's conftest.py sets it with
``pytest_collection_modifyitems = time_limit(__file__, SECONDS)``. A test over it fails with its name (pytest.ini
sets the signal method: the test is interrupted, reported FAILED with "Timeout", and the suite goes on), instead of
hanging until the CI job's limit."""

from __future__ import annotations

from pathlib import Path

import pytest


def time_limit(conftest, seconds):
    """The hook that gives each test under the directory of ``conftest`` (a conftest.py's ``__file__``) the limit
    ``seconds``, unless the test has a timeout mark of its own."""
    suite = Path(conftest).resolve().parent

    def pytest_collection_modifyitems(items):
        for item in items:
            if suite in Path(item.path).resolve().parents and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(seconds))

    return pytest_collection_modifyitems
