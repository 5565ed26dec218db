# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal use only, not an API of the collection: the PostgreSQL store of the ledger, for ledgers that every
controller reaches (AWX and Automation Platform jobs, CI runners, several hosts).

ledger.py is the protocol; this file is what differs on PostgreSQL (docs/design.md, "The ledger store"):

- **Connection.** ``ledger_url`` is a libpq URL (its parameters such as ``sslmode`` go to libpq as they are); the
  password comes from the URL, ``ledger_password`` or libpq's own PGPASSWORD/PGPASSFILE. It never appears in a
  message: they name the database as ``user@host:port/dbname``, and any error text is cleaned of it.
- **Schema.** The tables live in one schema (``ledger_schema``, ``thingspace`` by default), the session's
  search_path, created on first use with the tables, versioned in ``schema_version`` and migrated forward in one
  transaction under an advisory lock, so that runs starting together create it once.
- **In flight.** A claim holds a session advisory lock, which the server releases when the session ends, however
  the run died. Its key is a random 64-bit number the claim must acquire itself (``pg_try_advisory_lock``), so a
  number in use, by this collection or anything else in the database, is drawn again; the claim id is
  ``<backend pid>:<key>``, and a claim is live only while that backend holds that key (``pg_locks``), so a later
  holder of the same number does not keep a dead claim alive.
- **Transactions.** Read committed; a claim locks its key's row (``FOR UPDATE``), so claims of one key follow
  each other as SQLite's single writer does, and claims of other keys run side by side.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections import namedtuple
from urllib.parse import unquote

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # module.py fails with missing_required_lib before a PostgreSQL ledger is opened
    psycopg = None

# Where a PostgreSQL ledger is: the libpq URL, the password (None: from the URL, PGPASSWORD or PGPASSFILE) and
# the schema of its tables.
Database = namedtuple("Database", "url password schema")

