"""The store's schema, oldest migration first, and applying the ones a database lacks (sqlite-utils' Migrations)."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database


def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE experiments (
            id INTEGER PRIMARY KEY, provider TEXT NOT NULL, remote_id TEXT NOT NULL, name TEXT NOT NULL,
            channel TEXT NOT NULL, card_ts TEXT, created_by TEXT NOT NULL, snapshot TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (provider, remote_id));
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id),
            change TEXT NOT NULL, before TEXT NOT NULL, plan TEXT NOT NULL, requested_by TEXT NOT NULL,
            required INTEGER NOT NULL, status TEXT NOT NULL, channel TEXT NOT NULL, message_ts TEXT,
            created_at TEXT NOT NULL, expires_at TEXT NOT NULL, decided_by TEXT, outcome TEXT);
        CREATE INDEX requests_status ON requests (status);
        CREATE TABLE approvals (
            request_id INTEGER NOT NULL REFERENCES requests(id), user TEXT NOT NULL, at TEXT NOT NULL,
            PRIMARY KEY (request_id, user));
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, experiment_id INTEGER,
            request_id INTEGER, action TEXT NOT NULL, detail TEXT NOT NULL);
        CREATE INDEX audit_experiment ON audit (experiment_id, id);
        CREATE TABLE sandbox_experiments (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
        """
    )


def m002_steps_leases(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE experiments ADD COLUMN read_at TEXT;
        ALTER TABLE experiments ADD COLUMN card_claim TEXT;
        CREATE TABLE leases (
            experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id), request_id INTEGER NOT NULL,
            owner TEXT NOT NULL, expires_at TEXT NOT NULL);
        CREATE TABLE steps (
            request_id INTEGER NOT NULL REFERENCES requests(id), idx INTEGER NOT NULL, status TEXT NOT NULL,
            step TEXT NOT NULL, sent_at TEXT NOT NULL, finished_at TEXT, http_status INTEGER, answer TEXT,
            error TEXT, PRIMARY KEY (request_id, idx));
        """
    )
    for row in list(db.query("SELECT id, plan FROM requests")):
        plan = json.loads(row["plan"])
        if isinstance(plan, list):  # version 1 stored a bare list of calls
            db.execute("UPDATE requests SET plan = ? WHERE id = ?", [json.dumps({"steps": plan}), row["id"]])


def m003_outbox(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, experiment_id INTEGER,
            request_id INTEGER, target TEXT, text TEXT, version INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, claimed_by TEXT, claim_until TEXT,
            last_error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE INDEX outbox_due ON outbox (status, next_at);
        """
    )


def m004_listing_columns(db: Database) -> None:
    """Status and exposure as columns, so `/experiment list` reads them without decoding every snapshot."""
    db.executescript(
        """
        ALTER TABLE experiments ADD COLUMN status TEXT;
        ALTER TABLE experiments ADD COLUMN exposure REAL;
        UPDATE experiments SET status = json_extract(snapshot, '$.status'),
            exposure = json_extract(snapshot, '$.exposure');
        CREATE INDEX experiments_listing ON experiments (provider, status);
        """
    )


MIGRATIONS = (m001_initial, m002_steps_leases, m003_outbox, m004_listing_columns)
"""The schema's history, oldest first, applied by sqlite-utils' Migrations as the set "expbot"."""


def _pending(conn: sqlite3.Connection) -> list[str]:
    done: set[str] = set()
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'").fetchone():
        done = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'expbot'")}
    return [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks (sqlite-utils' Migrations); returns their names.

    Processes starting together on one database (replicas, a new version rolling out) migrate one at a time: the
    write lock is taken first, and whoever gets it second finds nothing left to do. sqlite-utils is imported only
    when a migration is pending: it costs 2 MB of resident memory, and a database that is up to date (every start
    but the first of a version) never needs it or the lock.
    """
    if not _pending(conn):
        return []
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    conn.execute("BEGIN IMMEDIATE")
    try:
        pending = _pending(conn)
        migrations = Migrations("expbot")
        for fn in MIGRATIONS:
            migrations()(fn)
        # Each migration runs in a savepoint of this transaction. execute_plugins=False: whatever sqlite-utils
        # plugins happen to be installed stay off our connection, and start-up does not scan every package for them.
        migrations.apply(Database(conn, execute_plugins=False))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return pending
