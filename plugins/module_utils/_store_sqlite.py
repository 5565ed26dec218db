# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal use only, not an API of the collection: the SQLite store of the ledger, the embedded default.

ledger.py is the protocol (states, resend rule, claim → send → settle); this file is what differs for a file on
one controller: the file itself (created whole, checked at every open; docs/design.md, "State files"), its schema
and version (``PRAGMA user_version``), transactions (``BEGIN IMMEDIATE``: one writer at a time, so a claim never
runs beside another) and in-flight locks: while a run sends a claimed batch it holds an flock on
``<ledger>.claims/<claim id>``, which the kernel drops when the process dies.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import uuid

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import check_private, private_dir, private_file

# 3: the callbacks and the delivery states (deliveries.py); 4: the send state 'refused'; 5: campaigns (campaign.py);
# 6: which recorder recorded a callback (callbacks.recorded_by); 7: a campaign's devices counted per wave and state;
# 8: the digests of batches sent whole, and no index of the sends' claims (ledger.py finds a claim's rows by key and target);
# 9: a campaign's devices keyed by position (a batch is one range of the table), not by target.
SCHEMA_VERSION = 9
# The oldest schema read as it is in check mode: later versions only add tables (which read as empty until then)
# and states.
READABLE_FROM = 2
# Rows per INSERT of a claim or of a campaign's devices: 4 parameters each, under the 999 parameters of a statement SQLite
# allowed before 3.32.
INSERT_ROWS = 200
# Rows fetched at a time by ``stream``.
STREAM_ROWS = 10000
# Values per ``among``: a statement's other parameters stay under the 999 SQLite allowed before 3.32.
AMONG_VALUES = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_keys (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    purpose TEXT,
    UNIQUE (scope, key)
);
CREATE TABLE IF NOT EXISTS sends (
    key_id INTEGER NOT NULL REFERENCES send_keys (id),
    target TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'unknown', 'refused')),
    request_id TEXT,
    claim TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (key_id, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent_batches (
    key_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    devices INTEGER NOT NULL,
    PRIMARY KEY (key_id, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS starts (
    scope TEXT NOT NULL PRIMARY KEY,
    started_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS callbacks (
    event_id TEXT NOT NULL PRIMARY KEY,
    type TEXT NOT NULL,
    account TEXT,
    request_id TEXT,
    event TEXT NOT NULL,
    received_at REAL NOT NULL,
    queued_at REAL,
    recorded_by TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS callbacks_complete ON callbacks (request_id) WHERE type = 'request_complete';
CREATE INDEX IF NOT EXISTS callbacks_device_sms ON callbacks (received_at) WHERE type = 'device_sms';
CREATE TABLE IF NOT EXISTS deliveries (
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sent', 'Delivered', 'Undelivered', 'Expired', 'Rejected')),
    aliases TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (request_id, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    account TEXT,
    definition TEXT NOT NULL,
    policy TEXT NOT NULL,
    devices_total INTEGER NOT NULL,
    waves TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'waiting', 'paused', 'completed', 'aborted')),
    wave INTEGER NOT NULL,
    abort_reason TEXT,
    next_send_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (scope, name)
);
CREATE TABLE IF NOT EXISTS campaign_devices (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    target TEXT NOT NULL,
    position INTEGER NOT NULL,
    wave INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'unconfirmed', 'sent', 'delivered', 'replied', 'reply_error', 'undelivered', 'expired',
                                         'rejected', 'timed_out', 'refused', 'skipped')),
    request_id TEXT,
    sent_at REAL,
    finished_at REAL,
    PRIMARY KEY (campaign_id, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS campaign_devices_target ON campaign_devices (target);
CREATE TABLE IF NOT EXISTS campaign_counts (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    wave INTEGER NOT NULL,
    state TEXT NOT NULL,
    devices INTEGER NOT NULL,
    first_sent_at REAL,
    last_sent_at REAL,
    PRIMARY KEY (campaign_id, wave, state)
) WITHOUT ROWID
"""
# Schema 9: the devices of the campaigns an older schema holds, in the table keyed by position.
_CAMPAIGN_DEVICES = "campaign_id, target, position, wave, state, request_id, sent_at, finished_at"
# Schema 7: the counts of the campaigns an older schema holds.
_COUNT_CAMPAIGNS = ("INSERT INTO campaign_counts SELECT campaign_id, wave, state, count(*), min(sent_at), max(sent_at) FROM campaign_devices "
                    "GROUP BY campaign_id, wave, state")


def _create(path):
    """A new ledger: an SQLite file in WAL mode, its tables still to come (``SqliteStore`` adds them)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def _connect(path, status, checked=True):
    """A connection to the ledger, refused (naming the file and what to do) unless it can be read whole (unless not
    ``checked``: a read-only open checks beside its reads, ``_Check``). A ledger is never empty: it is created under
    another name and linked into place (``_create``), so an empty one was truncated or made by something else. ``PRAGMA
    quick_check`` runs on the connection the task then uses: a second connection that closed would checkpoint and delete
    the write-ahead log, which the next one makes again."""
    if status.st_size == 0:
        raise ThingSpaceError("The ledger %s is empty (0 bytes); thingspace.m2m never leaves a ledger empty, so it was truncated or made "
                              "by something else. Restore it from a backup; delete it only if no earlier send needs to be known "
                              "(a new ledger knows of none, and a re-run sends again)" % path)
    db = None
    try:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE takes the write lock up front).
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        problems = _problems(db) if checked else ["ok"]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        if db is not None:
            db.close()
        raise _damaged(path, problems)
    return db


def _problems(db):
    """What ``PRAGMA quick_check`` finds wrong in the file of ``db`` (``["ok"]`` when nothing): the b-trees, the free
    pages and every row against its table's rules, reading the whole file."""
    return [row[0] for row in db.execute("PRAGMA quick_check")]


def _damaged(path, problems):
    return ThingSpaceError("The ledger %s cannot be read: it is damaged, truncated or not a ledger (SQLite: %s). Restore it from a "
                           "backup, or salvage what it holds with: sqlite3 %s .recover; delete it only if no earlier send needs to "
                           "be known (a new ledger knows of none, and a re-run sends again)" % (path, "; ".join(problems[:3]), path))


class _Check:
    """The check of a read-only open: ``PRAGMA quick_check`` in a thread, on a connection of its own, while the task
    reads on its connection (SQLite works without Python's lock, so on another core). ``problems`` waits for it; the
    store takes it at its close, which every module reaches before it answers. The task's connection is the file's last
    to close, as when the check runs on it."""

    def __init__(self, path):
        self._found = ["the check did not finish"]
        self._thread = threading.Thread(target=self._run, args=(path,), name="ledger-check", daemon=True)
        self._thread.start()

    def _run(self, path):
        try:
            db = sqlite3.connect(path, timeout=60, isolation_level=None)
            try:
                self._found = _problems(db)
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            self._found = [str(exc)]

    def problems(self):
        self._thread.join()
        return self._found


class SqliteStore:
    """One connection to the ledger file. ``read_only`` (check mode) neither creates nor changes it.
    ``migrate_from_1(db)`` brings a version 0.1.0 ledger (schema 1) to schema 2 inside the upgrade's transaction;
    the tables later versions add are created by the schema's CREATE ... IF NOT EXISTS."""

    NAME = "sqlite"
    # A claim's transaction already holds the database's only write lock (BEGIN IMMEDIATE).
    FOR_UPDATE = ""

    def __init__(self, path, read_only, migrate_from_1):
        self.where = path
        self._claims = path + ".claims"
        self._held = {}  # claim id -> open, flocked lock file of a batch this process is sending
        self._read_only = read_only
        self._db = self._check = None
        if read_only and not os.path.lexists(path):
            return
        self._db = _connect(path, check_private(path) if read_only else private_file(path, create=_create), checked=not read_only)
        if read_only:
            self._check = _Check(path)
            try:
                version = self._check_version()
                if 0 < version < READABLE_FROM:
                    raise ThingSpaceError("The ledger %s was written by an older thingspace.m2m (schema %d), and check mode does not change it; "
                                          "a run without check mode migrates it" % (path, version))
            except (sqlite3.DatabaseError, ThingSpaceError):
                self._close()  # a damaged file is refused as such
                raise
            return
        version = self._check_version()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if version < SCHEMA_VERSION:
            with self.transaction():
                # Read again under the write lock: another process may have upgraded it meanwhile.
                version = self._check_version()
                if version == 1:
                    migrate_from_1(self._db)
                # SQLite cannot change a CHECK constraint: before schema 4 (the state 'refused'), the table of sends is
                # made again and its rows copied.
                remake = 0 < version < 4
                if remake:
                    self._db.execute("ALTER TABLE sends RENAME TO sends_before_4")
                # Before schema 9 a campaign's devices were keyed by target: the table is made again, keyed by position.
                rekey = 5 <= version < 9
                if rekey:
                    self._db.execute("DROP INDEX IF EXISTS campaign_devices_target")
                    self._db.execute("DROP INDEX IF EXISTS campaign_devices_position")
                    self._db.execute("ALTER TABLE campaign_devices RENAME TO campaign_devices_before_9")
                if 3 <= version < 6 and "recorded_by" not in [row[1] for row in self._db.execute("PRAGMA table_info(callbacks)")]:
                    self._db.execute("ALTER TABLE callbacks ADD COLUMN recorded_by TEXT")
                if version < SCHEMA_VERSION:
                    self._db.execute("DROP INDEX IF EXISTS sends_claim")  # before schema 8
                    for statement in _SCHEMA.split(";"):
                        self._db.execute(statement)
                    if remake:
                        self._db.execute("INSERT INTO sends SELECT key_id, target, state, request_id, claim, updated_at FROM sends_before_4")
                        self._db.execute("DROP TABLE sends_before_4")
                    if rekey:
                        self._db.execute("INSERT INTO campaign_devices (%s) SELECT %s FROM campaign_devices_before_9 ORDER BY campaign_id, position"
                                         % (_CAMPAIGN_DEVICES, _CAMPAIGN_DEVICES))
                        self._db.execute("DROP TABLE campaign_devices_before_9")
                    if version < 7:  # campaign_counts is new: the campaigns already held counted once
                        self._db.execute(_COUNT_CAMPAIGNS)
                    self._db.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)

    @property
    def exists(self):
        """False when a read-only open found no file."""
        return self._db is not None

    def _check_version(self):
        """The schema version; refused when a newer collection wrote it."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ThingSpaceError("The ledger %s was written by a newer thingspace.m2m (schema %d); upgrade the collection" % (self.where, version))
        return version

    def close(self):
        """Close; a read-only open's check refuses the ledger here at the latest."""
        for claim_id in list(self._held):
            self.unhold(claim_id)
        self._close()

    def _close(self):
        try:
            self._checked()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _checked(self):
        """Refuse the ledger when the check of a read-only open found it damaged (waiting for it)."""
        check, self._check = self._check, None
        problems = check.problems() if check is not None else ["ok"]
        if problems != ["ok"]:
            raise _damaged(self.where, problems)

    def rows(self, sql, args=()):
        """The rows of a read; a ledger that is missing or has no tables yet (read-only) reads as empty."""
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def stream(self, sql, args=()):
        """The rows of a read one by one, as ``rows`` reads them, without holding them all: for reads of a million rows."""
        if self._db is None:
            return
        try:
            cursor = self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return
            raise
        while True:
            rows = cursor.fetchmany(STREAM_ROWS)
            if not rows:
                return
            yield from rows

    def execute(self, sql, args=()):
        """Run a write; the number of rows it changed."""
        return self._db.execute(sql, args).rowcount

    def executemany(self, sql, rows):
        return self._db.executemany(sql, rows).rowcount

    def insert_pending(self, key_id, targets, claim_id, now, on_conflict):
        """Write ``targets`` pending for ``claim_id``; ``on_conflict`` says which recorded rows are taken over. The number
        of rows written."""
        return self._insert("sends (key_id, target, state, claim, updated_at)", "(?, ?, 'pending', ?, ?)",
                            [(key_id, target, claim_id, now) for target in targets], on_conflict)

    def insert_devices(self, campaign_id, devices):
        """Write a new campaign's ``devices`` ((target, position, wave), in position order) pending."""
        self._insert("campaign_devices (campaign_id, target, position, wave, state)", "(?, ?, ?, ?, 'pending')",
                     [(campaign_id, *device) for device in devices])

    def _insert(self, into, marks, rows, suffix=""):
        """INSERT INTO ``into`` the ``rows`` (their parameters, as ``marks`` takes them), in INSERTs of INSERT_ROWS rows:
        SQLite runs one statement of many rows in about 60 % of the time of one statement per row (executemany). The
        number of rows written."""
        written = 0
        for start in range(0, len(rows), INSERT_ROWS):
            some = rows[start:start + INSERT_ROWS]
            written += self._db.execute("INSERT INTO %s VALUES %s %s" % (into, ", ".join([marks] * len(some)), suffix),
                                        [value for row in some for value in row]).rowcount
        return written

    def among(self, values):
        """A condition that a column is one of ``values``, as (SQL after the column, its parameters), in as many pieces as
        a statement takes: ``IN (?, ...)`` of AMONG_VALUES values each."""
        for start in range(0, len(values), AMONG_VALUES):
            some = values[start:start + AMONG_VALUES]
            yield "IN (%s)" % ", ".join("?" * len(some)), some

    def insert_callbacks(self, rows):
        """Insert the callbacks ``rows`` (event_id, type, account, request_id, event, received_at, recorded_by) that are
        not recorded yet."""
        self._db.executemany("INSERT INTO callbacks (event_id, type, account, request_id, event, received_at, recorded_by) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING", rows)

    def rows_after(self, sql, args=()):
        """The rows of a query, read now; a function that returns them (as PostgreSQL's, read after its pipeline)."""
        found = self.rows(sql, args)
        return lambda: found

    def pipelined_transaction(self):
        """A transaction: statements go to SQLite in this process, with nothing to send together."""
        return self.transaction()

    def transaction(self):
        return _Transaction(self._db)

    def hold(self):
        """A new claim id, its lock held until ``unhold`` or the end of the process."""
        claim_id = uuid.uuid4().hex
        private_dir(self._claims)
        handle = os.open(os.path.join(self._claims, claim_id), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._held[claim_id] = handle
        return claim_id

    def unhold(self, claim_id):
        handle = self._held.pop(claim_id)
        os.unlink(os.path.join(self._claims, claim_id))
        os.close(handle)

    def live(self, claim_ids):
        """The claims among ``claim_ids`` whose lock a running process holds; stale lock files are removed."""
        live = set()
        for claim_id in claim_ids:
            if claim_id in self._held:
                live.add(claim_id)
                continue
            path = os.path.join(self._claims, claim_id)
            try:
                handle = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # no lock file: the claimant is gone
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live.add(claim_id)
            else:
                if not self._read_only:
                    os.unlink(path)
            finally:
                os.close(handle)
        return live


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error: a claim is all or nothing."""

    def __init__(self, db):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
