"""Ledger: claims per mode, settle/release, read-only check mode, file permissions, concurrent claims.

The protocol's tests run on both stores (``where``: an SQLite file, or a fresh schema of the session's PostgreSQL
server); the file checks are SQLite's."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from urllib.parse import urlsplit

import pytest
from ledger_0_1_0 import schema_1_ledger

from ansible_collections.thingspace.m2m.plugins.module_utils import _store_postgresql
from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Diff, Ledger, account_scope, service_scope

SCOPE, KEY = "http://127.0.0.1:9|0000123456-00001", "wave1"


def test_claim_settle_and_skip(where):
    ledger = Ledger(where)
    claim, claimed = ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2"])
    assert claimed == ["mdn:1", "mdn:2"]
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "in_flight", "mdn:2": "in_flight"}
    ledger.settle(claim, "sent", "req-1")
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "sent", "mdn:2": "sent"}
    claimed = ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:3"])[1]
    assert claimed == ["mdn:3"]
    assert ledger.states(SCOPE, "other-key") == {}
    assert ledger.states("other-scope", KEY) == {}


def test_the_sends_of_some_targets_are_read_by_their_keys(where, monkeypatch):
    ledger = Ledger(where)
    targets = ["mdn:%d" % n for n in range(1203)]
    ledger.settle(ledger.claim(SCOPE, KEY, targets[:1200])[0], "sent", "req-1")
    held = ledger.claim(SCOPE, KEY, targets[1200:])[0]  # in flight
    statements = []
    rows = ledger.store.rows
    monkeypatch.setattr(ledger.store, "rows", lambda sql, args=(): statements.append(sql) or rows(sql, args))
    wanted = [*targets[1199:], "mdn:none"]
    found = ledger.send_rows(SCOPE, KEY, reversed(wanted))
    assert {target: state for target, (state, _request_id, _at) in found.items()} == dict(
        [("mdn:1199", "sent")] + [(target, "in_flight") for target in targets[1200:]])
    assert found["mdn:1199"][1] == "req-1" and len([sql for sql in statements if "FROM sends" in sql]) == 1
    pieces = len(list(ledger.store.among(targets)))  # one on PostgreSQL, by AMONG_VALUES on SQLite
    assert len(ledger.send_rows(SCOPE, KEY, targets)) == 1203 and len([sql for sql in statements if "FROM sends" in sql]) == 1 + pieces
    assert ledger.send_rows(SCOPE, KEY, []) == {} and ledger.send_rows(SCOPE, "other-key", targets) == {}
    ledger.release(held)
    ledger.close()


def test_release_forgets_and_unknown_is_kept(where):
    ledger = Ledger(where)
    claim = ledger.claim(SCOPE, KEY, ["mdn:1"])[0]
    ledger.release(claim)
    assert ledger.states(SCOPE, KEY) == {}
    claim = ledger.claim(SCOPE, KEY, ["mdn:1"])[0]
    ledger.settle(claim, "unknown")
    assert ledger.claim(SCOPE, KEY, ["mdn:1"])[1] == []


def test_modes_take_over_unconfirmed_or_all(where):
    ledger = Ledger(where)
    sent = ledger.claim(SCOPE, KEY, ["mdn:1"])[0]
    ledger.settle(sent, "sent", "r1")
    unknown = ledger.claim(SCOPE, KEY, ["mdn:2"])[0]
    ledger.settle(unknown, "unknown")
    killed = Ledger(where)
    killed.claim(SCOPE, KEY, ["mdn:3"])
    killed.close()  # its lock is free, the row stays pending: a run that died while sending
    assert ledger.states(SCOPE, KEY)["mdn:3"] == "pending"
    assert ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:3"], mode="new")[1] == []
    assert ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:3"], mode="unconfirmed")[1] == ["mdn:2", "mdn:3"]
    claim, claimed = ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:3"], mode="all")
    assert claimed == ["mdn:1", "mdn:2", "mdn:3"]
    ledger.settle(claim, "sent", "r2")
    assert set(ledger.states(SCOPE, KEY).values()) == {"sent"}


def test_read_only_never_creates_the_file(tmp_path):
    path = tmp_path / "sub" / "l.sqlite3"
    ledger = Ledger(str(path), read_only=True)
    assert ledger.states(SCOPE, KEY) == {}
    assert ledger.has_started(SCOPE) is False
    ledger.close()
    assert not path.exists() and not path.parent.exists()


def test_files_are_private(tmp_path):
    path = tmp_path / "state" / "l.sqlite3"
    Ledger(str(path)).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def _ledger_with_records(path, count=2000):
    ledger = Ledger(str(path))
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:%010d" % n for n in range(count)])[0], "sent", "r1")
    ledger.close()


@pytest.mark.parametrize("damage", ["truncated", "page overwritten", "not SQLite"])
def test_a_damaged_ledger_is_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "l.sqlite3"
    _ledger_with_records(path)
    size = path.stat().st_size
    db = sqlite3.connect(str(path))
    page_size, [(root,)] = db.execute("PRAGMA page_size").fetchone()[0], db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sends'")
    db.close()
    with open(path, "r+b") as handle:
        if damage == "truncated":
            handle.truncate(size // 2)
        elif damage == "page overwritten":
            handle.seek((root - 1) * page_size)
            handle.write(b"\xff" * page_size)
        else:
            handle.write(b"not a database" * 10)
    for read_only in (False, True):
        with pytest.raises(ThingSpaceError) as caught:
            ledger = Ledger(str(path), read_only=read_only)
            try:  # a read-only open checks beside its reads, as a report does: refused at its close at the latest
                ledger.states(SCOPE, KEY)
            finally:
                ledger.close()
        assert caught.value.message.startswith("The ledger %s cannot be read: it is damaged, truncated or not a ledger (SQLite: " % path)
        assert caught.value.message.endswith("Restore it from a backup, or salvage what it holds with: sqlite3 %s .recover; delete it only if "
                                             "no earlier send needs to be known (a new ledger knows of none, and a re-run sends again)" % path)


def test_an_empty_ledger_is_refused_not_taken_as_new(tmp_path):
    path = tmp_path / "l.sqlite3"
    path.touch(mode=0o600)
    for read_only in (False, True):
        with pytest.raises(ThingSpaceError) as caught:
            Ledger(str(path), read_only=read_only)
        assert caught.value.message == ("The ledger %s is empty (0 bytes); thingspace.m2m never leaves a ledger empty, so it was truncated or made by "
                                        "something else. Restore it from a backup; delete it only if no earlier send needs to be known (a new "
                                        "ledger knows of none, and a re-run sends again)" % path)
    assert path.stat().st_size == 0


def _open_new_ledger(path, barrier, queue):
    barrier.wait(30)
    try:
        Ledger(path).close()
        queue.put("ok")
    except Exception as error:  # reported to the test, whatever it is
        queue.put("%s: %s" % (type(error).__name__, error))


def test_processes_creating_one_ledger_at_once_never_see_it_empty(tmp_path):
    """A new ledger appears under its name complete (linked into place), never as the empty file that the empty-ledger
    check refuses."""
    for attempt in range(5):
        path = str(tmp_path / ("l%d.sqlite3" % attempt))
        barrier, queue = multiprocessing.Barrier(6), multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_open_new_ledger, args=(path, barrier, queue)) for _worker in range(6)]
        for worker in workers:
            worker.start()
        results = [queue.get(timeout=60) for _worker in workers]
        for worker in workers:
            worker.join()
        assert results == ["ok"] * 6


def test_a_ledger_path_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(str(tmp_path / "file" / "ledgers" / "l.sqlite3"))
    assert caught.value.message == ("Cannot create the directory %s: Not a directory; set state_dir (ledger_path for the ledger) to a place "
                                    "the user running the module can write" % (tmp_path / "file" / "ledgers"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_a_ledger_in_a_directory_without_write_permission_is_named(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(ThingSpaceError, match="^Cannot create %s: Permission denied; set state_dir" % (tmp_path / "l.sqlite3")):
            Ledger(str(tmp_path / "l.sqlite3"))
    finally:
        os.chmod(tmp_path, 0o700)


def test_record_start_is_true_once(where):
    ledger = Ledger(where)
    assert ledger.record_start(SCOPE) is True
    assert ledger.record_start(SCOPE) is False
    assert ledger.has_started(SCOPE) is True


def _claim_in_process(where, targets, queue):
    ledger = Ledger(where)
    queue.put(ledger.claim(SCOPE, KEY, targets)[1])


def test_concurrent_claims_never_share_a_target(where):
    Ledger(where).close()
    targets = ["mdn:%010d" % n for n in range(5000)]
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_claim_in_process, args=(where, targets, queue)) for _worker in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _worker in workers]
    for worker in workers:
        worker.join()
    claimed = [t for result in results for t in result]
    assert sorted(claimed) == sorted(targets)


def _claim_and_hold(where, started, finish):
    ledger = Ledger(where)
    ledger.claim(SCOPE, KEY, ["mdn:1"])
    started.set()
    finish.wait(30)


def test_a_live_claim_is_in_flight_and_never_taken_over_by_resend_unconfirmed(where):
    Ledger(where).close()
    started, finish = multiprocessing.Event(), multiprocessing.Event()
    sender = multiprocessing.Process(target=_claim_and_hold, args=(where, started, finish))
    sender.start()
    try:
        assert started.wait(30)
        ledger = Ledger(where)
        assert ledger.states(SCOPE, KEY) == {"mdn:1": "in_flight"}
        assert Ledger(where, read_only=True).states(SCOPE, KEY) == {"mdn:1": "in_flight"}
        assert ledger.claim(SCOPE, KEY, ["mdn:1"], mode="unconfirmed")[1] == []
    finally:
        finish.set()
        sender.join(30)
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "pending"}  # the sender ended without settling
    assert ledger.claim(SCOPE, KEY, ["mdn:1"], mode="unconfirmed")[1] == ["mdn:1"]


def _schema_1_ledger(path):
    """A ledger as version 0.1.0 wrote it (schema 1), with one send."""
    schema_1_ledger(path, [(1, "http://127.0.0.1:9|0000123456-00001", "wave1")], [(1, "mdn:1", "r1")])


def test_check_mode_on_a_ledger_of_0_1_0_is_refused_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "state" / "l.sqlite3"
    _schema_1_ledger(path)
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(str(path), read_only=True)
    assert caught.value.message == ("The ledger %s was written by an older thingspace.m2m (schema 1), and check mode does not change it; a run "
                                    "without check mode migrates it" % path)
    assert Ledger(str(path)).states("http://127.0.0.1:9", KEY) == {"mdn:1": "sent"}


def _set_version(where, version):
    """Mark the ledger at ``where`` (created here) as written with schema ``version``."""
    Ledger(where).close()
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.execute("PRAGMA user_version = %d" % version)
        db.close()
        return
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        db.execute('UPDATE "%s".schema_version SET version = %%s' % where.schema, (version,))


def _named(where):
    """The ledger as messages name it."""
    if isinstance(where, str):
        return where
    return "database postgres@127.0.0.1:%d/postgres (schema %s)" % (urlsplit(where.url).port, where.schema)


def test_a_ledger_of_a_newer_collection_is_refused(where):
    newer = _store_postgresql.SCHEMA_VERSION + 1
    _set_version(where, newer)
    for read_only in (False, True):
        with pytest.raises(ThingSpaceError) as caught:
            Ledger(where, read_only=read_only)
        assert caught.value.message == "The ledger %s was written by a newer thingspace.m2m (schema %d); upgrade the collection" % (_named(where), newer)


def _without_tables(where, version, tables):
    """Make the ledger at ``where`` (one device claimed, or ``sent``) what schema ``version`` was: without ``tables``."""
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.executescript("".join("DROP TABLE %s; " % table for table in tables) + "PRAGMA user_version = %d" % version)
        db.close()
        return
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        db.execute("".join('DROP TABLE "%s".%s; ' % (where.schema, table) for table in tables)
                   + 'UPDATE "%s".schema_version SET version = %d' % (where.schema, version))


def _as_schema_2(where):
    """Make the ledger at ``where`` what version 0.2.0 wrote: schema 2, without the callbacks and deliveries tables."""
    ledger = Ledger(where)
    ledger.claim(SCOPE, KEY, ["mdn:1"])
    ledger.close()
    _without_tables(where, 2, ("campaign_counts", "campaign_devices", "campaigns", "callbacks", "deliveries", "sent_batches"))


def test_a_schema_2_ledger_is_read_in_check_mode_and_migrated_by_a_run(where):
    _as_schema_2(where)
    ledger = Ledger(where, read_only=True)
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "pending"}
    assert ledger.store.rows("SELECT count(*) FROM deliveries") == []  # a table of schema 3 reads as empty
    ledger.close()
    ledger = Ledger(where)
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "pending"}
    assert ledger.store.rows("SELECT count(*) FROM deliveries") == [(0,)] and ledger.store.rows("SELECT count(*) FROM callbacks") == [(0,)]
    ledger.close()


def _as_schema_4(where):
    """Make the ledger at ``where`` what schema 4 was: no campaign tables."""
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1"])[0], "sent", "r1")
    ledger.close()
    _without_tables(where, 4, ("campaign_counts", "campaign_devices", "campaigns", "sent_batches"))


def test_a_schema_4_ledger_reads_without_campaigns_in_check_mode_and_a_run_adds_them(where):
    _as_schema_4(where)
    ledger = Ledger(where, read_only=True)
    assert ledger.sends(SCOPE, KEY) == {"mdn:1": ("sent", "r1")}
    assert ledger.store.rows("SELECT count(*) FROM campaigns") == [] and ledger.store.rows("SELECT name FROM campaigns WHERE scope = ?", (SCOPE,)) == []
    ledger.close()
    ledger = Ledger(where)
    assert ledger.store.rows("SELECT count(*) FROM campaigns") == [(0,)] and ledger.store.rows("SELECT count(*) FROM campaign_devices") == [(0,)]
    assert ledger.sends(SCOPE, KEY) == {"mdn:1": ("sent", "r1")}
    ledger.close()


def test_check_mode_never_creates_the_schema(postgresql):
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    ledger = Ledger(where, read_only=True)
    assert ledger.states(SCOPE, KEY) == {} and ledger.has_started(SCOPE) is False and ledger.records() == []
    ledger.close()
    assert postgresql.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (where.schema,)) == []


def test_a_claim_draws_another_lock_number_when_its_number_is_in_use(postgresql, monkeypatch):
    """Advisory lock numbers are shared with everything else in the database: a claim takes only a free one."""
    ledger = Ledger(Database(postgresql.url(), postgresql.password, postgresql.new_schema()))
    with postgresql.connect() as other:
        other.execute("SELECT pg_advisory_lock(42)")  # another application's lock
        numbers = iter([(1 << 63) + 42, (1 << 63) + 43])  # drawn as randbits(64) - 2**63: 42, then 43
        monkeypatch.setattr(_store_postgresql.secrets, "randbits", lambda bits: next(numbers))
        claim_id, claimed = ledger.claim(SCOPE, KEY, ["mdn:1"])
    holder = postgresql.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 43 AND objsubid = 1")
    assert claim_id == "%d:43" % holder[0][0] and claimed == ["mdn:1"]


def test_a_dead_claim_stays_dead_when_another_session_takes_its_lock_number(postgresql):
    """A claim is live only while its own session holds its number: another holder of the number later does not
    keep a dead claim in flight."""
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    killed = Ledger(where)
    claim_id = killed.claim(SCOPE, KEY, ["mdn:1"])[0]
    killed.close()
    with postgresql.connect() as other:
        other.execute("SELECT pg_advisory_lock(%s)", (int(claim_id.split(":")[1]),))
        ledger = Ledger(where)
        assert ledger.states(SCOPE, KEY) == {"mdn:1": "pending"}
        assert ledger.claim(SCOPE, KEY, ["mdn:1"], mode="unconfirmed")[1] == ["mdn:1"]


def _resend_in_process(where, targets, barrier, queue, finish):
    ledger = Ledger(where)
    barrier.wait(30)
    queue.put(ledger.claim(SCOPE, KEY, targets, mode="unconfirmed")[1])
    finish.wait(60)  # alive, its claim in flight, until every run has claimed


def test_concurrent_resend_unconfirmed_runs_take_over_each_dead_target_once(where):
    """A claim that takes over unconfirmed rows must not take over those another run took over a moment before
    (they are that run's live claim now): claims of one key follow each other."""
    targets = ["mdn:%010d" % n for n in range(5000)]
    killed = Ledger(where)
    killed.claim(SCOPE, KEY, targets)
    killed.close()
    barrier, queue, finish = multiprocessing.Barrier(4), multiprocessing.Queue(), multiprocessing.Event()
    workers = [multiprocessing.Process(target=_resend_in_process, args=(where, targets, barrier, queue, finish)) for _worker in range(4)]
    for worker in workers:
        worker.start()
    try:
        results = [queue.get(timeout=60) for _worker in workers]
    finally:
        finish.set()
        for worker in workers:
            worker.join()
    assert sorted(target for result in results for target in result) == targets


def test_a_target_given_twice_is_claimed_once(where):
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:1"])[0], "sent", "r1")
    claim, claimed = ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:1"], mode="all")
    assert sorted(set(claimed)) == ["mdn:1", "mdn:2"]
    ledger.settle(claim, "sent", "r2")
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "sent", "mdn:2": "sent"}


