"""Copy the collection's files (tracked and new, not ignored) to DEST/ansible_collections/thingspace/m2m.

ansible-test wants the collection at a real path ending in ansible_collections/<namespace>/<name> (it resolves
symlinks) and lists files with the git repository it finds above that path, so it runs on this copy, which must
live outside the checkout. The copy is refreshed on every call; its tests/output is kept."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout_files(root=ROOT):
    """The checkout's files as git sees them: tracked and new, not ignored (so no venv, build output or cache)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, check=True, capture_output=True).stdout
    return sorted(name for name in listed.decode().split("\0") if name and (root / name).is_file())


def copy_files(dest, root=ROOT):
    """Copy checkout_files() to ``dest``, keeping their paths and times."""
    for name in checkout_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def main():
    dest = Path(sys.argv[1]).resolve() / "ansible_collections" / "thingspace" / "m2m"
    if ROOT in dest.parents:
        sys.exit("%s is inside the checkout; ansible-test would list it through the checkout's git" % dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in dest.iterdir():
        if entry.name != "tests":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for entry in (dest / "tests").glob("*"):
        if entry.name != "output":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    copy_files(dest)
    print(dest)


if __name__ == "__main__":
    main()
