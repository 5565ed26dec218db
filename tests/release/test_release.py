"""`make release VERSION=<the next minor version>` on a throwaway clone of the checkout (its files, committed in a new repository, with
this run's venv linked in): galaxy.yml, changelogs/changelog.yaml, CHANGELOG.rst and the tarball; and the versions
and checkouts it refuses before changing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from collection_tree import copy_files

# The checkout's version (the last release) and the next minor one, which the test releases.
LAST = yaml.safe_load((Path(__file__).resolve().parents[2] / "galaxy.yml").read_text())["version"]
VERSION = "%d.%d.0" % (int(LAST.split(".")[0]), int(LAST.split(".")[1]) + 1)
VENV = ".venv-release-test"


def git(clone, *args):
    subprocess.run(["git", "-c", "user.name=release test", "-c", "user.email=release-test@localhost", *args], cwd=clone, check=True, capture_output=True)


def new_clone(clone):
    """The checkout's files in a new repository at ``clone``, one commit, with this run's venv linked as VENV (make -o
    keeps it)."""
    copy_files(clone)
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "the checkout")
    (clone / VENV).symlink_to(sys.prefix)
    (clone / ".git" / "info" / "exclude").write_text("/%s\n" % VENV)
    return clone


@pytest.fixture
def clone(tmp_path):
    return new_clone(tmp_path / "clone")


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """One clone for the refusals, each of which must leave it as it was."""
    return new_clone(tmp_path_factory.mktemp("untouched"))


def make_release(clone, version):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ANSIBLE_", "MAKE"))}
    return subprocess.run(["make", "-o", VENV + "/.installed", "release", "VERSION=" + version, "VENV=" + VENV, "PYTHON=" + sys.executable],
                          cwd=clone, env=env, capture_output=True, text=True, check=False)


def test_release(clone):
    fragments = sorted(path.name for path in (clone / "changelogs" / "fragments").glob("*.yml"))
    before = yaml.safe_load((clone / "changelogs" / "changelog.yaml").read_text())["releases"]
    result = make_release(clone, VERSION)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "installed, verified" in result.stdout and "git tag %s" % VERSION in result.stdout

    assert yaml.safe_load((clone / "galaxy.yml").read_text())["version"] == VERSION
    releases = yaml.safe_load((clone / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert set(releases) == set(before) | {VERSION}
    assert sorted(releases[VERSION].get("fragments", [])) == fragments  # none right after a release
    assert not list((clone / "changelogs" / "fragments").glob("*.yml")), "the fragments stay after the release"
    # make lint's ansible-lint (yamllint's indentation) on the changelog the release wrote
    lint = subprocess.run([str(Path(sys.executable).parent / "ansible-lint"), "changelogs/changelog.yaml"], cwd=clone, capture_output=True, text=True,
                          check=False)
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-4000:]
    changelog = (clone / "CHANGELOG.rst").read_text()
    assert "\nv%s\n" % VERSION in changelog
    # every module is documented as new in the release that added it, by its version_added
    new = {entry["name"] for release in releases.values() for entry in release.get("modules", [])}
    assert new == {path.stem for path in (clone / "plugins" / "modules").glob("*.py")}

    tarball = clone / "build" / ("thingspace-m2m-%s.tar.gz" % VERSION)
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        assert manifest["collection_info"]["version"] == VERSION
        assert archive.extractfile("CHANGELOG.rst").read().decode() == changelog
        assert yaml.safe_load(archive.extractfile("changelogs/changelog.yaml"))["releases"] == releases


@pytest.mark.parametrize(("version", "says"), [(VERSION.rsplit(".", 1)[0], "is not a semantic version"), ("v" + VERSION, "is not a semantic version"),
                                               (LAST, "is not above " + LAST), ("0.0.1", "is not above " + LAST), ("", "give the version")])
def test_refused_versions_change_nothing(untouched, version, says):
    result = make_release(untouched, version)
    assert result.returncode != 0 and says in result.stderr, result.stdout + result.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=untouched, capture_output=True, text=True, check=True).stdout == ""


def test_a_checkout_with_changes_is_refused(untouched):
    unsaved = untouched / "changelogs" / "fragments" / "23-unsaved.yml"
    unsaved.parent.mkdir(exist_ok=True)  # git keeps no empty directory: right after a release there is none
    unsaved.write_text("bugfixes:\n  - not committed.\n")
    try:
        result = make_release(untouched, VERSION)
    finally:
        unsaved.unlink()
    assert result.returncode != 0 and "the checkout has changes" in result.stderr, result.stdout + result.stderr
    assert yaml.safe_load((untouched / "galaxy.yml").read_text())["version"] == LAST