@pytest.mark.parametrize(("mode", "first"), [("new", 300), ("unconfirmed", 100), ("all", 0)])
def test_a_claim_of_several_inserts_takes_over_exactly_what_its_mode_allows(where, mode, first):
    """450 targets: more than one INSERT of the SQLite store (200 rows each), the first 300 already recorded."""
    targets = ["mdn:%010d" % n for n in range(450)]
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, targets[:100])[0], "sent", "r1")
    ledger.settle(ledger.claim(SCOPE, KEY, targets[100:200])[0], "unknown")
    killed = Ledger(where)
    killed.claim(SCOPE, KEY, targets[200:300])
    killed.close()
    claim, claimed = ledger.claim(SCOPE, KEY, targets, mode=mode)
    assert claimed == targets[first:]
    ledger.settle(claim, "sent", "r2")
    states = ledger.states(SCOPE, KEY)
    assert [states[target] for target in targets] == ["sent"] * 100 + ["unknown" if first > 100 else "sent"] * 100 + \
        ["pending" if first > 200 else "sent"] * 100 + ["sent"] * 150


@pytest.mark.parametrize(
    ("api_url", "scope"),
    [
        ("HTTPS://Example.COM:443/api/m2m/", "https://example.com/api/m2m"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
        ("http://[::1]:8080/api/", "http://[::1]:8080/api"),
        ("https://[::1]:443", "https://[::1]"),
    ],
)
def test_one_service_has_one_scope_however_its_url_is_spelt(api_url, scope):
    assert service_scope(api_url) == scope
    assert account_scope(api_url, "0000123456-00001") == scope + "|0000123456-00001"


def test_diff_reports_what_another_live_run_is_sending(where):
    sender = Ledger(where)
    sender.claim(SCOPE, KEY, ["mdn:1"])
    ledger = Ledger(where)
    assert ledger.diff(SCOPE, KEY, ["mdn:1", "mdn:2"]) == Diff(["mdn:2"], [], ["mdn:1"], [])
    assert ledger.diff(SCOPE, KEY, ["mdn:1", "mdn:2"], mode="all") == Diff(["mdn:1", "mdn:2"], [], ["mdn:1"], [])
    sender.close()


def test_live_claims_among_many_dead_ones_are_in_flight(where):
    """Each pending claim is looked at, whichever order the claims come in: dead ones, another run's live ones, this
    run's own (a set's order: 20 of each make it unlikely that one kind comes last)."""
    dead = Ledger(where)
    for n in range(20):
        dead.claim(SCOPE, KEY, ["mdn:dead%d" % n])
    dead.close()
    other, ledger = Ledger(where), Ledger(where)
    for n in range(20):
        other.claim(SCOPE, KEY, ["mdn:other%d" % n])
    ledger.claim(SCOPE, KEY, ["mdn:own"])
    states = ledger.states(SCOPE, KEY)
    assert {target for target, state in states.items() if state == "in_flight"} == {"mdn:own", *("mdn:other%d" % n for n in range(20))}
    assert len(states) == 41
    other.close()


P1 = {"message": "h1", "tracking": "device"}
P2 = {"message": "h2", "tracking": "device"}


def _refused(ledger, key, purpose):
    """The message check_purpose refuses ``purpose`` with, None when it accepts it."""
    try:
        ledger.check_purpose(SCOPE, key, purpose)
    except ThingSpaceError as error:
        return error.message
    return None


def test_a_claim_records_the_purpose_of_a_new_key_completes_a_partial_one_and_force_replaces_it(where):
    ledger = Ledger(where)
    ledger.claim(SCOPE, "full", ["mdn:1"], purpose=P1)
    ledger.claim(SCOPE, "full", ["mdn:2"], purpose=P2)
    assert _refused(ledger, "full", P1) is None and _refused(ledger, "full", P2) is not None
    ledger.claim(SCOPE, "full", ["mdn:3"], mode="all", purpose=P2)
    assert _refused(ledger, "full", P2) is None
    ledger.claim(SCOPE, "partial", ["mdn:1"], purpose={"tracking": "device"})
    ledger.claim(SCOPE, "partial", ["mdn:2"], purpose=P1)
    assert _refused(ledger, "partial", P2) == ("idempotency_key 'partial' was used for another send (message: another text); nothing was sent. "
                                               "Use a new idempotency_key for this send, or force: true to send it under this key to every target again")


def _source_ledger(path):
    """An SQLite ledger with: a key with a purpose, two devices sent and one unknown; a key with a purpose and no
    sends (its batch was released); a key without a purpose (0.1.0 recorded none); a callbacks start."""
    source = Ledger(str(path))
    source.settle(source.claim(SCOPE, KEY, ["mdn:1", "mdn:2"], purpose=P1)[0], "sent", "r1")
    source.settle(source.claim(SCOPE, KEY, ["mdn:3"], purpose=P1)[0], "unknown")
    source.release(source.claim(SCOPE, "released", ["mdn:9"], purpose=P1)[0])
    source.settle(source.claim(SCOPE, "bare", ["mdn:5"])[0], "sent", "r5")
    source.record_start(SCOPE + "|acc")
    return source


def test_a_copy_adds_what_the_ledger_lacks_keeps_what_it_holds_and_merges_purposes(where, tmp_path):
    source = _source_ledger(tmp_path / "source.sqlite3")
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1"], purpose={"tracking": "device", "encoding": "7-bit"})[0], "sent", "r0")
    ledger.record_start(SCOPE + "|acc")
    before = sorted(ledger.records())
    expected = {"idempotency_keys": 3, "sends": 4, "starts": 1, "sends_copied": 3, "starts_copied": 0}
    assert ledger.copy_from(source, check_mode=True) == expected
    assert sorted(ledger.records()) == before and not ledger.knows(SCOPE, "released")
    assert _refused(ledger, KEY, dict(P2, encoding="7-bit")) is None  # the purpose is still this ledger's alone

    assert ledger.copy_from(source) == expected
    assert sorted(ledger.records()) == [(SCOPE, "bare", "mdn:5", "sent", "r5", None), (SCOPE, KEY, "mdn:1", "sent", "r0", None),
                                        (SCOPE, KEY, "mdn:2", "sent", "r1", None), (SCOPE, KEY, "mdn:3", "unknown", None, None)]
    assert ledger.knows(SCOPE, "released") and [scope for scope, _at in ledger.starts()] == [SCOPE + "|acc"]
    # The purpose is both ledgers' fields: the source's message, this ledger's encoding.
    assert _refused(ledger, KEY, dict(P1, encoding="7-bit")) is None
    assert _refused(ledger, KEY, dict(P2, encoding="7-bit")) is not None
    assert _refused(ledger, KEY, dict(P1, encoding="ucs2")) is not None
    assert ledger.copy_from(source) == dict(expected, sends_copied=0)


def test_a_copy_into_a_ledger_that_used_its_keys_for_other_sends_copies_nothing_and_names_them_all(where, tmp_path):
    source = Ledger(str(tmp_path / "source.sqlite3"))
    for key in ("a", "b"):
        source.settle(source.claim(SCOPE, key, ["mdn:1"], purpose=P1)[0], "sent", "r1")
    source.record_start(SCOPE)
    ledger = Ledger(where)
    for key in ("a", "b"):
        ledger.claim(SCOPE, key, ["mdn:2"], purpose=P2)
    with pytest.raises(ThingSpaceError) as caught:
        ledger.copy_from(source)
    assert caught.value.message == ("The idempotency keys 'a', 'b' were used for other sends in %s than in %s; nothing was copied. Copy into another "
                                    "ledger_schema, or resolve them by hand" % (ledger.where, source.where))
    assert sorted(target for _scope, _key, target, *_rest in ledger.records()) == ["mdn:2", "mdn:2"] and ledger.starts() == []


def test_a_ledger_of_0_1_0_merges_the_spellings_of_one_service_and_keeps_what_each_knew(tmp_path):
    """Schema 1 recorded "api_url|account": one key under two spellings or accounts becomes one with the devices of
    both (here both recorded mdn:1 alike); starts get the account scope; MEIDs are upper case; a filter send tracked as a whole is known as such."""
    path = tmp_path / "state" / "l.sqlite3"
    _schema_1_ledger(path)
    db = sqlite3.connect(str(path))
    db.executescript("""
        INSERT INTO send_keys VALUES (2, 'HTTP://127.0.0.1:9/|0000123456-00002', 'wave1');
        INSERT INTO send_keys VALUES (3, 'http://127.0.0.1:9|0000123456-00001', 'group-1');
        INSERT INTO sends VALUES (1, 'meid:a10000009296f2', 'sent', 'r1', NULL, 0);
        INSERT INTO sends VALUES (2, 'mdn:1', 'sent', 'r1', NULL, 0);
        INSERT INTO sends VALUES (2, 'mdn:2', 'sent', 'r2', NULL, 0);
        INSERT INTO sends VALUES (3, 'selection', 'sent', 'r3', NULL, 0);
        INSERT INTO starts VALUES ('HTTP://127.0.0.1:9/|0000123456-00001', 4);
    """)
    db.commit()
    db.close()
    ledger = Ledger(str(path))
    scope = "http://127.0.0.1:9"
    assert sorted(ledger.records()) == [(scope, "group-1", "selection", "sent", "r3", None), (scope, KEY, "mdn:1", "sent", "r1", None),
                                        (scope, KEY, "mdn:2", "sent", "r2", None), (scope, KEY, "meid:A10000009296F2", "sent", "r1", None)]
    assert ledger.starts() == [(scope + "|0000123456-00001", 4.0)]
    assert _refused(Ledger(str(path)), KEY, {"tracking": "device"}) is None
    assert ledger.check_purpose(scope, "group-1", {"tracking": "selection"}) is None
    with pytest.raises(ThingSpaceError, match='tracking: was "selection", now "device"'):
        ledger.check_purpose(scope, "group-1", {"tracking": "device"})


def test_refused_targets_are_kept_reported_and_claimed_again_only_by_force(where):
    ledger = Ledger(where)
    claim = ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:3"])[0]
    ledger.refuse(claim, ["mdn:2"])
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "in_flight", "mdn:2": "refused", "mdn:3": "in_flight"}
    ledger.settle(claim, "sent", "r1")  # the rest of the batch, still claimed
    assert ledger.states(SCOPE, KEY) == {"mdn:1": "sent", "mdn:2": "refused", "mdn:3": "sent"}
    assert ledger.diff(SCOPE, KEY, ["mdn:2", "mdn:4"]) == Diff(["mdn:4"], [], [], ["mdn:2"])
    assert ledger.diff(SCOPE, KEY, ["mdn:2"], mode="unconfirmed") == Diff([], [], [], ["mdn:2"])
    assert ledger.diff(SCOPE, KEY, ["mdn:2"], mode="all") == Diff(["mdn:2"], [], [], ["mdn:2"])
    assert ledger.claim(SCOPE, KEY, ["mdn:2"], mode="unconfirmed")[1] == []
    assert ledger.claim(SCOPE, KEY, ["mdn:2"], mode="all")[1] == ["mdn:2"]
    ledger.close()


