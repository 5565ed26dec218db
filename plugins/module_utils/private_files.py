# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the collection keeps state between tasks (token cache, ledger), and how those files are created:
directories 0700, files 0600, because they hold tokens and the record of what was sent."""

from __future__ import annotations

import os

DEFAULT_STATE_DIR = "~/.ansible/thingspace"
TOKEN_CACHE_NAME = "tokens.json"
LEDGER_NAME = "ledger.sqlite3"


def state_path(state_dir, name):
    return os.path.join(os.path.expanduser(state_dir or DEFAULT_STATE_DIR), name)


def private_dir(path):
    """Create ``path`` (and missing parents) as 0700 when it does not exist yet."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)


def private_file(path):
    """Create ``path`` as an empty 0600 file (its directory 0700) when it does not exist yet."""
    private_dir(os.path.dirname(os.path.abspath(path)))
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
