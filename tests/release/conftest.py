"""The release suite: make release, the tarball's members, and a Galaxy user's path from the tarball.

tests/utils (collection_tree, time_limit) and, for test_guides' block reader, tests/docs and what it imports on the
path; the fixture ``tarball`` builds the collection once per run from a copy of the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "tests" / "utils"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "tests" / "docs"))

from collection_tree import copy_files  # noqa: E402
from time_limit import time_limit  # noqa: E402

BIN = Path(sys.executable).parent
# Generous: the Galaxy user's path creates a virtual environment and installs ansible-core into it (about a minute).
pytest_collection_modifyitems = time_limit(__file__, 600)

# What a developer's checkout holds besides its files, one of each kind: none of it may reach the tarball.
LEFTOVERS = {
    "a venv": [".venv/pyvenv.cfg", ".venv/bin/python3", ".venv-python3.12/lib/python3.12/site-packages/yaml/__init__.py"],
    "Ansible's temporary files": [".ansible/tmp/ansible-local-1/x.py", ".ansible/demo/ledger.sqlite"],
    "build output": ["build/thingspace-m2m-0.1.0.tar.gz", "dist/thingspace_emulator-0.1.0-py3-none-any.whl",
                     "emulator/build/lib/thingspace_emulator/core.py", "emulator/dist/thingspace_emulator-0.1.0.tar.gz",
                     "emulator/thingspace_emulator.egg-info/PKG-INFO", "thingspace-m2m-0.1.0.tar.gz", "mutants/plugins/module_utils/send.py"],
    "caches": [".pytest_cache/v/cache/lastfailed", ".ruff_cache/0.9.0/1", ".hypothesis/examples/ab/cd", ".mypy_cache/3.11/x.json",
               "plugins/module_utils/__pycache__/send.cpython-311.pyc", "emulator/thingspace_emulator/__pycache__/core.cpython-311.pyc",
               "changelogs/.plugin-cache.yaml"],
    "test output": ["tests/output/junit/python3.11.xml", "tests/output/returned_keys/unit/vz_sms_send.json", "tests/integration/inventory"],
    "the docs' build": ["docs/build/html/index.html", "docs/build/rst/index.rst"],
}

COLLECTION_LINK = ".collections/ansible_collections/thingspace/m2m"


def build(source, output):
    """The tarball ``ansible-galaxy collection build`` makes of ``source``."""
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(output)], cwd=source, check=True,
                   capture_output=True, env={name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")})
    (tarball,) = output.glob("thingspace-m2m-*.tar.gz")
    return tarball


@pytest.fixture(scope="session")
def tarball(tmp_path_factory):
    """The tarball of a copy of the checkout that also holds LEFTOVERS."""
    source = tmp_path_factory.mktemp("checkout")
    copy_files(source)
    for paths in LEFTOVERS.values():
        for path in paths:
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            (source / path).write_text("leftover\n")
    # make venv's link to the checkout, which ansible-galaxy would otherwise follow as a directory of the collection
    (source / COLLECTION_LINK).parent.mkdir(parents=True)
    (source / COLLECTION_LINK).symlink_to(source)
    return build(source, tmp_path_factory.mktemp("build"))
