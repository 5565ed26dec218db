"""The built tarball holds what a user needs and nothing of a developer's checkout (galaxy.yml's build_ignore).

The tarball is built from a copy of the checkout that also holds LEFTOVERS (conftest.py): a venv, build output,
caches, test output, the docs' build. Every member is checked against FORBIDDEN; every file of the checkout that a
user runs or reads must be in it; and its size stays under SIZE_LIMIT."""

from __future__ import annotations

import re
import tarfile

from collection_tree import checkout_files
from conftest import COLLECTION_LINK, LEFTOVERS

# 569 KB on 2026-12-07 (the largest members: docs/performance.png 162 KB, docs/design.md 83 KB, FILES.json 78 KB,
# docs/docsite/rst/campaign_report.png 77 KB). A venv, a test suite or a docs build would each pass the limit.
SIZE_LIMIT = 800_000
# Member paths a user never needs: (what, pattern searched in the path).
FORBIDDEN = (
    ("a hidden file or directory (venvs, .collections, .ansible, caches, tool settings)", r"(^|/)\."),
    ("a Python cache", r"(^|/)__pycache__(/|$)|\.py[co]$"),
    ("build output", r"^(build|dist|mutants)(/|$)|^emulator/(build|dist)(/|$)|\.egg-info(/|$)|\.(tar\.gz|whl)$"),
    ("tests and their output", r"^tests(/|$)|^extensions/molecule(/|$)"),
    ("the docs' build or its tools", r"^docs/(build(/|$)|build\.sh$|conf\.py$)"),
    ("a development tool or its settings", r"^(Makefile|benchmarks(/|$)|requirements(/|$)|requirements-(dev|demo)\.txt|pytest\.ini|ruff\.toml)$"),
    ("a changelog fragment (a release moves them into changelogs/changelog.yaml)", r"^changelogs/fragments/."),
)
# What a user runs or reads: every checkout file under these paths is in the tarball.
SHIPPED = ("README.md", "requirements.txt", "bindep.txt", "meta/", "plugins/", "roles/", "playbooks/", "extensions/eda/", "extensions/awx/",
           "emulator/", "docs/docsite/", "changelogs/changelog.yaml", "changelogs/config.yaml")


def members(tarball):
    with tarfile.open(tarball) as archive:
        return {member.name.rstrip("/") for member in archive.getmembers()}


def test_no_member_is_forbidden(tarball):
    found = sorted("%s: %s" % (what, name) for name in members(tarball) for what, pattern in FORBIDDEN if re.search(pattern, name))
    assert not found, "members a user does not need (add them to galaxy.yml's build_ignore):\n" + "\n".join(found)


def test_every_leftover_is_left_out(tarball):
    names = members(tarball)
    kept = sorted(path for paths in LEFTOVERS.values() for path in paths if path in names) + sorted(name for name in names if name.startswith(COLLECTION_LINK))
    assert not kept, "leftovers of the checkout in the tarball: %s" % kept


def test_what_a_user_needs_is_in(tarball):
    names = members(tarball)
    wanted = [name for name in checkout_files() if name.startswith(SHIPPED) and not any(re.search(pattern, name) for _what, pattern in FORBIDDEN)]
    assert len(wanted) > 100
    assert not sorted(set(wanted) - names), "checkout files a user needs, missing from the tarball"


def test_size_is_bounded(tarball):
    size = tarball.stat().st_size
    assert size < SIZE_LIMIT, "the tarball is %d bytes, over %d: list it (tar tzvf) and add what a user does not need to build_ignore" % (size, SIZE_LIMIT)
