"""The SQLite store (module_utils/_store_sqlite.py): the messages naming a ledger file that cannot be used, a ledger
another run has only begun to create, the claim lock files (private, and what check mode leaves of a dead run's),
and a ledger opened while another run writes to it. The protocol's tests on both stores are in test_ledger.py."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

SCOPE, KEY = "http://127.0.0.1:9", "wave1"
WHAT_TO_DO = "delete it only if no earlier send needs to be known (a new ledger knows of none, and a re-run sends again)"


def _sent(path, count):
    ledger = Ledger(str(path))
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:%d" % n for n in range(count)])[0], "sent", "r1")
    ledger.close()


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("not SQLite", "file is not a database"),
        # quick_check reports each row that breaks a rule of the table; the message shows the first three.
        ("rows against the rules", "; ".join(["CHECK constraint failed in sends"] * 3)),
    ],
)
def test_a_damaged_ledger_is_refused_with_what_sqlite_reported(tmp_path, damage, reported):
    path = tmp_path / "l.sqlite3"
    _sent(path, 5)
    if damage == "not SQLite":
        with open(path, "r+b") as handle:
            handle.write(b"not a database" * 10)
    else:
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute("UPDATE sends SET state = 'done'")
        db.commit()
        db.close()
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(str(path))
    assert caught.value.message == ("The ledger %s cannot be read: it is damaged, truncated or not a ledger (SQLite: %s). Restore it from a backup, or "
                                    "salvage what it holds with: sqlite3 %s .recover; %s" % (path, reported, path, WHAT_TO_DO))


def test_a_ledger_is_checked_and_used_on_one_connection(tmp_path, monkeypatch):
    """A connection closed after the check was the file's last: SQLite checkpointed and deleted the write-ahead log (two
    syncs), and the task's own connection made it again."""
    path = tmp_path / "l.sqlite3"
    _sent(path, 2)
    connections, connect = [], sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: connections.append(args) or connect(*args, **kwargs))
    ledger = Ledger(str(path))
    assert ledger.states(SCOPE, KEY) == {"mdn:0": "sent", "mdn:1": "sent"}
    ledger.close()
    assert connections == [(str(path),)]


def test_check_mode_reads_a_ledger_another_run_has_only_begun_to_create_as_empty(tmp_path):
    """A new ledger is linked into place before its tables are made (schema 0)."""
    path = tmp_path / "l.sqlite3"
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    path.chmod(0o600)
    ledger = Ledger(str(path), read_only=True)
    assert ledger.states(SCOPE, KEY) == {} and ledger.records() == [] and not ledger.has_started(SCOPE)
    ledger.close()
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone() == (0,)


def test_a_claim_lock_file_is_private(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    claim_id = Ledger(path).claim(SCOPE, KEY, ["mdn:1"])[0]
    assert stat.S_IMODE(os.stat(os.path.join(path + ".claims", claim_id)).st_mode) == 0o600


def _die_while_sending(path):
    Ledger(path).claim(SCOPE, KEY, ["mdn:1"])  # the process ends without settling or closing


def test_check_mode_leaves_a_dead_runs_lock_file_and_a_run_removes_it(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    Ledger(path).close()
    sender = multiprocessing.Process(target=_die_while_sending, args=(path,))
    sender.start()
    sender.join(30)
    assert len(os.listdir(path + ".claims")) == 1
    assert Ledger(path, read_only=True).states(SCOPE, KEY) == {"mdn:1": "pending"}
    assert len(os.listdir(path + ".claims")) == 1
    assert Ledger(path).states(SCOPE, KEY) == {"mdn:1": "pending"}
    assert os.listdir(path + ".claims") == []


def test_a_ledger_opens_while_another_run_holds_its_write_lock(tmp_path):
    """Opening a ledger of the current schema takes no write lock: a run starts while another claims."""
    path = tmp_path / "l.sqlite3"
    _sent(path, 1)
    writer = sqlite3.connect(str(path), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    opened = []
    opener = threading.Thread(target=lambda: opened.append(Ledger(str(path)).states(SCOPE, KEY)))
    opener.start()
    try:
        opener.join(10)
        assert opened == [{"mdn:0": "sent"}]
    finally:
        writer.execute("ROLLBACK")
        opener.join(90)


def test_a_claim_that_fails_part_way_records_nothing_and_the_ledger_still_works(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    ledger = Ledger(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON sends WHEN NEW.target = 'mdn:bad' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    db.close()
    with pytest.raises(sqlite3.IntegrityError, match=r"^refused by a trigger$"):
        ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:bad"], purpose={"tracking": "device"})
    assert ledger.records() == [] and not ledger.knows(SCOPE, KEY)
    assert ledger.claim(SCOPE, KEY, ["mdn:1"])[1] == ["mdn:1"]
