# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: a record of what was sent, so a re-run sends nothing twice.

A row is (scope, key, target) → state. ``scope`` is the service (``service_scope``: the API URL in one
spelling), ``key`` the idempotency key, ``target`` one device (``kind:id``, identifiers in one spelling) for
device lists or the whole selection for filters; (scope, key) pairs are stored once, with what the key was used
for (its purpose: message, encoding, selection), and referred to by number. States:

- ``pending``: claimed by a run that is sending it now, or by a run that died while sending it;
- ``sent``: the API answered with a request id;
- ``unknown``: the request may have reached the service but no answer arrived;
- ``refused``: the service refused the device (not in the account); sent again only by ``force``.

A row's ``updated_at`` is its claim time while it is ``pending`` or ``unknown`` (settling it ``unknown`` keeps it), and
the time it was settled once ``sent``. An unconfirmed row is settled ``sent`` by the callbacks the ledger holds for
its device (``resolve_unconfirmed``). A batch settled ``sent`` whole is also recorded as the digest of its targets in
their order (``sent_batches``): a re-run that finds the same digest among its targets chunked the same way knows them
sent without reading their rows (``diff``). Only ``force`` changes a ``sent`` row, and its claim forgets the key's
digests.

Targets are claimed (written ``pending``) in one transaction before their request goes out and settled
after it, so concurrent runs never both send to a target and a killed run leaves a visible trace. While a
run sends a claimed batch it holds a lock of the claim that goes when the run dies: a pending row whose lock is
held is in flight (reported as ``in_flight``, never taken over); one whose lock is free belongs to a run that
died.

This file is that protocol, written once. Where the rows live is a store, one per backend, with the same few
methods: ``_store_sqlite`` (a file of one controller, the default; its locks are flocks) and
``_store_postgresql`` (a database every controller reaches; its locks are advisory locks of the session). A store
brings its schema, transactions, the few statements its dialect writes otherwise, and the locks
(docs/design.md, "The ledger store").
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter, namedtuple
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ansible_collections.thingspace.m2m.plugins.module_utils._store_sqlite import SqliteStore
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import HEX_KINDS

PENDING, SENT, UNKNOWN, REFUSED = "pending", "sent", "unknown", "refused"
# A pending row whose claim is held by a live run (derived, never stored).
IN_FLIGHT = "in_flight"
# Which recorded targets a run sends again: none, those not sent, or all of them (force).
NEW, UNCONFIRMED, ALL = "new", "unconfirmed", "all"
# The resend rule, stated once: the recorded states a run of each mode sends again. ``diff`` and ``claim``
# (its SQL) both read it. A target with no record is always sent.
RESENDS = {
    NEW: (),
    UNCONFIRMED: (PENDING, UNKNOWN),
    ALL: (PENDING, SENT, UNKNOWN, REFUSED, IN_FLIGHT),
}

# What a run under one key finds: the targets to send, and among all targets those unconfirmed (pending of a
# dead run, or unknown), those another live run is sending and those the service refused.
Diff = namedtuple("Diff", "to_send unconfirmed in_flight refused")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The callbacks that prove ThingSpace processed a request for a device: its "Performed action on device" notice
# (EnhancedConnectivityService) and its delivery confirmation (callback_events types).
_PROOF_TYPES = ("sms_sent", "sms_delivery")
# A time after every record (seconds since the epoch, year 5138).
_NEVER = 1e11
# The batch sizes of a key's sent_batches a diff chunks its targets by, the most frequent first.
_BATCH_SIZES = 2
# A diff looks the rows of the targets outside those batches up when the batches held more than _LOOKUP_SHARE times as
# many targets: a looked up row costs about as much as three of the key's rows read as a stream (SQLite).
_LOOKUP_SHARE = 3


def service_scope(api_url):
    """The ledger's identity of the service: the API URL in one spelling (scheme and host in lower case, no
    default port, no trailing slash), so another spelling of the same URL finds the same record."""
    parts = urlsplit(api_url.strip())
    scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    netloc = "[%s]" % host if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += ":%d" % port
    return "%s://%s%s" % (scheme, netloc, parts.path.rstrip("/"))


