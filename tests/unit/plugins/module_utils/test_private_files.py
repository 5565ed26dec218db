"""State files (token cache, its lock, ledger, claim locks): never through a symbolic link, only of the user running
the module, never open to others; what breaks this is refused naming the path, before any request."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials, TokenCache
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import private_file

from fake_api import ACCOUNT, API

CREDS = Credentials("cid", "csecret", "user", "pass", None, None)
SCOPE, KEY = "http://127.0.0.1:9|0000123456-00001", "wave1"


def use_state(state):
    """What a task does with its state directory: log in through the token cache, then claim in the ledger."""
    ThingSpaceClient(API, CREDS, token_cache=TokenCache(str(state / "tokens.json"))).start_callbacks(ACCOUNT)
    ledger = Ledger(str(state / "ledger.sqlite3"))
    try:
        ledger.claim(SCOPE, KEY, ["mdn:5551234567"])
    finally:
        ledger.close()


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.parametrize("name", ["tokens.json", "tokens.json.lock", "ledger.sqlite3", "ledger.sqlite3.claims"])
def test_a_symlink_at_a_state_path_is_refused_and_not_followed(fake, state, tmp_path, name):
    target = tmp_path / "elsewhere"
    (state / name).symlink_to(target)
    with pytest.raises(ThingSpaceError) as caught:
        use_state(state)
    assert caught.value.message.startswith("The state path %s is a symbolic link, which thingspace.m2m does not follow" % (state / name))
    assert "Remove the link, or set state_dir (ledger_path for the ledger) to the real place" in caught.value.message
    assert not target.exists()
    if name.startswith("tokens"):
        assert fake.calls == [], "refused before logging in"


def test_a_symlinked_state_directory_is_refused(fake, tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(real)
    with pytest.raises(ThingSpaceError, match="The state path %s is a symbolic link" % (tmp_path / "state")):
        use_state(tmp_path / "state")
    assert fake.calls == [] and list(real.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
@pytest.mark.parametrize("name", ["tokens.json", "tokens.json.lock", "ledger.sqlite3", None])
def test_state_of_another_user_is_refused(fake, state, name):
    path = state / name if name else state
    if name:
        path.touch(mode=0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(ThingSpaceError) as caught:
        use_state(state)
    assert caught.value.message == ("The state path %s belongs to uid 65534, not to uid 0 that runs the module; set state_dir "
                                    "(ledger_path for the ledger) to a place of that user" % path)
    assert fake.calls == [] or name == "ledger.sqlite3"


@pytest.mark.parametrize("name", ["tokens.json", "tokens.json.lock", "ledger.sqlite3"])
@pytest.mark.parametrize("mode", [0o644, 0o660, 0o604], ids=oct)
def test_a_state_file_open_to_others_is_refused_not_changed(fake, state, name, mode):
    use_state(state)
    os.chmod(state / name, mode)
    with pytest.raises(ThingSpaceError) as caught:
        use_state(state)
    assert caught.value.message.startswith("The state file %s has mode %04o: others can read or change it" % (state / name, mode))
    assert caught.value.message.endswith("refuses it rather than changing it: check who could have read or changed it, then run chmod 600 %s"
                                         % (state / name))
    assert stat.S_IMODE(os.stat(state / name).st_mode) == mode


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702], ids=oct)
def test_a_state_directory_others_can_write_is_refused(fake, state, mode):
    os.chmod(state, mode)
    with pytest.raises(ThingSpaceError, match=r"The state directory %s has mode %04o: others can create or replace files in it\. .*chmod 700"
                       % (state, mode)):
        use_state(state)
    assert fake.calls == [] and list(state.iterdir()) == []


def test_a_state_directory_others_can_only_read_is_used(fake, state):
    os.chmod(state, 0o755)
    use_state(state)
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in state.iterdir()} == {
        "tokens.json": 0o600, "tokens.json.lock": 0o600, "ledger.sqlite3": 0o600, "ledger.sqlite3.claims": 0o700}


def test_a_state_path_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ThingSpaceError) as caught:
        private_file(str(tmp_path / "file" / "state" / "tokens.json"))
    assert caught.value.message == ("Cannot create the directory %s: Not a directory; set state_dir (ledger_path for the ledger) to a place "
                                    "the user running the module can write" % (tmp_path / "file" / "state"))