DEFAULT_SCHEMA = "thingspace"
SCHEMES = ("postgresql", "postgres")
SCHEMA_VERSION = 9
# The oldest schema read as it is in check mode: later versions only add tables (which read as empty until then)
# and states.
READABLE_FROM = 2
# What brings the schema to each version from the one before; a new ledger runs every step. Version 2 is the
# first: the tables of the SQLite schema 2; version 3 adds the callbacks and the delivery states (deliveries.py);
# version 4 the send state ``refused``; version 5 the campaigns (campaign.py); version 6 which recorder recorded a
# callback (``callbacks.recorded_by``); version 7 a campaign's devices counted per wave and state, the counts of the
# campaigns it holds made once; version 8 the digests of batches sent whole, and no index of the sends' claims
# (ledger.py finds a claim's rows by key and target); version 9 a campaign's devices keyed by position, not by target.
# Identifiers compare byte by byte (COLLATE "C") whatever the database's collation: the same order as SQLite's,
# and cheaper than a language's.
_STEPS = {
    2: (
        'CREATE TABLE send_keys (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, scope text COLLATE "C" NOT NULL, '
        'key text COLLATE "C" NOT NULL, purpose text, UNIQUE (scope, key))',
        'CREATE TABLE sends (key_id bigint NOT NULL REFERENCES send_keys (id), target text COLLATE "C" NOT NULL, '
        "state text NOT NULL CHECK (state IN ('pending', 'sent', 'unknown')), request_id text, claim text COLLATE \"C\", "
        "updated_at double precision NOT NULL, PRIMARY KEY (key_id, target))",
        "CREATE INDEX sends_claim ON sends (claim) WHERE claim IS NOT NULL",
        'CREATE TABLE starts (scope text COLLATE "C" PRIMARY KEY, started_at double precision NOT NULL)',
    ),
    3: (
        'CREATE TABLE callbacks (event_id text COLLATE "C" PRIMARY KEY, type text NOT NULL, account text, request_id text COLLATE "C", '
        "event text NOT NULL, received_at double precision NOT NULL, queued_at double precision)",
        "CREATE INDEX callbacks_complete ON callbacks (request_id) WHERE type = 'request_complete'",
        'CREATE TABLE deliveries (request_id text COLLATE "C" NOT NULL, device text COLLATE "C" NOT NULL, '
        "state text NOT NULL CHECK (state IN ('sent', 'Delivered', 'Undelivered', 'Expired', 'Rejected')), aliases text NOT NULL, "
        "updated_at double precision NOT NULL, PRIMARY KEY (request_id, device))",
    ),
    4: (
        "ALTER TABLE sends DROP CONSTRAINT sends_state_check, "
        "ADD CONSTRAINT sends_state_check CHECK (state IN ('pending', 'sent', 'unknown', 'refused'))",
    ),
    5: (
        'CREATE TABLE campaigns (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, scope text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, '
        "account text, definition text NOT NULL, policy text NOT NULL, devices_total integer NOT NULL, waves text NOT NULL, "
        "state text NOT NULL CHECK (state IN ('running', 'waiting', 'paused', 'completed', 'aborted')), wave integer NOT NULL, abort_reason text, "
        "next_send_at double precision NOT NULL, created_at double precision NOT NULL, updated_at double precision NOT NULL, UNIQUE (scope, name))",
        'CREATE TABLE campaign_devices (campaign_id bigint NOT NULL REFERENCES campaigns (id), target text COLLATE "C" NOT NULL, '
        "position integer NOT NULL, wave integer NOT NULL, state text NOT NULL CHECK (state IN ('pending', 'unconfirmed', 'sent', 'delivered', "
        "'replied', 'reply_error', 'undelivered', 'expired', 'rejected', 'timed_out', 'refused', 'skipped')), request_id text COLLATE \"C\", "
        "sent_at double precision, finished_at double precision, PRIMARY KEY (campaign_id, target), UNIQUE (campaign_id, position))",
        "CREATE INDEX campaign_devices_target ON campaign_devices (target)",
        # The replies a campaign step reads (device SMS since its first send), without reading every callback.
        "CREATE INDEX IF NOT EXISTS callbacks_device_sms ON callbacks (received_at) WHERE type = 'device_sms'",
    ),
    6: ('ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS recorded_by text COLLATE "C"',),
    7: (
        "CREATE TABLE campaign_counts (campaign_id bigint NOT NULL REFERENCES campaigns (id), wave integer NOT NULL, state text NOT NULL, "
        "devices integer NOT NULL, first_sent_at double precision, last_sent_at double precision, PRIMARY KEY (campaign_id, wave, state))",
        "INSERT INTO campaign_counts SELECT campaign_id, wave, state, count(*), min(sent_at), max(sent_at) FROM campaign_devices "
        "GROUP BY campaign_id, wave, state",
    ),
    # No foreign key to send_keys: its check would lock the key's row, which a claim holds FOR UPDATE while it waits for
    # the rows a settle recording its digest has changed (a deadlock).
    8: ('CREATE TABLE IF NOT EXISTS sent_batches (key_id bigint NOT NULL, digest text COLLATE "C" NOT NULL, devices integer NOT NULL, '
        "PRIMARY KEY (key_id, digest))",
        "DROP INDEX IF EXISTS sends_claim"),
    # A batch is a range of positions: keyed by them, its rows are one part of the key, and (written in position order, as
    # campaign._create inserts them) of the table. CLUSTER puts the rows of the campaigns already held in that order, once.
    9: ("ALTER TABLE campaign_devices DROP CONSTRAINT IF EXISTS campaign_devices_pkey, DROP CONSTRAINT IF EXISTS campaign_devices_campaign_id_position_key, "
        "ADD PRIMARY KEY (campaign_id, position)",
        "CLUSTER campaign_devices USING campaign_devices_pkey"),
}
# The advisory lock under which a schema is created or migrated (a fixed number of this collection).
_SCHEMA_LOCK = 0x7468696E67737063  # "thingspc"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT = 10
# Rows fetched at a time by ``stream``.
STREAM_ROWS = 10000
_MASK = "********"
_PRIVILEGE_HINT = ("; the role needs the schema and its tables, or the right to create them: see the guide \"Keep the ledger in "
                   "PostgreSQL\" for the SQL an administrator runs once")