def _as_schema_3(where):
    """Make the ledger at ``where`` what schema 3 was: the states of sends without 'refused'."""
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1"])[0], "sent", "r1")
    ledger.close()
    old = "CHECK (state IN ('pending', 'sent', 'unknown'))"
    if isinstance(where, str):
        db = sqlite3.connect(where)
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'sends'").fetchone()[0]
        db.executescript("ALTER TABLE sends RENAME TO s; %s; INSERT INTO sends SELECT * FROM s; DROP TABLE s; "
                         "CREATE INDEX sends_claim ON sends (claim) WHERE claim IS NOT NULL; DROP TABLE sent_batches; DROP TABLE campaign_counts; "
                         "PRAGMA user_version = 3"
                         % sql.replace("CHECK (state IN ('pending', 'sent', 'unknown', 'refused'))", old))
        db.close()
        return
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        db.execute(f'ALTER TABLE "{where.schema}".sends DROP CONSTRAINT sends_state_check, ADD CONSTRAINT sends_state_check {old}; '
                   f'DROP TABLE "{where.schema}".campaign_counts; DROP TABLE "{where.schema}".campaign_devices; DROP TABLE "{where.schema}".campaigns; '
                   f'DROP TABLE "{where.schema}".sent_batches; '
                   f'UPDATE "{where.schema}".schema_version SET version = 3')


