"""`make release VERSION=x.y.z`: the bookkeeping of a release, on a clean checkout.

1. VERSION must be a semantic version above galaxy.yml's and every release in changelogs/changelog.yaml.
2. The fragments must pass `antsibull-changelog lint`.
3. galaxy.yml gets the version; `antsibull-changelog release` moves the fragments into changelogs/changelog.yaml and
   writes CHANGELOG.rst.
4. `ansible-galaxy collection build` writes build/thingspace-m2m-VERSION.tar.gz.
5. The tarball is installed into a temporary directory with `ansible-galaxy collection install`, checked with
   `ansible-galaxy collection verify --offline`, and ansible-doc reads every module of it there.

Nothing is committed: the script prints the commands that commit and tag the release."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import semantic_version
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def step(text):
    print("==> " + text, flush=True)


def run(*command, **kwargs):
    subprocess.run([str(part) for part in command], check=True, **kwargs)


def fail(text):
    sys.exit("make release: " + text)


def check_version(text):
    """The release's version, refused unless it is semantic and newer than what galaxy.yml and the changelog hold."""
    if not semantic_version.validate(text):
        fail("VERSION=%r is not a semantic version (MAJOR.MINOR.PATCH, https://semver.org)" % text)
    version = semantic_version.Version(text)
    current = semantic_version.Version(yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"])
    released = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text()).get("releases") or {}
    latest = max([current, *(semantic_version.Version(name) for name in released)])
    if version <= latest and not (version == current and text not in released):
        fail("VERSION=%s is not above %s, the latest version in galaxy.yml and changelogs/changelog.yaml" % (text, latest))
    return text


def check_clean():
    """A release commit holds the release only: refuse uncommitted changes and files git does not ignore."""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    if status:
        fail("the checkout has changes; commit or stash them first:\n" + status)


def set_version(version):
    galaxy = ROOT / "galaxy.yml"
    text, count = re.subn(r"(?m)^version: .*$", "version: " + version, galaxy.read_text())
    if count != 1:
        fail("galaxy.yml has no single top-level version line")
    galaxy.write_text(text)


def check_install(tarball, version):
    """Install ``tarball`` where nothing else is, verify its files, and read every module's documentation there."""
    modules = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
    with tempfile.TemporaryDirectory(prefix="thingspace-release-") as work:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")}
        env.update(ANSIBLE_COLLECTIONS_PATH=work, ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"), ANSIBLE_NOCOLOR="1")
        run(BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", work, tarball, cwd=work, env=env)
        run(BIN / "ansible-galaxy", "collection", "verify", "--offline", "-p", work, "thingspace.m2m:" + version, cwd=work, env=env)
        manifest = json.loads((Path(work) / "ansible_collections" / "thingspace" / "m2m" / "MANIFEST.json").read_text())
        if manifest["collection_info"]["version"] != version:
            fail("the installed collection's MANIFEST.json says version %s" % manifest["collection_info"]["version"])
        documented = subprocess.run([str(BIN / "ansible-doc"), "--json", *("thingspace.m2m." + name for name in modules)],
                                    cwd=work, env=env, check=True, capture_output=True, text=True).stdout
        missing = sorted(set("thingspace.m2m." + name for name in modules) - set(json.loads(documented)))
        if missing:
            fail("ansible-doc cannot read these modules of the installed tarball: %s" % ", ".join(missing))
    print("installed, verified, %d modules documented" % len(modules))


def main():
    version = check_version(sys.argv[1] if len(sys.argv) > 1 else "")
    check_clean()
    step("antsibull-changelog lint: the fragments in changelogs/fragments")
    run(BIN / "antsibull-changelog", "lint", cwd=ROOT)
    step("galaxy.yml: version %s" % version)
    set_version(version)
    step("antsibull-changelog release: the fragments into changelogs/changelog.yaml and CHANGELOG.rst")
    run(BIN / "antsibull-changelog", "release", "--version", version, "--reload-plugins", cwd=ROOT)
    step("ansible-galaxy collection build: build/thingspace-m2m-%s.tar.gz" % version)
    run(BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", "build", cwd=ROOT)
    tarball = ROOT / "build" / ("thingspace-m2m-%s.tar.gz" % version)
    step("the tarball installs: ansible-galaxy collection install and verify in a temporary directory, ansible-doc")
    check_install(tarball, version)
    print("\nReleased %s in the checkout (not committed). Review `git diff`, then:\n"
          "  git add -A galaxy.yml CHANGELOG.rst changelogs\n"
          "  git commit -m 'release: %s'\n"
          "  git tag %s\n"
          "The tarball to publish: %s" % (version, version, version, tarball.relative_to(ROOT)))


if __name__ == "__main__":
    main()
