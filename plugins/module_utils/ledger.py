# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: an SQLite record of what was sent, so a re-run sends nothing twice.

A row is (scope, key, target) → state. ``scope`` is the service (``service_scope``: the API URL in one
spelling), ``key`` the idempotency key, ``target`` one device (``kind:id``, identifiers in one spelling) for
device lists or the whole selection for filters; (scope, key) pairs are stored once, with what the key was used
for (its purpose: message, encoding, selection), and referred to by number. States:

- ``pending``: claimed by a run that is sending it now, or by a run that died while sending it;
- ``sent``: the API answered with a request id;
- ``unknown``: the request may have reached the service but no answer arrived.

Targets are claimed (written ``pending``) in one transaction before their request goes out and settled
after it, so concurrent runs never both send to a target and a killed run leaves a visible trace. While a
run sends a claimed batch it holds an flock on ``<ledger>.claims/<claim id>``: a pending row whose lock is
held is in flight (reported as ``in_flight``, never taken over); one whose lock is free belongs to a run
that died.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import uuid
from collections import namedtuple
from urllib.parse import urlsplit

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import check_private, private_dir, private_file
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import HEX_KINDS

PENDING, SENT, UNKNOWN = "pending", "sent", "unknown"
# A pending row whose claim is held by a live run (derived, never stored).
IN_FLIGHT = "in_flight"
# Which recorded targets a run sends again: none, those not sent, or all of them (force).
NEW, UNCONFIRMED, ALL = "new", "unconfirmed", "all"
# The resend rule, stated once: the recorded states a run of each mode sends again. ``diff`` and ``claim``
# (its SQL) both read it. A target with no record is always sent.
RESENDS = {
    NEW: (),
    UNCONFIRMED: (PENDING, UNKNOWN),
    ALL: (PENDING, SENT, UNKNOWN, IN_FLIGHT),
}

# What a run under one key finds: the targets to send, and among all targets those unconfirmed (pending of a
# dead run, or unknown) and those another live run is sending.
Diff = namedtuple("Diff", "to_send unconfirmed in_flight")

SCHEMA_VERSION = 2
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
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'unknown')),
    request_id TEXT,
    claim TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (key_id, target)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sends_claim ON sends (claim) WHERE claim IS NOT NULL;
CREATE TABLE IF NOT EXISTS starts (
    scope TEXT NOT NULL PRIMARY KEY,
    started_at REAL NOT NULL
) WITHOUT ROWID
"""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def service_scope(api_url):
    """The ledger's identity of the service: the API URL in one spelling (scheme and host in lower case, no
    default port, no trailing slash), so another spelling of the same URL finds the same record."""
    parts = urlsplit(api_url.strip())
    scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    netloc = "[%s]" % host if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += ":%d" % port
    return "%s://%s%s" % (scheme, netloc, parts.path.rstrip("/"))


def account_scope(api_url, account):
    """The identity of one account of the service (callbacks are started per account)."""
    return "%s|%s" % (service_scope(api_url), account)


def _create(path):
    """A new ledger: an SQLite file in WAL mode, its tables still to come (``Ledger`` adds them)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def _check_file(path, status):
    """Refuse a ledger that cannot be read whole, naming the file and what to do. A ledger is never empty: it is
    created under another name and linked into place (``_create``), so an empty one was truncated or made by
    something else."""
    if status.st_size == 0:
        raise ThingSpaceError("The ledger %s is empty (0 bytes); thingspace.m2m never leaves a ledger empty, so it was truncated or made "
                              "by something else. Restore it from a backup; delete it only if no earlier send needs to be known "
                              "(a new ledger knows of none, and a re-run sends again)" % path)
    try:
        db = sqlite3.connect(path, timeout=60)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise ThingSpaceError("The ledger %s cannot be read: it is damaged, truncated or not a ledger (SQLite: %s). Restore it from a "
                              "backup, or salvage what it holds with: sqlite3 %s .recover; delete it only if no earlier send needs to "
                              "be known (a new ledger knows of none, and a re-run sends again)" % (path, "; ".join(problems[:3]), path))


def _on_conflict(mode):
    """The claim's ON CONFLICT clause for ``mode``: take over the stored states RESENDS names. A live run's
    claim is pending too; UNCONFIRMED leaves it alone because ``claim`` drops busy targets first."""
    stored = [state for state in RESENDS[mode] if state != IN_FLIGHT]
    if not stored:
        return "ON CONFLICT DO NOTHING"
    return ("ON CONFLICT (key_id, target) DO UPDATE SET state = 'pending', request_id = NULL, claim = excluded.claim, "
            "updated_at = excluded.updated_at WHERE sends.state IN (%s)" % ", ".join("'%s'" % state for state in stored))