def test_a_schema_3_ledger_is_migrated_to_record_refused_devices(where):
    _as_schema_3(where)
    ledger = Ledger(where, read_only=True)
    assert ledger.sends(SCOPE, KEY) == {"mdn:1": ("sent", "r1")}
    ledger.close()
    ledger = Ledger(where)
    claim = ledger.claim(SCOPE, KEY, ["mdn:2", "mdn:3"])[0]
    ledger.refuse(claim, ["mdn:2"])
    ledger.settle(claim, "sent", "r2")
    assert ledger.sends(SCOPE, KEY) == {"mdn:1": ("sent", "r1"), "mdn:2": ("refused", None), "mdn:3": ("sent", "r2")}
    ledger.close()


# A batch sent whole is recorded as its digest (sent_batches), so that a re-run knows its targets sent without their rows;
# whatever changes a row of such a batch afterwards makes the diff read the rows again.
DEVICES = ["mdn:%d" % n for n in range(1, 8)]


def _sent_in_batches(ledger, targets, size):
    for start in range(0, len(targets), size):
        claim_id, claimed = ledger.claim(SCOPE, KEY, targets[start:start + size])
        assert claimed == targets[start:start + size]
        ledger.settle(claim_id, "sent", "r%d" % start)


def test_a_re_run_of_batches_sent_whole_reads_no_row_of_them(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"))
    _sent_in_batches(ledger, DEVICES, 3)
    read = []
    ledger.store._db.set_trace_callback(read.append)
    assert ledger.diff(SCOPE, KEY, DEVICES) == Diff([], [], [], [])
    assert [sql for sql in read if "FROM sends" in sql] == []
    # A device added at the end: only its row is looked up, and it is sent.
    assert ledger.diff(SCOPE, KEY, [*DEVICES, "mdn:8"]) == Diff(["mdn:8"], [], [], [])
    assert [sql.split(" WHERE ")[1] for sql in read if "FROM sends" in sql] == ["key_id = 1 AND target IN ('mdn:8')"]
    ledger.close()


@pytest.mark.parametrize("order", [DEVICES, DEVICES[::-1], [*DEVICES[1:], "mdn:9"], [*DEVICES[:2], "mdn:9", *DEVICES[2:]]])
def test_a_re_run_chunked_otherwise_than_the_batches_finds_the_same(where, order):
    ledger = Ledger(where)
    _sent_in_batches(ledger, DEVICES, 3)
    new = [target for target in order if target not in DEVICES]
    assert ledger.diff(SCOPE, KEY, order) == Diff(new, [], [], [])
    ledger.close()


def test_a_forced_claim_makes_the_key_s_batches_read_again(where):
    ledger = Ledger(where)
    _sent_in_batches(ledger, DEVICES, 3)
    ledger.release(ledger.claim(SCOPE, KEY, ["mdn:2"], mode="all")[0])  # forced, then certainly not sent: forgotten
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:5"], mode="all")[0], "unknown")
    assert ledger.diff(SCOPE, KEY, DEVICES) == Diff(["mdn:2"], ["mdn:5"], [], [])
    ledger.close()


def test_a_batch_taken_over_while_it_is_sent_is_not_recorded_sent_whole(where):
    ledger, other = Ledger(where), Ledger(where)
    claim_id, _claimed = ledger.claim(SCOPE, KEY, DEVICES[:3])
    forced = other.claim(SCOPE, KEY, ["mdn:2"], mode="all")[0]  # force takes over an in-flight target
    ledger.settle(claim_id, "sent", "r1")
    other.release(forced)
    assert ledger.diff(SCOPE, KEY, DEVICES[:3]) == Diff(["mdn:2"], [], [], [])
    ledger.close()
    other.close()


def test_a_batch_with_refused_devices_reports_them_on_a_re_run(where):
    ledger = Ledger(where)
    claim_id = ledger.claim(SCOPE, KEY, DEVICES[:3])[0]
    ledger.refuse(claim_id, ["mdn:2"])
    ledger.settle(claim_id, "sent", "r1")
    assert ledger.diff(SCOPE, KEY, DEVICES[:3]) == Diff([], [], [], ["mdn:2"])
    ledger.close()


def _claim_index(where):
    """The index of the sends' claims that schemas 2 to 6 had: its name, or None."""
    if isinstance(where, str):
        db = sqlite3.connect(where)
        try:
            return (db.execute("SELECT name FROM sqlite_master WHERE name = 'sends_claim'").fetchone() or [None])[0]
        finally:
            db.close()
    import psycopg

    with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
        return db.execute("SELECT to_regclass(%s)::text", ('"%s".sends_claim' % where.schema,)).fetchone()[0]


def test_a_schema_7_ledger_is_read_in_check_mode_and_a_run_records_batches(where):
    ledger = Ledger(where)
    _sent_in_batches(ledger, DEVICES[:3], 3)
    ledger.close()
    _without_tables(where, 7, ("sent_batches",))
    ledger = Ledger(where)  # the index schema 7 had, made again (a run of schema 8 dropped it)
    ledger.store.execute("CREATE INDEX sends_claim ON sends (claim) WHERE claim IS NOT NULL")
    ledger.close()
    _set_version(where, 7)
    assert _claim_index(where) is not None
    ledger = Ledger(where, read_only=True)
    assert ledger.diff(SCOPE, KEY, DEVICES) == Diff(DEVICES[3:], [], [], [])
    ledger.close()
    ledger = Ledger(where)
    _sent_in_batches(ledger, DEVICES[3:], 4)
    assert ledger.diff(SCOPE, KEY, DEVICES) == Diff([], [], [], [])
    assert ledger.store.rows("SELECT devices FROM sent_batches") == [(4,)]
    ledger.close()
    assert _claim_index(where) is None


def test_a_claim_s_rows_are_written_by_key_and_target(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"))
    written = []
    ledger.store._db.set_trace_callback(written.append)
    outcomes = {"sent": lambda claim_id: ledger.settle(claim_id, "sent", "r1"), "unknown": lambda claim_id: ledger.settle(claim_id, "unknown"),
                "released": ledger.release}
    for key, outcome in outcomes.items():
        claim_id = ledger.claim(SCOPE, key, DEVICES)[0]
        ledger.refuse(claim_id, ["mdn:1"])
        outcome(claim_id)
    changes = [sql.split(" WHERE ")[1] for sql in written if sql.startswith(("UPDATE sends", "DELETE FROM sends"))]
    assert len(changes) == 6 and all(sql.startswith(tuple("key_id = %d AND target" % n for n in (1, 2, 3))) for sql in changes), changes
    assert {key: ledger.states(SCOPE, key) for key in outcomes} == {
        "sent": dict.fromkeys(DEVICES, "sent") | {"mdn:1": "refused"}, "unknown": dict.fromkeys(DEVICES, "unknown") | {"mdn:1": "refused"},
        "released": {"mdn:1": "refused"}}
    ledger.close()


def test_a_settle_recording_its_digest_never_deadlocks_with_a_claim_of_the_same_key(postgresql):
    """A claim on another controller holds the key's row FOR UPDATE and waits for the rows a settle has changed: the
    settle's digest must not wait for the key's row (as a foreign key's check would)."""
    import threading

    import psycopg

    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    ledger = Ledger(where)
    claim_id = ledger.claim(SCOPE, KEY, DEVICES[:2])[0]
    key_id = ledger.store.rows("SELECT id FROM send_keys")[0][0]
    errors = []
    with postgresql.connect() as other:
        other.execute('SET search_path TO "%s"' % where.schema)
        other.execute("BEGIN")
        other.execute("SELECT id FROM send_keys WHERE id = %s FOR UPDATE", (key_id,))  # the claim's first step

        def settle():
            try:
                ledger.settle(claim_id, "sent", "r1")
            except ThingSpaceError as error:
                errors.append(error.message)

        settling = threading.Thread(target=settle)
        settling.start()
        settling.join(2)
        try:  # the claim's rows: one is the settle's, which it waits for while the settle is not committed
            other.execute("INSERT INTO sends (key_id, target, state, claim, updated_at) VALUES (%s, 'mdn:2', 'pending', 'c', 0) "
                          "ON CONFLICT DO NOTHING", (key_id,))
            other.execute("COMMIT")
        except psycopg.Error as error:  # the deadlock, when the settle waits for the key's row
            errors.append(str(error))
        settling.join(30)
    assert errors == [] and ledger.states(SCOPE, KEY) == {"mdn:1": "sent", "mdn:2": "sent"}
    ledger.close()
