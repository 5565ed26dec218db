# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the collection keeps state between tasks (token cache, ledger), and how those files are created and
checked: directories 0700, files 0600, because they hold tokens and the record of what was sent.

Every state path must belong to the user running the module and must not be a symbolic link; a file must not
be open to group or others, a directory not writable by them. A path that breaks this is refused, never
repaired: the collection creates its state private, so someone else made or changed it, and what it holds
may have been read or altered (docs/design.md, "State files")."""

from __future__ import annotations

import os
import stat
import tempfile

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

DEFAULT_STATE_DIR = "~/.ansible/thingspace"
TOKEN_CACHE_NAME = "tokens.json"
LEDGER_NAME = "ledger.sqlite3"
# The options that choose the state paths, as messages name them.
OPTIONS = "state_dir (ledger_path for the ledger)"


def state_path(state_dir, name):
    return os.path.join(os.path.expanduser(state_dir or DEFAULT_STATE_DIR), name)


def private_dir(path):
    """Create ``path`` (and missing parents) as 0700 when it does not exist yet; refuse it unless it is a
    directory of this user that others cannot write."""
    if not os.path.lexists(path):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
        except OSError as exc:
            raise _cannot("create the directory", exc, exc.filename or path)
    _check(path, _lstat(path), directory=True)


def private_file(path, create=None):
    """Create ``path`` when it does not exist yet, 0600 in a 0700 directory: empty, or written by
    ``create(temporary path)`` into a temporary file that is then linked into place, so no process ever sees it
    half made. Return its os.stat_result, checked as check_private does."""
    private_dir(os.path.dirname(os.path.abspath(path)))
    if not os.path.lexists(path):
        try:
            if create is None:
                # O_EXCL: a link planted meanwhile is never followed.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            else:
                _create_linked(path, create)
        except FileExistsError:
            pass  # another process created it meanwhile
        except OSError as exc:
            raise _cannot("create", exc, path)
    return check_private(path)


def check_private(path):
    """The os.stat_result of the state file ``path`` (None when it does not exist), refused unless it and its
    directory are this user's, the file a regular file open to no one else, the directory writable by no one else."""
    directory = os.path.dirname(os.path.abspath(path))
    _check(directory, _lstat(directory), directory=True)
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _cannot("read", exc, path)
    _check(path, status, directory=False)
    return status


def _create_linked(path, create):
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix="." + os.path.basename(path) + "-")
    os.close(handle)
    try:
        create(temporary)
        os.link(temporary, path)  # fails when the path exists, even as a dangling link
    finally:
        os.unlink(temporary)


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        raise _cannot("read", exc, path)


def _check(path, status, directory):
    mode = stat.S_IMODE(status.st_mode)
    if stat.S_ISLNK(status.st_mode):
        raise ThingSpaceError("The state path %s is a symbolic link, which thingspace.m2m does not follow (as root it would write where "
                              "the link points). Remove the link, or set %s to the real place" % (path, OPTIONS))
    if not (stat.S_ISDIR if directory else stat.S_ISREG)(status.st_mode):
        raise ThingSpaceError("The state path %s is not a %s; move it away, or set %s to another place"
                              % (path, "directory" if directory else "regular file", OPTIONS))
    if status.st_uid != os.geteuid():
        raise ThingSpaceError("The state path %s belongs to uid %d, not to uid %d that runs the module; set %s to a place of that user"
                              % (path, status.st_uid, os.geteuid(), OPTIONS))
    if directory and mode & 0o022:
        raise ThingSpaceError("The state directory %s has mode %04o: others can create or replace files in it. thingspace.m2m refuses "
                              "it rather than changing it: check its files, then run chmod 700 %s, or set %s to another place"
                              % (path, mode, path, OPTIONS))
    if not directory and mode & 0o077:
        raise ThingSpaceError("The state file %s has mode %04o: others can read or change it, and it holds tokens or the record of "
                              "what was sent. thingspace.m2m creates it 0600 and refuses it rather than changing it: check who could "
                              "have read or changed it, then run chmod 600 %s" % (path, mode, path))


def _cannot(action, exc, path):
    return ThingSpaceError("Cannot %s %s: %s; set %s to a place the user running the module can write" % (action, path, exc.strerror or exc, OPTIONS))
