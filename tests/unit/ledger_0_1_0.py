"""A ledger as version 0.1.0 wrote it (schema 1), for the tests of its migration: the scope was "api_url|account"
and identifiers were kept as given."""

from __future__ import annotations

import sqlite3

SCHEMA_1 = """
    CREATE TABLE send_keys (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (scope, key));
    CREATE TABLE sends (key_id INTEGER NOT NULL REFERENCES send_keys (id), target TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'unknown')), request_id TEXT, claim TEXT,
        updated_at REAL NOT NULL, PRIMARY KEY (key_id, target)) WITHOUT ROWID;
    CREATE TABLE starts (scope TEXT NOT NULL PRIMARY KEY, started_at REAL NOT NULL) WITHOUT ROWID;
    PRAGMA user_version = 1;
"""


def schema_1_ledger(path, keys, sends):
    """Write a schema 1 ledger at ``path`` (a pathlib.Path; its directory 0700 and the file 0600, as 0.1.0 made them)
    with ``keys`` as (id, scope, key) and ``sends`` as (key id, target, request id), each sent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    db = sqlite3.connect(str(path))
    db.executescript(SCHEMA_1)
    db.executemany("INSERT INTO send_keys VALUES (?, ?, ?)", keys)
    db.executemany("INSERT INTO sends VALUES (?, ?, 'sent', ?, NULL, 0)", sends)
    db.commit()
    db.close()