class Ledger:
    """One connection to the ledger file. ``read_only`` (check mode) neither creates nor changes it."""

    def __init__(self, path, read_only=False):
        self.path = os.path.expanduser(path)
        self._claims = self.path + ".claims"
        self._held = {}  # claim id -> open, flocked lock file of a batch this process is sending
        self._read_only = read_only
        self._db = None
        if read_only and not os.path.lexists(self.path):
            return
        _check_file(self.path, check_private(self.path) if read_only else private_file(self.path, create=_create))
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE takes the write lock up front).
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._check_version()
        if not read_only:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if self._check_version() < SCHEMA_VERSION:
                with self._transaction():
                    # Read again under the write lock: another process may have upgraded it meanwhile.
                    version = self._check_version()
                    if version == 1:
                        _migrate_from_1(self._db)
                    if version < SCHEMA_VERSION:
                        for statement in _SCHEMA.split(";"):
                            self._db.execute(statement)
                        self._db.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)

    def _check_version(self):
        """The schema version; refused when a newer collection wrote it."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ThingSpaceError("The ledger %s was written by a newer thingspace.m2m (schema %d); upgrade the collection" % (self.path, version))
        return version

    def close(self):
        for claim_id in list(self._held):
            self._unhold(claim_id)
        if self._db is not None:
            self._db.close()
            self._db = None

    def states(self, scope, key):
        """target → state of everything recorded under ``key`` (pending rows of live runs as IN_FLIGHT)."""
        key_id = self._key_id(scope, key)
        if key_id is None:
            return {}
        rows = self._db.execute("SELECT target, state, claim FROM sends WHERE key_id = ?", (key_id,)).fetchall()
        live = self._live({claim for _target, state, claim in rows if state == PENDING})
        return {target: IN_FLIGHT if claim in live else state for target, state, claim in rows}

    def check_purpose(self, scope, key, purpose, mode=NEW):
        """Refuse a key recorded for another ``purpose`` (a dict: message, encoding, selection, tracking) unless
        ``mode`` is ALL: its targets got another message, so this one would be skipped for them. Only the fields
        recorded are compared (a migrated ledger knows some)."""
        recorded = self._purpose(scope, key)
        if mode == ALL or recorded is None:
            return
        differences = []
        for field in sorted(recorded):
            before, after = recorded[field], purpose.get(field)
            if before != after:
                shown = "another text" if field == "message" else "was %s, now %s" % (json.dumps(before, sort_keys=True), json.dumps(after, sort_keys=True))
                differences.append("%s: %s" % (field, shown))
        if differences:
            raise ThingSpaceError(
                "idempotency_key %r was used for another send (%s); nothing was sent. Use a new idempotency_key for this send, "
                "or force: true to send it under this key to every target again" % (key, "; ".join(differences))
            )

    def diff(self, scope, key, targets, mode=NEW):
        """What a run of ``mode`` sends of ``targets`` under ``key``, in one pass over the record."""
        states = self.states(scope, key)
        to_send, unconfirmed, in_flight = [], [], []
        for target in targets:
            state = states.get(target)
            if state in (PENDING, UNKNOWN):
                unconfirmed.append(target)
            elif state == IN_FLIGHT:
                in_flight.append(target)
            if state is None or state in RESENDS[mode]:
                to_send.append(target)
        return Diff(to_send, unconfirmed, in_flight)

    def claim(self, scope, key, targets, mode=NEW, purpose=None):
        """Mark ``targets`` pending in one transaction and hold the claim's lock; return (claim id, the targets
        this call claimed).

        ``mode`` says which already recorded targets are taken over: NEW none (a row means sent, unconfirmed
        or in flight), UNCONFIRMED those neither sent nor in flight, ALL every one (force). ``purpose`` is
        recorded for the key when it has none yet or only part of one, and replaced by ALL."""
        claim_id = uuid.uuid4().hex
        self._hold(claim_id)
        now = time.time()
        with self._transaction():
            key_id = self._key_id(scope, key, create=True)
            recorded = self._purpose(scope, key)
            if purpose is not None and (recorded is None or mode == ALL or set(recorded) < set(purpose)):
                self._db.execute("UPDATE send_keys SET purpose = ? WHERE id = ?", (json.dumps(purpose, sort_keys=True), key_id))
            if PENDING in RESENDS[mode] and IN_FLIGHT not in RESENDS[mode]:
                # Pending rows of live runs are in flight, not unconfirmed: leave them to their run.
                pending = self._db.execute("SELECT target, claim FROM sends WHERE key_id = ? AND state = 'pending'", (key_id,)).fetchall()
                live = self._live({claim for _target, claim in pending} - {claim_id})
                busy = {target for target, claim in pending if claim in live}
                targets = [target for target in targets if target not in busy]
            self._db.executemany(
                "INSERT INTO sends (key_id, target, state, claim, updated_at) VALUES (?, ?, 'pending', ?, ?) " + _on_conflict(mode),
                ((key_id, target, claim_id, now) for target in targets),
            )
            rows = self._db.execute("SELECT target FROM sends WHERE claim = ?", (claim_id,)).fetchall()
        claimed = {row[0] for row in rows}
        if not claimed:
            self._unhold(claim_id)
        return claim_id, [target for target in targets if target in claimed]

    def _key_id(self, scope, key, create=False):
        """The number of (scope, key); None when not recorded (or no ledger yet) unless ``create``."""
        rows = self._read("SELECT id FROM send_keys WHERE scope = ? AND key = ?", (scope, key))
        if not rows and create:
            return self._db.execute("INSERT INTO send_keys (scope, key) VALUES (?, ?)", (scope, key)).lastrowid
        return rows[0][0] if rows else None

    def knows(self, scope, key):
        """Whether anything was recorded under ``key``."""
        return self._key_id(scope, key) is not None

    def _purpose(self, scope, key):
        rows = self._read("SELECT purpose FROM send_keys WHERE scope = ? AND key = ?", (scope, key))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def settle(self, claim_id, state, request_id=None):
        """Record the outcome (``sent`` or ``unknown``) of a claimed batch."""
        with self._transaction():
            self._db.execute(
                "UPDATE sends SET state = ?, request_id = ?, claim = NULL, updated_at = ? WHERE claim = ?",
                (state, request_id, time.time(), claim_id),
            )
        self._unhold(claim_id)

    def release(self, claim_id):
        """Forget a claimed batch that certainly was not sent, so a later run sends it."""
        with self._transaction():
            self._db.execute("DELETE FROM sends WHERE claim = ?", (claim_id,))
        self._unhold(claim_id)

    def _hold(self, claim_id):
        private_dir(self._claims)
        handle = os.open(os.path.join(self._claims, claim_id), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._held[claim_id] = handle

    def _unhold(self, claim_id):
        handle = self._held.pop(claim_id)
        os.unlink(os.path.join(self._claims, claim_id))
        os.close(handle)

    def _live(self, claim_ids):
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

    def record_start(self, scope):
        """Remember that callbacks were started for ``scope``; True the first time."""
        with self._transaction():
            cursor = self._db.execute("INSERT OR IGNORE INTO starts (scope, started_at) VALUES (?, ?)", (scope, time.time()))
        return cursor.rowcount == 1

    def has_started(self, scope):
        return bool(self._read("SELECT 1 FROM starts WHERE scope = ?", (scope,)))

    def records(self):
        """Every send recorded, as (scope, key, target, state, request id, claim) rows: what reports and copies
        of the ledger read."""
        return self._read("SELECT k.scope, k.key, s.target, s.state, s.request_id, s.claim FROM sends s JOIN send_keys k ON k.id = s.key_id")

    def _read(self, sql, args=()):
        """The rows of a read; a ledger that is missing or has no tables yet (read-only) reads as empty."""
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def _transaction(self):
        return _Transaction(self._db)


def _migrate_from_1(db):
    """Schema 1 → 2: the purpose column; scopes as ``service_scope`` (schema 1 wrote "api_url|account", so
    one key under two spellings or accounts is merged) and ``account_scope`` for starts; hexadecimal
    identifiers in upper case."""
    db.execute("ALTER TABLE send_keys ADD COLUMN purpose TEXT")
    for key_id, scope, key in db.execute("SELECT id, scope, key FROM send_keys").fetchall():
        merged = service_scope(scope.split("|", 1)[0])
        kept = db.execute("SELECT id FROM send_keys WHERE scope = ? AND key = ? AND id != ?", (merged, key, key_id)).fetchone()
        if kept is None:
            db.execute("UPDATE send_keys SET scope = ? WHERE id = ?", (merged, key_id))
            continue
        db.execute("INSERT OR IGNORE INTO sends SELECT ?, target, state, request_id, claim, updated_at FROM sends WHERE key_id = ?", (kept[0], key_id))
        db.execute("DELETE FROM sends WHERE key_id = ?", (key_id,))
        db.execute("DELETE FROM send_keys WHERE id = ?", (key_id,))
    # A key whose selection was one target was a filter send tracked as a whole; the others were per device.
    db.execute("""UPDATE send_keys SET purpose = CASE WHEN EXISTS (SELECT 1 FROM sends WHERE key_id = send_keys.id AND target = 'selection')
                  THEN '{"tracking": "selection"}' ELSE '{"tracking": "device"}' END""")
    for kind in HEX_KINDS:
        prefix = kind + ":"
        db.execute("UPDATE OR IGNORE sends SET target = ? || upper(substr(target, ?)) WHERE target LIKE ?", (prefix, len(prefix) + 1, prefix + "%"))
    for scope, started_at in db.execute("SELECT scope, started_at FROM starts").fetchall():
        url, _bar, account = scope.partition("|")
        db.execute("DELETE FROM starts WHERE scope = ?", (scope,))
        db.execute("INSERT OR IGNORE INTO starts (scope, started_at) VALUES (?, ?)", (account_scope(url, account), started_at))


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