def iso_time(at):
    """A ledger time (seconds since the epoch) as results show it: ISO 8601, UTC, to the second."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def account_scope(api_url, account):
    """The identity of one account of the service (callbacks are started per account)."""
    return "%s|%s" % (service_scope(api_url), account)


def _on_conflict(mode):
    """The claim's ON CONFLICT clause for ``mode``: take over the stored states RESENDS names. A live run's
    claim is pending too; UNCONFIRMED leaves it alone because ``claim`` drops busy targets first."""
    stored = [state for state in RESENDS[mode] if state != IN_FLIGHT]
    if not stored:
        return "ON CONFLICT DO NOTHING"
    return ("ON CONFLICT (key_id, target) DO UPDATE SET state = 'pending', request_id = NULL, claim = excluded.claim, "
            "updated_at = excluded.updated_at WHERE sends.state IN (%s)" % ", ".join("'%s'" % state for state in stored))


def _open_store(location, read_only):
    """The store of ``location``: a path is an SQLite file, anything else a ``_store_postgresql.Database``."""
    if isinstance(location, str):
        return SqliteStore(os.path.expanduser(location), read_only, _migrate_from_1)
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import PostgresqlStore

    return PostgresqlStore(location, read_only)


class Ledger:
    """The ledger at ``location``: the path of an SQLite file, or a ``_store_postgresql.Database`` (URL, password,
    schema). ``read_only`` (check mode) neither creates nor changes it. SQL is written with ``?`` placeholders."""

    def __init__(self, location, read_only=False):
        self.location = location
        self._read_only = read_only
        self._store = _open_store(location, read_only)
        # Read-only: key id -> {target: request id} that resolve_unconfirmed would settle, applied to what is read.
        self._settled = {}
        # Claim id -> [key id, its targets, whether they are the batch whole] of the claims of this Ledger not settled or
        # released yet: their rows are found by key and target (_claimed), and a batch sent whole is recorded as its digest.
        self._claims = {}

    @property
    def exists(self):
        """False when a read-only open found no ledger (no file, or no schema in the database): nothing was ever
        recorded there, and a read must not answer as if it knew."""
        return self._store.exists

    @property
    def where(self):
        """The ledger as messages name it: the file, or the database without its password."""
        return self._store.where

    def close(self):
        self._store.close()

    @property
    def store(self):
        """The store the ledger is in, for the records that share it (deliveries.py)."""
        return self._store

    def states(self, scope, key):
        """target → state of everything recorded under ``key`` (pending rows of live runs as IN_FLIGHT)."""
        return {target: state for target, (state, _request_id) in self.sends(scope, key).items()}

    def sends(self, scope, key):
        """target → (state, request id) of everything recorded under ``key`` (pending rows of live runs as IN_FLIGHT)."""
        return {target: (state, request_id) for target, (state, request_id, _at) in self.send_rows(scope, key).items()}

    def send_rows(self, scope, key, targets=None):
        """target → (state, request id, time of its record: the claim time while pending or unknown, the settle time once
        sent) of everything recorded under ``key`` (pending rows of live runs as IN_FLIGHT), in one read; with ``targets``,
        of those only (read by their keys, so the cost is theirs, not the key's)."""
        key_id = self._key_id(scope, key)
        if key_id is None:
            return {}
        select = "SELECT target, state, request_id, claim, updated_at FROM sends WHERE key_id = ?"
        if targets is None:
            rows = self._store.rows(select, (key_id,))
        else:
            rows = []
            for among, values in self._store.among(sorted(targets)):
                rows.extend(self._store.rows(select + " AND target " + among, (key_id, *values)))
        live = self._store.live({claim for _target, state, _request_id, claim, _at in rows if state == PENDING})
        found = {target: (IN_FLIGHT if claim in live else state, request_id, at) for target, state, request_id, claim, at in rows}
        found.update((target, (SENT, request_id, found[target][2])) for target, request_id in self._settled.get(key_id, {}).items() if target in found)
        return found

    def other_scopes(self, scope, key):
        """other scope → how many targets it records under ``key``: the same key under another API URL, which is
        another service or another spelling of this one (``localhost`` and ``127.0.0.1``); the ledger keeps them apart."""
        rows = self._store.rows("SELECT k.scope, count(s.target) FROM send_keys k LEFT JOIN sends s ON s.key_id = k.id "
                                "WHERE k.key = ? AND k.scope <> ? GROUP BY k.scope ORDER BY k.scope", (key, scope))
        return dict(rows)

    def unknown_request_ids(self, request_ids):
        """The ``request_ids`` the ledger has never seen: no send recorded with them, and no callback naming them."""
        unknown = []
        for request_id in dict.fromkeys(request_ids):
            if not (self._store.rows("SELECT 1 FROM sends WHERE request_id = ? LIMIT 1", (request_id,))
                    or self._store.rows("SELECT 1 FROM callbacks WHERE request_id = ? LIMIT 1", (request_id,))):
                unknown.append(request_id)
        return unknown

    def duplicates(self, scope, key, message, targets, since):
        """The targets of ``targets`` recorded under other keys of ``scope`` for the same ``message`` (its SHA-256, as
        the purpose records it) at ``since`` (a time) or later, but those ThingSpace refused: [(other key, targets, latest time)], the
        latest first."""
        wanted, found = set(targets), []
        for key_id, other, recorded in self._store.rows("SELECT id, key, purpose FROM send_keys WHERE scope = ? AND key <> ?", (scope, key)):
            if not recorded or json.loads(recorded).get("message") != message:
                continue
            rows = [(target, at) for target, at in self._store.rows("SELECT target, updated_at FROM sends WHERE key_id = ? AND updated_at >= ? "
                                                                    "AND state <> ?", (key_id, since, REFUSED)) if target in wanted]
            if rows:
                found.append((other, [target for target, _at in rows], max(at for _target, at in rows)))
        return sorted(found, key=lambda entry: -entry[2])

    def resolve_unconfirmed(self, scope, key):
        """Settle ``sent`` the unconfirmed targets under ``key`` (``unknown``, or ``pending`` of a run that died) that the
        callbacks recorded in the ledger explain; {target: request id}. A target is explained by a callback that proves
        ThingSpace processed a request for its device (``_PROOF_TYPES``), received at its claim time or later, whose
        request id the ledger does not know, when no other request id does the same and the device has no other open
        claim (pending or unknown, under any key) that the callback could answer. Read-only, nothing is written: what
        would be settled is applied to what this Ledger reads (``sends``). Otherwise the reads and the writes are one
        transaction, and a row a concurrent run claimed meanwhile is left as it is."""
        key_id = self._key_id(scope, key)
        if key_id is None or not self._store.rows("SELECT 1 FROM sends WHERE key_id = ? AND state IN ('pending', 'unknown') LIMIT 1", (key_id,)):
            return {}
        if self._read_only:
            self._settled[key_id] = {target: found[0] for target, found in self._explained(key_id).items()}
            return dict(self._settled[key_id])
        with self._store.transaction():
            explained = self._explained(key_id)
            for target, (request_id, state, claim, claimed_at) in list(explained.items()):
                if not self._store.execute("UPDATE sends SET state = 'sent', request_id = ?, claim = NULL, updated_at = ? WHERE key_id = ? "
                                           "AND target = ? AND state = ? AND coalesce(claim, '') = ? AND updated_at = ?",
                                           (request_id, time.time(), key_id, target, state, claim or "", claimed_at)):
                    del explained[target]
        return {target: found[0] for target, found in explained.items()}

    def _explained(self, key_id):
        """resolve_unconfirmed's reading: target → (request id, and the row as read: state, claim, claim time)."""
        rows = self._store.rows("SELECT target, state, claim, updated_at FROM sends WHERE key_id = ? AND state IN ('pending', 'unknown')", (key_id,))
        live = self._store.live({claim for _target, state, claim, _at in rows if state == PENDING})
        rows = [row for row in rows if row[2] not in live]
        if not rows:
            return {}
        # Callbacks first: a claim whose request a callback answers was committed before that callback was recorded,
        # so the open claims read next include it.
        proofs = self._store.rows("SELECT request_id, event, received_at FROM callbacks WHERE type IN (%s) AND received_at >= ?"
                                  % ", ".join("'%s'" % kind for kind in _PROOF_TYPES), (min(row[3] for row in rows),))
        known = {row[0] for row in self._store.rows("SELECT DISTINCT request_id FROM sends WHERE request_id IS NOT NULL")}
        wanted = {row[0] for row in rows}
        seen = {}  # target -> {request id: first received}
        for request_id, event, received_at in proofs:
            if request_id in known:
                continue
            for device in json.loads(event).get("devices", ()):
                target = "%s:%s" % (device["kind"], device["id"])
                if target in wanted:
                    times = seen.setdefault(target, {})
                    times[request_id] = min(received_at, times.get(request_id, received_at))
        if not seen:
            return {}
        open_claims = Counter(row[0] for row in self._store.rows("SELECT target FROM sends WHERE state IN ('pending', 'unknown')") if row[0] in seen)
        explained = {}
        for target, state, claim, claimed_at in rows:
            candidates = [request_id for request_id, at in seen.get(target, {}).items() if at >= claimed_at]
            if len(candidates) == 1 and open_claims[target] == 1:
                explained[target] = (candidates[0], state, claim, claimed_at)
        return explained

    def device_records(self, targets, since=None, until=None):
        """Every send recorded for ``targets`` (ledger targets), in every scope, between ``since`` and ``until`` (times,
        None: unbounded): (scope, key, target, state, request id, time) rows, oldest first; pending rows of live runs as
        IN_FLIGHT."""
        bounds = (0 if since is None else since, _NEVER if until is None else until)
        found = []
        for target in dict.fromkeys(targets):
            found.extend(self._store.rows("SELECT k.scope, k.key, s.target, s.state, s.request_id, s.updated_at, s.claim FROM sends s JOIN send_keys k "
                                          "ON k.id = s.key_id WHERE s.target = ? AND s.updated_at BETWEEN ? AND ?", (target, *bounds)))
        live = self._store.live({row[6] for row in found if row[3] == PENDING})
        return sorted(((scope, key, target, IN_FLIGHT if claim in live else state, request_id, at)
                       for scope, key, target, state, request_id, at, claim in found), key=lambda row: (row[5], row[0], row[1], row[2]))

    def check_purpose(self, scope, key, purpose, mode=NEW, same=None):
        """Refuse a key recorded for another ``purpose`` (a dict: message, encoding, selection, tracking) unless
        ``mode`` is ALL: its targets got another message, so this one would be skipped for them. Only the fields
        recorded are compared (a migrated ledger knows some); ``same(field, recorded, given)`` says whether two values
        of a field are the same use (default: equal)."""
        recorded = self._purpose(scope, key)
        if mode == ALL or recorded is None:
            return
        differences = []
        for field in sorted(recorded):
            before, after = recorded[field], purpose.get(field)
            if not (same(field, before, after) if same else before == after):
                shown = "another text" if field == "message" else "was %s, now %s" % (json.dumps(before, sort_keys=True), json.dumps(after, sort_keys=True))
                differences.append("%s: %s" % (field, shown))
        if differences:
            raise ThingSpaceError(
                "idempotency_key %r was used for another send (%s); nothing was sent. Use a new idempotency_key for this send, "
                "or force: true to send it under this key to every target again" % (key, "; ".join(differences))
            )

    def diff(self, scope, key, targets, mode=NEW):
        """What a run of ``mode`` sends of ``targets`` under ``key``. Targets in a batch recorded as sent whole are sent
        (_unbatched); the rows of the others are looked up when they are few beside those, else the key's rows are read
        as a stream and what is kept of them is what is not ``sent``: beside the targets themselves (a set), nothing
        grows with a key of a million rows."""
        key_id = self._key_id(scope, key)
        if key_id is None:
            return Diff(list(targets), [], [], [])
        resent = SENT in RESENDS[mode]
        batched = 0
        if not resent:
            targets, batched = self._unbatched(key_id, targets)
            if not targets:
                return Diff([], [], [], [])
        left, states, pending = set(targets), {}, {}
        if batched > _LOOKUP_SHARE * len(targets):
            rows = self._rows_of(key_id, targets)
            left.difference_update(row[0] for row in rows if row[1] == SENT)
            rows = [row for row in rows if row[1] != SENT]
        else:
            if not resent:  # the sent rows, most of a re-run's, only leave the targets to send: one string each, taken out in C
                left.difference_update(row[0] for row in self._store.stream("SELECT target FROM sends WHERE key_id = ? AND state = 'sent'", (key_id,)))
            rows = self._store.stream("SELECT target, state, claim FROM sends WHERE key_id = ? AND state <> 'sent'", (key_id,))
        for target, state, claim in rows:
            if target not in left:
                continue
            if state == PENDING:
                pending[target] = claim
            else:
                states[target] = state
        live = self._store.live(set(pending.values()))
        states.update((target, IN_FLIGHT if claim in live else PENDING) for target, claim in pending.items())
        for target in self._settled.get(key_id, ()):
            states.pop(target, None)
            if not resent:
                left.discard(target)
        left.difference_update(target for target, state in states.items() if state not in RESENDS[mode])
        to_send, unconfirmed, in_flight, refused = [], [], [], []
        for target in targets:
            state = states.get(target)
            if state in (PENDING, UNKNOWN):
                unconfirmed.append(target)
            elif state == IN_FLIGHT:
                in_flight.append(target)
            elif state == REFUSED:
                refused.append(target)
            if target in left:
                to_send.append(target)
        return Diff(to_send, unconfirmed, in_flight, refused)

    def claim(self, scope, key, targets, mode=NEW, purpose=None):
        """Mark ``targets`` pending in one transaction and hold the claim's lock; return (claim id, the targets
        this call claimed).

        ``mode`` says which already recorded targets are taken over: NEW none (a row means sent, unconfirmed
        or in flight), UNCONFIRMED those neither sent nor in flight, ALL every one (force). ``purpose`` is
        recorded for the key when it has none yet or only part of one, and replaced by ALL."""
        claim_id = self._store.hold()
        now = time.time()
        with self._store.transaction():
            # Locked until the end of the transaction: claims of one key follow each other.
            key_id = self._key_id(scope, key, create=True)
            recorded = self._purpose(scope, key)
            if purpose is not None and (recorded is None or mode == ALL or set(recorded) < set(purpose)):
                self._store.execute("UPDATE send_keys SET purpose = ? WHERE id = ?", (json.dumps(purpose, sort_keys=True), key_id))
            if PENDING in RESENDS[mode] and IN_FLIGHT not in RESENDS[mode]:
                # Pending rows of live runs are in flight, not unconfirmed: leave them to their run.
                pending = self._store.rows("SELECT target, claim FROM sends WHERE key_id = ? AND state = 'pending'", (key_id,))
                live = self._store.live({claim for _target, claim in pending} - {claim_id})
                busy = {target for target, claim in pending if claim in live}
                targets = [target for target in targets if target not in busy]
            written = self._store.insert_pending(key_id, targets, claim_id, now, _on_conflict(mode))
            if SENT in RESENDS[mode]:
                # After the rows: a batch settled meanwhile on PostgreSQL has committed its digest, or finds its rows taken.
                self._store.execute("DELETE FROM sent_batches WHERE key_id = ?", (key_id,))
            # Every target written (inserted, or taken over): all are this claim's, without reading them back.
            rows = None if written == len(targets) else self._rows_of(key_id, targets)
        if rows is not None:
            claimed = {target for target, _state, claim in rows if claim == claim_id}
            targets = [target for target in targets if target in claimed]
        if not targets:
            self._store.unhold(claim_id)
        else:
            self._claims[claim_id] = [key_id, list(targets), True]
        return claim_id, list(targets)

    def _key_id(self, scope, key, create=False):
        """The number of (scope, key); None when not recorded (or no ledger yet) unless ``create``, which also
        locks the key's row until the end of the transaction."""
        select = "SELECT id FROM send_keys WHERE scope = ? AND key = ?" + (self._store.FOR_UPDATE if create else "")
        rows = self._store.rows(select, (scope, key))
        if not rows and create:
            self._store.execute("INSERT INTO send_keys (scope, key) VALUES (?, ?) ON CONFLICT (scope, key) DO NOTHING", (scope, key))
            rows = self._store.rows(select, (scope, key))
        return rows[0][0] if rows else None

    def stored_key(self, scope, key):
        """The id ``key``'s rows are stored under (``sends.key_id``), for a reader that joins them with its own table
        (deliveries.py); None when nothing is recorded under it, or when this read-only Ledger applies to what it reads
        rows ``resolve_unconfirmed`` would settle, which the stored rows lack."""
        key_id = self._key_id(scope, key)
        return None if key_id is None or self._settled.get(key_id) else key_id

    def knows(self, scope, key):
        """Whether anything was recorded under ``key``."""
        return self._key_id(scope, key) is not None

    def _purpose(self, scope, key):
        rows = self._store.rows("SELECT purpose FROM send_keys WHERE scope = ? AND key = ?", (scope, key))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def settle(self, claim_id, state, request_id=None):
        """Record the outcome (``sent`` or ``unknown``) of a claimed batch. An unknown row keeps its claim time, which
        resolve_unconfirmed compares with the callbacks'. A batch of this Ledger's claim sent whole, none of its rows taken
        over meanwhile (force), is recorded as its digest too."""
        with self._store.transaction():
            if state == UNKNOWN:
                self._claimed(claim_id, "UPDATE sends SET state = ?, request_id = NULL, claim = NULL", (state,))
            else:
                written = self._claimed(claim_id, "UPDATE sends SET state = ?, request_id = ?, claim = NULL, updated_at = ?", (state, request_id, time.time()))
                key_id, targets, whole = self._claims[claim_id]
                if whole and written == len(targets):
                    self._store.execute("INSERT INTO sent_batches (key_id, digest, devices) VALUES (?, ?, ?) ON CONFLICT (key_id, digest) DO NOTHING",
                                        (key_id, _digest(targets), len(targets)))
        del self._claims[claim_id]
        self._store.unhold(claim_id)

    def _claimed(self, claim_id, change, args):
        """Apply ``change`` (an UPDATE or a DELETE, without its WHERE) to the rows of ``claim_id``, a claim of this Ledger,
        found by key and target (``store.among``: no index of the claim column to keep up at every claim and settle); the
        number of rows changed."""
        key_id, targets, _whole = self._claims[claim_id]
        return sum(self._store.execute(change + " WHERE key_id = ? AND target %s AND claim = ?" % among, (*args, key_id, *values, claim_id))
                   for among, values in self._store.among(targets))

    def _unbatched(self, key_id, targets):
        """(``targets`` but those of a batch recorded as sent whole, how many were): the targets chunked by each of the
        _BATCH_SIZES batch sizes recorded most often under the key (a first run's batches, and the last one shorter), each
        chunk's digest looked up among the key's. A few rows are read, and the targets hashed once per size."""
        rows = self._store.rows("SELECT digest, devices FROM sent_batches WHERE key_id = ?", (key_id,))
        if not rows:
            return targets, 0
        digests = {digest for digest, _devices in rows}
        spans = []
        for size, _count in Counter(devices for _digest, devices in rows).most_common(_BATCH_SIZES):
            spans.extend((start, start + size) for start in range(0, len(targets), size) if _digest(targets[start:start + size]) in digests)
        rest, at = [], 0
        for start, end in sorted(spans):
            rest.extend(targets[at:start])
            at = max(at, end)
        rest.extend(targets[at:])
        return rest, len(targets) - len(rest)

    def _rows_of(self, key_id, targets):
        """The (target, state, claim) rows of ``targets`` under the key, looked up by key and target (``store.among``)."""
        found = []
        for among, values in self._store.among(targets):
            found.extend(self._store.rows("SELECT target, state, claim FROM sends WHERE key_id = ? AND target %s" % among, (key_id, *values)))
        return found

    def refuse(self, claim_id, targets):
        """Record ``targets`` of a claimed batch as refused by the service; the rest of the batch stays claimed (and is
        not recorded as a batch: a re-run's chunk holds the refused targets too)."""
        now = time.time()
        claim = self._claims[claim_id]
        with self._store.transaction():
            self._store.executemany("UPDATE sends SET state = ?, claim = NULL, updated_at = ? WHERE key_id = ? AND target = ? AND claim = ?",
                                    [(REFUSED, now, claim[0], target, claim_id) for target in targets])
        refused = set(targets)
        claim[1:] = [t for t in claim[1] if t not in refused], False

    def release(self, claim_id):
        """Forget a claimed batch that certainly was not sent, so a later run sends it."""
        with self._store.transaction():
            self._claimed(claim_id, "DELETE FROM sends", ())
        del self._claims[claim_id]
        self._store.unhold(claim_id)

    def record_start(self, scope):
        """Remember that callbacks were started for ``scope``; True the first time."""
        with self._store.transaction():
            added = self._store.execute("INSERT INTO starts (scope, started_at) VALUES (?, ?) ON CONFLICT (scope) DO NOTHING", (scope, time.time()))
        return added == 1

    def has_started(self, scope):
        return bool(self._store.rows("SELECT 1 FROM starts WHERE scope = ?", (scope,)))

    def records(self):
        """Every send recorded, as (scope, key, target, state, request id, claim) rows: what reports and copies
        of the ledger read."""
        return self._store.rows("SELECT k.scope, k.key, s.target, s.state, s.request_id, s.claim FROM sends s JOIN send_keys k ON k.id = s.key_id")

    def starts(self):
        """Every callbacks start recorded, as (scope, started at) rows."""
        return self._store.rows("SELECT scope, started_at FROM starts")

    def copy_from(self, source, check_mode=False):
        """Copy every record of the Ledger ``source`` into this one (or, in check mode, count what would be copied):
        each key with its purpose, each send with its state, request id, claim and time, each callbacks start.

        What this ledger already holds is kept; a key whose purpose here differs from the source's refuses the whole
        copy, as does a batch the source has in flight. The source is read in one transaction, so no run writes to
        it meanwhile. Returns the counts: keys, sends, starts read; sends_copied, starts_copied."""
        with source._store.transaction():
            keys = source._store.rows("SELECT id, scope, key, purpose FROM send_keys ORDER BY id")
            sends = source._store.rows("SELECT key_id, target, state, request_id, claim, updated_at FROM sends")
            starts = source.starts()
            in_flight = source._store.live({row[4] for row in sends if row[2] == PENDING})
        if in_flight:
            raise ThingSpaceError("The ledger %s has a batch in flight (a run is sending it); nothing was copied. Copy it when no run is sending"
                                  % source.where)
        by_key = {}
        for row in sends:
            by_key.setdefault(row[0], []).append(row[1:])
        plan, conflicts = [], []
        for key_id, scope, key, purpose in keys:
            recorded, wanted = self._purpose(scope, key), json.loads(purpose) if purpose else None
            common = set(recorded or ()) & set(wanted or ())
            if any(recorded[field] != wanted[field] for field in common):
                conflicts.append(key)
                continue
            merged = dict(recorded or {}, **(wanted or {})) or None
            present = set(self.states(scope, key))
            plan.append((scope, key, merged if merged != recorded else None, [row for row in by_key.get(key_id, []) if row[0] not in present]))
        if conflicts:
            raise ThingSpaceError("The idempotency keys %s were used for other sends in %s than in %s; nothing was copied. Copy into another "
                                  "ledger_schema, or resolve them by hand" % (", ".join(repr(key) for key in conflicts), self.where, source.where))
        counts = {"idempotency_keys": len(keys), "sends": len(sends), "starts": len(starts),
                  "sends_copied": sum(len(rows) for _scope, _key, _purpose, rows in plan),
                  "starts_copied": sum(not self.has_started(scope) for scope, _started_at in starts)}
        if check_mode:
            return counts
        with self._store.transaction():
            copied = 0
            for scope, key, purpose, rows in plan:
                key_id = self._key_id(scope, key, create=True)
                if purpose is not None:
                    self._store.execute("UPDATE send_keys SET purpose = ? WHERE id = ?", (json.dumps(purpose, sort_keys=True), key_id))
                copied += self._store.executemany("INSERT INTO sends (key_id, target, state, request_id, claim, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                                                  "ON CONFLICT (key_id, target) DO NOTHING", [(key_id, *row) for row in rows])
            started = self._store.executemany("INSERT INTO starts (scope, started_at) VALUES (?, ?) ON CONFLICT (scope) DO NOTHING", starts)
        return dict(counts, sends_copied=copied, starts_copied=started)


def _digest(targets):
    """A batch's targets in their order, as sent_batches records them (targets hold no line feed)."""
    return hashlib.sha256("\n".join(targets).encode("utf-8")).hexdigest()


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