def url_problem(url):
    """Why ``url`` is not a PostgreSQL ledger URL (None when it is one), without naming its password; checked at
    module start, before psycopg is needed."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        return "ledger_url: %s is not a PostgreSQL URL; write postgresql://user@host:5432/dbname (libpq parameters such as sslmode after ?)" % (
            "the scheme %r" % scheme if scheme else "the value")
    return None


def schema_problem(schema):
    if not _SCHEMA_NAME.match(schema or ""):
        return ("ledger_schema: %r is not a schema name thingspace.m2m uses; use lower-case letters, digits and _ (at most 63, not starting "
                "with a digit)" % schema)
    return None


def url_secrets(url, password=None):
    """The password of a ledger URL (as written and decoded, in its user part or its ``password`` parameter) and
    ``password``: what output must never show. Read by hand, not with urlsplit, which refuses some URLs that libpq
    then quotes whole in its error (an IPv6 address without its "]")."""
    found = {password}
    authority, _mark, query = url.partition("://")[2].partition("?")
    userinfo, at, _hosts = authority.split("/", 1)[0].rpartition("@")
    if at:
        found.add(userinfo.partition(":")[2])
    for piece in query.split("&"):
        name, _equals, value = piece.partition("=")
        if name == "password":
            found.add(value)
    found.discard(None)
    found.discard("")
    return {form for value in found for form in (value, unquote(value))}


# ``among``'s condition. A statement with it is planned for its values each time, never prepared: psycopg prepares a
# statement run 5 times, and PostgreSQL may then keep a generic plan, made for no values in particular, that scans the
# table because it was small then (a ledger's first callbacks), for as long as the session lasts.
_AMONG = "= ANY (?)"


def _prepare(sql):
    """psycopg's ``prepare`` for ``sql``: False (never) with ``among``'s condition, else its own choice."""
    return False if _AMONG in sql else None


def _where(params, schema):
    """``user@host:port/dbname (schema s)``: the database in messages, never with its password."""
    return "%s@%s:%s/%s (schema %s)" % (params.get("user") or "(default user)", params.get("host") or "(default host)",
                                        params.get("port") or "5432", params.get("dbname") or "(default database)", schema)


class PostgresqlStore:
    """One session with the ledger's database. ``read_only`` (check mode) creates nothing: a schema not made yet
    reads as an empty ledger."""

    NAME = "postgresql"
    # A claim locks its key's row: claims of one key follow each other.
    FOR_UPDATE = " FOR UPDATE"

    def __init__(self, database, read_only):
        problem = url_problem(database.url) or schema_problem(database.schema)
        if problem:
            raise ThingSpaceError(problem)
        self._secrets = url_secrets(database.url, database.password)
        self._schema = database.schema
        self._held = {}  # claim id -> advisory lock key, for the batches this session is sending
        self._db = None
        self._ready = True  # False: read-only, and the schema is not made yet
        self._older = False  # True: read-only, and the schema lacks the tables of later versions
        try:
            params = conninfo_to_dict(database.url)
        except psycopg.Error as exc:
            raise ThingSpaceError("ledger_url is not a URL libpq accepts: %s" % self._clean(exc))
        self.where = _where(params, database.schema)
        options = {"autocommit": True}
        if "application_name" not in params:
            options["application_name"] = "thingspace.m2m"
        if "connect_timeout" not in params:
            options["connect_timeout"] = CONNECT_TIMEOUT
        if database.password:
            options["password"] = database.password
        try:
            self._db = psycopg.connect(database.url, **options)
        except psycopg.Error as exc:
            raise ThingSpaceError("Cannot connect to the ledger database %s: %s; nothing was sent" % (self.where, self._clean(exc)))
        info = self._db.info
        self.where = _where({"user": info.user, "host": info.host, "port": info.port, "dbname": info.dbname}, database.schema)
        self._pid = info.backend_pid
        try:
            self._open(read_only)
        except ThingSpaceError:
            self.close()
            raise

    def _open(self, read_only):
        """Check the schema's version; create or migrate it unless ``read_only``."""
        self.rows("SELECT set_config('search_path', ?, false)", ('"%s"' % self._schema,))
        version = self._version()
        if version is not None and version > SCHEMA_VERSION:
            raise ThingSpaceError("The ledger database %s was written by a newer thingspace.m2m (schema %d); upgrade the collection" % (self.where, version))
        if read_only:
            if version is not None and version < READABLE_FROM:
                raise ThingSpaceError("The ledger database %s was written by an older thingspace.m2m (schema %d), and check mode does not change "
                                      "it; a run without check mode migrates it" % (self.where, version))
            self._ready = version is not None
            self._older = version is not None and version < SCHEMA_VERSION
        elif version != SCHEMA_VERSION:
            self._upgrade()

    @property
    def exists(self):
        """False when a read-only open found no ledger schema."""
        return self._ready

    def _version(self):
        """The schema version, None when the schema or its version table does not exist yet."""
        if self.rows("SELECT to_regclass(?)", ('"%s".schema_version' % self._schema,))[0][0] is None:
            return None
        return self.rows("SELECT version FROM schema_version")[0][0]

    def _upgrade(self):
        """Create the schema and its tables, or migrate them forward, in one transaction, once whoever else starts
        at the same time. The lock is taken before the transaction starts, so that the transaction sees what a
        run that held it before created (a transaction reads the catalog as it was when it began)."""
        self.rows("SELECT pg_advisory_lock(?)", (_SCHEMA_LOCK,))
        try:
            with self.transaction():
                version = self._version()  # again, under the lock: another run may have done it meanwhile
                if version is None:
                    if not self.rows("SELECT 1 FROM pg_namespace WHERE nspname = ?", (self._schema,)):
                        self.execute('CREATE SCHEMA "%s"' % self._schema)
                    self.execute("CREATE TABLE schema_version (version integer NOT NULL)")
                    self.execute("INSERT INTO schema_version VALUES (0)")
                    version = 0
                for step in sorted(_STEPS):
                    if step > version:
                        for statement in _STEPS[step]:
                            self.execute(statement)
                self.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        finally:
            with contextlib.suppress(ThingSpaceError):
                self.rows("SELECT pg_advisory_unlock(?)", (_SCHEMA_LOCK,))

    def _clean(self, exc):
        """The text of a psycopg error on one line, without the password in any spelling."""
        text = " ".join(str(exc).split())
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _MASK)
        return text

    def _error(self, exc):
        hint = _PRIVILEGE_HINT if isinstance(exc, psycopg.errors.InsufficientPrivilege) else ""
        return ThingSpaceError("The ledger database %s: %s%s" % (self.where, self._clean(exc), hint))

    def close(self):
        """End the session. Its claim locks are released first, so that they are free when this returns; the
        server releases them anyway when a session ends, only a moment later."""
        if self._db is not None:
            if self._held and not self._db.broken:
                with contextlib.suppress(ThingSpaceError):
                    self.rows("SELECT pg_advisory_unlock_all()")
            self._held.clear()
            self._db.close()
            self._db = None

    def _execute(self, sql, args):
        try:
            return self._db.execute(sql.replace("?", "%s"), args, prepare=_prepare(sql))
        except psycopg.Error as exc:
            raise self._error(exc)

    def rows(self, sql, args=()):
        """The rows of a query; a ledger not created yet, or a table a later version adds (read-only), reads as empty."""
        if self._db is None or not self._ready:
            return []
        if self._older:
            try:
                return self._db.execute(sql.replace("?", "%s"), args, prepare=_prepare(sql)).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
            except psycopg.Error as exc:
                raise self._error(exc)
        return self._execute(sql, args).fetchall()

    def stream(self, sql, args=()):
        """The rows of a read one by one, as ``rows`` reads them, through a server-side cursor (in a transaction of its
        own) fetching STREAM_ROWS at a time: a client-side cursor would hold every row of the answer in libpq."""
        if self._db is None or not self._ready:
            return
        try:
            with self._db.transaction(), self._db.cursor(name="thingspace_stream") as cursor:
                cursor.itersize = STREAM_ROWS
                cursor.execute(sql.replace("?", "%s"), args)
                yield from cursor
        except psycopg.errors.UndefinedTable as exc:
            if not self._older:
                raise self._error(exc)
        except psycopg.Error as exc:
            raise self._error(exc)

    def execute(self, sql, args=()):
        """Run a write; the number of rows it changed."""
        return self._execute(sql, args).rowcount

    def executemany(self, sql, rows):
        cursor = self._db.cursor()
        try:
            cursor.executemany(sql.replace("?", "%s"), list(rows))
        except psycopg.Error as exc:
            raise self._error(exc)
        return cursor.rowcount

    def insert_pending(self, key_id, targets, claim_id, now, on_conflict):
        """Write ``targets`` pending for ``claim_id`` in one statement; ``on_conflict`` says which recorded rows are
        taken over. Each target goes in once: one statement may not update a row twice. The number of rows written."""
        return self._execute("INSERT INTO sends (key_id, target, state, claim, updated_at) SELECT ?, target, 'pending', ?, ? "
                             "FROM unnest(?::text[]) AS t (target) " + on_conflict, (key_id, claim_id, now, list(dict.fromkeys(targets)))).rowcount

    def insert_devices(self, campaign_id, devices):
        """Write a new campaign's ``devices`` ((target, position, wave), in position order) pending, in one statement (its
        arrays in binary)."""
        if devices:
            try:
                self._db.cursor(binary=True).execute(
                    "INSERT INTO campaign_devices (campaign_id, target, position, wave, state) SELECT %b, target, position, wave, 'pending' "
                    "FROM unnest(%b::text[], %b::integer[], %b::integer[]) AS d (target, position, wave)",
                    [campaign_id, *(list(column) for column in zip(*devices))])
            except psycopg.Error as exc:
                raise self._error(exc)

    def among(self, values):
        """A condition that a column is one of ``values``, as (SQL after the column, its parameters): ``= ANY (?)`` of one
        array, one statement whatever the count, never prepared (``_prepare``); none for no values, as on SQLite."""
        if values:
            yield _AMONG, [list(values)]

    def insert_callbacks(self, rows):
        """Insert the callbacks ``rows`` (event_id, type, account, request_id, event, received_at, recorded_by) that are
        not recorded yet, in one statement (its arrays in binary: nothing to quote)."""
        if rows:
            try:
                self._db.cursor(binary=True).execute(
                    "INSERT INTO callbacks (event_id, type, account, request_id, event, received_at, recorded_by) "
                    "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::double precision[], %b::text[]) "
                    "ON CONFLICT (event_id) DO NOTHING", [list(column) for column in zip(*rows)])
            except psycopg.Error as exc:
                raise self._error(exc)

    def rows_after(self, sql, args=()):
        """Run a query whose rows are read after the ``pipelined_transaction`` it is in: a function that returns them."""
        cursor = self._execute(sql, args)

        def fetch():
            try:
                return cursor.fetchall()
            except psycopg.Error as exc:
                raise self._error(exc)

        return fetch

    @contextlib.contextmanager
    def pipelined_transaction(self):
        """A transaction in one round trip: its statements go in one pipeline without waiting for their answers, and
        PostgreSQL runs the statements before a pipeline's Sync as one implicit transaction, committed at the Sync (rolled
        back at the first error). Nothing inside may wait for an answer (a fetch would send a Sync, ending the
        transaction there): read with ``rows_after``."""
        try:
            with self._db.pipeline():
                yield
        except psycopg.Error as exc:
            raise self._error(exc)

    @contextlib.contextmanager
    def transaction(self):
        try:
            with self._db.transaction():
                yield
        except psycopg.Error as exc:
            raise self._error(exc)

    def hold(self):
        """A new claim id, its advisory lock held by this session until ``unhold`` or the end of the session."""
        while True:
            key = secrets.randbits(64) - (1 << 63)
            claim_id = "%d:%d" % (self._pid, key)
            if claim_id not in self._held and self.rows("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
                self._held[claim_id] = key
                return claim_id

    def unhold(self, claim_id):
        self.rows("SELECT pg_advisory_unlock(?)", (self._held.pop(claim_id),))

    def live(self, claim_ids):
        """The claims among ``claim_ids`` whose backend still holds their advisory lock. A claim id of another form
        (copied from an SQLite ledger) belongs to a run that is gone."""
        live, wanted = set(), {}
        for claim_id in claim_ids:
            if claim_id in self._held:
                live.add(claim_id)
                continue
            pid, _colon, key = (claim_id or "").partition(":")
            if pid.isdigit() and key.lstrip("-").isdigit():
                wanted[claim_id] = (int(pid), int(key))
        if wanted:
            held = set()
            for pid, high, low in self.rows("SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
                                            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"):
                key = (high << 32) | low
                held.add((pid, key - (1 << 64) if key >= 1 << 63 else key))
            live.update(claim_id for claim_id, lock in wanted.items() if lock in held)
        return live
