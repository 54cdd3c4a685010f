"""SQLite storage: the only module that touches SQL. Writes run off the event loop, one at a time."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from bot.models import (
    STATEFUL,
    Approval,
    AuditEvent,
    ChangeRequest,
    Experiment,
    ExperimentSummary,
    JournalEntry,
    OutboxItem,
    OutboxRow,
    OutboxStats,
    RequestStatus,
)
from providers.models import Change, Snapshot
from providers.plan import Answer, Plan, Step

if TYPE_CHECKING:
    from sqlite_utils import Database

P = ParamSpec("P")
R = TypeVar("R")


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


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks (sqlite-utils' Migrations); returns their names.

    sqlite-utils is imported only when a migration is pending: it costs 2 MB of resident memory, and a database
    that is up to date (every start but the first of a version) never needs it.
    """
    done: set[str] = set()
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'").fetchone():
        done = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'expbot'")}
    pending = [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]
    if pending:
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations

        migrations = Migrations("expbot")
        for fn in MIGRATIONS:
            migrations()(fn)
        # execute_plugins=False: whatever sqlite-utils plugins happen to be installed stay off our connection, and
        # start-up does not scan every installed package for them.
        migrations.apply(Database(conn, execute_plugins=False))
    return pending


class Db:
    """One connection in autocommit mode: each statement commits on its own unless it runs inside `atomic()`."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout_ms / 1000, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self.conn.execute("PRAGMA foreign_keys = ON")

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, tuple(args))

    def query(self, sql: str, args: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        """The rows as dicts, read as they are iterated."""
        cur = self.conn.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return (dict(zip(names, row, strict=True)) for row in cur)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction: the write lock is taken at once (waiting out other processes' writes within
        the busy timeout), committed at the end, rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def now() -> datetime:
    return datetime.now(UTC)


def _writes(fn: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, R]]:
    """Run a write on the store's writer thread, so a lock held by another process never stalls the loop."""

    async def run(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, functools.partial(fn, self, *args, **kwargs)
        )

    return run


class Store:
    """Experiments, change requests, approvals, leases, the step journal, the audit log and sandbox records.

    Reads run on the caller's thread (WAL readers never wait for writers); writes are coroutines that run on one
    writer thread with its own connection and a busy timeout, each in one transaction.
    """

    def __init__(self, path: Path | str, busy_timeout_ms: int = 15000) -> None:
        self.path = str(path)
        self._wdb = Db(self.path, busy_timeout_ms)
        if self.path != ":memory:":
            self._wdb.execute("PRAGMA journal_mode = wal")
        migrate(self._wdb.conn)
        self.db = self._wdb if self.path == ":memory:" else Db(self.path, busy_timeout_ms)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="expbot-store")
        self.on_transition: Callable[[int, int, RequestStatus], None] | None = None
        """Called after every successful transition (metrics and event log lines hang here)."""

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._wdb.close()
        if self.db is not self._wdb:
            self.db.close()

    # -- experiments -------------------------------------------------------------------------
    @_writes
    def add_experiment(
        self, provider: str, snapshot: Snapshot, channel: str, created_by: str, read_at: datetime | None = None
    ) -> tuple[Experiment, bool]:
        """Track an experiment; returns it and whether it was new (a remote id is tracked once)."""
        stamp, read = now().isoformat(), (read_at or now()).isoformat()
        with self._wdb.atomic():
            cur = self._wdb.execute(
                "INSERT OR IGNORE INTO experiments (provider, remote_id, name, channel, created_by, snapshot,"
                " created_at, updated_at, read_at, status, exposure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    provider,
                    snapshot.remote_id,
                    snapshot.name,
                    channel,
                    created_by,
                    snapshot.model_dump_json(),
                    stamp,
                    stamp,
                    read,
                    snapshot.status.value,
                    snapshot.exposure,
                ],
            )
            row = _one(
                self._wdb,
                "SELECT * FROM experiments WHERE provider = ? AND remote_id = ?",
                [provider, snapshot.remote_id],
            )
        assert row is not None
        return _experiment(row), cur.rowcount == 1

    def experiment(self, experiment_id: int) -> Experiment | None:
        row = _one(self.db, "SELECT * FROM experiments WHERE id = ?", [experiment_id])
        return _experiment(row) if row else None

    def experiment_by_remote(self, provider: str, remote_id: str) -> Experiment | None:
        row = _one(self.db, "SELECT * FROM experiments WHERE provider = ? AND remote_id = ?", [provider, remote_id])
        return _experiment(row) if row else None

    def experiments(self, provider: str | None = None) -> list[Experiment]:
        sql, args = "SELECT * FROM experiments", []
        if provider:
            sql, args = sql + " WHERE provider = ?", [provider]
        return [_experiment(r) for r in self.db.query(sql + " ORDER BY id", args)]

    def experiment_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0])

    def summaries(self, provider: str | None, status: str | None, limit: int) -> tuple[list[ExperimentSummary], int]:
        """Up to `limit` experiments for a listing, and how many match in all (counted only past a full page)."""
        where: list[str] = []
        args: list[Any] = []
        if provider:
            where, args = [*where, "provider = ?"], [*args, provider]
        if status:
            where, args = [*where, "status = ?"], [*args, status]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(
            f"SELECT id, provider, name, status, exposure FROM experiments{clause} ORDER BY id LIMIT ?",
            [*args, limit + 1],
        ).fetchall()
        total = len(rows)
        if total > limit:
            total = int(self.db.execute(f"SELECT COUNT(*) FROM experiments{clause}", args).fetchone()[0])
        return [ExperimentSummary(*r) for r in rows[:limit]], total

    @_writes
    def set_card(self, experiment_id: int, channel: str, ts: str) -> None:
        self._wdb.execute("UPDATE experiments SET channel = ?, card_ts = ? WHERE id = ?", [channel, ts, experiment_id])

    @_writes
    def save_snapshot(self, experiment_id: int, snapshot: Snapshot, read_at: datetime) -> bool:
        """Store a read of the experiment unless a newer read is already stored; False if this one is older."""
        cur = self._wdb.execute(
            "UPDATE experiments SET snapshot = ?, name = ?, status = ?, exposure = ?, updated_at = ?, read_at = ?"
            " WHERE id = ? AND (read_at IS NULL OR read_at <= ?)",
            [
                snapshot.model_dump_json(),
                snapshot.name,
                snapshot.status.value,
                snapshot.exposure,
                now().isoformat(),
                read_at.isoformat(),
                experiment_id,
                read_at.isoformat(),
            ],
        )
        return cur.rowcount == 1

    # -- change requests ---------------------------------------------------------------------
    @_writes
    def add_request(
        self,
        experiment: Experiment,
        change: Change,
        before: Snapshot,
        plan: Plan,
        requested_by: str,
        required: int,
        expires_at: datetime,
    ) -> int:
        with self._wdb.atomic():
            cur = self._wdb.execute(
                "INSERT INTO requests (experiment_id, change, before, plan, requested_by, required, status,"
                " channel, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                [
                    experiment.id,
                    change.model_dump_json(),
                    before.model_dump_json(),
                    plan.model_dump_json(),
                    requested_by,
                    required,
                    experiment.channel,
                    now().isoformat(),
                    expires_at.isoformat(),
                ],
            )
            request_id = int(cur.lastrowid or 0)
            detail = {"change": change.model_dump(mode="json", exclude_none=True), "fingerprint": before.fingerprint}
            detail["plan"] = [s.render() for s in plan.steps]
            self._audit(requested_by, "request.created", experiment.id, request_id, detail)
        return request_id

    def request(self, request_id: int) -> ChangeRequest | None:
        row = _one(self.db, "SELECT * FROM requests WHERE id = ?", [request_id])
        if row is None:
            return None
        approvals = tuple(
            Approval(user=a["user"], at=datetime.fromisoformat(a["at"]))
            for a in self.db.query("SELECT * FROM approvals WHERE request_id = ? ORDER BY at", [request_id])
        )
        return _request(row, approvals)

    def requests(self, statuses: Iterable[RequestStatus], experiment_id: int | None = None) -> list[ChangeRequest]:
        wanted: list[Any] = [s.value for s in statuses]
        sql = f"SELECT id FROM requests WHERE status IN ({', '.join('?' * len(wanted))})"
        if experiment_id is not None:
            sql, wanted = sql + " AND experiment_id = ?", [*wanted, experiment_id]
        found = (self.request(int(r["id"])) for r in list(self.db.query(sql + " ORDER BY id", wanted)))
        return [r for r in found if r is not None]

    def request_counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT status, COUNT(*) AS n FROM requests GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    @_writes
    def set_request_message(self, request_id: int, channel: str, ts: str) -> None:
        self._wdb.execute("UPDATE requests SET channel = ?, message_ts = ? WHERE id = ?", [channel, ts, request_id])

    @_writes
    def transition(
        self,
        request_id: int,
        from_: Iterable[RequestStatus],
        to: RequestStatus,
        actor: str,
        detail: dict[str, Any] | None = None,
        outcome: str | None = None,
        deliver: Iterable[OutboxItem] = (),
        decided_by: str | None = None,
    ) -> bool:
        """Move a request from one of `from_` to `to` with its audit row and the Slack messages it causes (queued
        in the same transaction, so a crash never loses them); False if someone else moved it first.

        `decided_by` (who decided: the approvers, the rejecter) is kept once set; a final transition by expbot
        itself (applied, failed, stale, expired) fills it only when nobody decided.
        """
        sources = [s.value for s in from_]
        who = decided_by or (actor if to.final else None)
        with self._wdb.atomic():
            cur = self._wdb.execute(
                f"UPDATE requests SET status = ?, decided_by = COALESCE(decided_by, ?),"
                f" outcome = COALESCE(?, outcome) WHERE id = ? AND status IN ({', '.join('?' * len(sources))})",
                [to.value, who, outcome, request_id, *sources],
            )
            if cur.rowcount != 1:
                return False
            extra = {"from": sources, **(detail or {}), **({"outcome": outcome} if outcome else {})}
            experiment_id = self._experiment_of(request_id)
            self._audit(actor, f"request.{to.value}", experiment_id, request_id, extra)
            self._enqueue(deliver)
        if self.on_transition is not None:
            self.on_transition(experiment_id, request_id, to)
        return True

    @_writes
    def add_approval(self, request_id: int, user: str) -> bool:
        """Record an approval while the request is pending; False for a repeat or a request no longer pending."""
        with self._wdb.atomic():
            cur = self._wdb.execute(
                "INSERT OR IGNORE INTO approvals (request_id, user, at) SELECT ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM requests WHERE id = ? AND status = 'pending')",
                [request_id, user, now().isoformat(), request_id],
            )
            if cur.rowcount != 1:
                return False
            self._audit(user, "request.approval", self._experiment_of(request_id), request_id, {})
        return True

    # -- leases: one change in flight per experiment, owned by one process ----------------------
    @_writes
    def take_lease(self, experiment_id: int, request_id: int, owner: str, ttl: timedelta) -> bool:
        """Own the experiment for applying `request_id`, if nobody holds it or the holder's lease ran out."""
        stamp = now()
        cur = self._wdb.execute(
            "INSERT INTO leases (experiment_id, request_id, owner, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (experiment_id) DO UPDATE SET request_id = excluded.request_id, owner = excluded.owner,"
            " expires_at = excluded.expires_at WHERE leases.expires_at < ?",
            [experiment_id, request_id, owner, (stamp + ttl).isoformat(), stamp.isoformat()],
        )
        return cur.rowcount == 1

    @_writes
    def renew_lease(self, experiment_id: int, owner: str, ttl: timedelta) -> bool:
        cur = self._wdb.execute(
            "UPDATE leases SET expires_at = ? WHERE experiment_id = ? AND owner = ?",
            [(now() + ttl).isoformat(), experiment_id, owner],
        )
        return cur.rowcount == 1

    @_writes
    def release_lease(self, experiment_id: int, owner: str) -> None:
        self._wdb.execute("DELETE FROM leases WHERE experiment_id = ? AND owner = ?", [experiment_id, owner])

    def lease_holder(self, experiment_id: int) -> tuple[int, str] | None:
        row = _one(
            self.db,
            "SELECT * FROM leases WHERE experiment_id = ? AND expires_at >= ?",
            [experiment_id, now().isoformat()],
        )
        return (int(row["request_id"]), str(row["owner"])) if row else None

    # -- the step journal --------------------------------------------------------------------
    @_writes
    def step_sent(self, request_id: int, idx: int, step: Step) -> None:
        self._wdb.execute(
            "INSERT INTO steps (request_id, idx, status, step, sent_at) VALUES (?, ?, 'sent', ?, ?)"
            " ON CONFLICT (request_id, idx) DO UPDATE SET status = 'sent', step = excluded.step,"
            " sent_at = excluded.sent_at, finished_at = NULL, error = NULL",
            [request_id, idx, step.model_dump_json(), now().isoformat()],
        )

    @_writes
    def step_finished(
        self,
        request_id: int,
        idx: int,
        status: str,
        answer: Answer | None,
        error: str | None = None,
        actor: str = "expbot",
    ) -> None:
        """Record a step's outcome (`done`, `failed` or `unknown`) and its audit row, in one transaction."""
        with self._wdb.atomic():
            self._wdb.execute(
                "UPDATE steps SET status = ?, finished_at = ?, http_status = ?, answer = ?, error = ?"
                " WHERE request_id = ? AND idx = ?",
                [
                    status,
                    now().isoformat(),
                    answer.status if answer else None,
                    json.dumps(answer.data) if answer else None,
                    error,
                    request_id,
                    idx,
                ],
            )
            row = _one(self._wdb, "SELECT step FROM steps WHERE request_id = ? AND idx = ?", [request_id, idx])
            step = Step.model_validate_json(row["step"]) if row else None
            detail: dict[str, Any] = {"call": step.render() if step else "?", "step": idx + 1, "status": status}
            if answer is not None:
                detail |= {"http_status": answer.status, "ids": answer.ids()}
            if error:
                detail["error"] = error
            self._audit(actor, "provider.call", self._experiment_of(request_id), request_id, detail)

    def journal(self, request_id: int) -> dict[int, JournalEntry]:
        rows = self.db.query("SELECT * FROM steps WHERE request_id = ? ORDER BY idx", [request_id])
        return {int(r["idx"]): _journal(r) for r in rows}

    @_writes
    def release_orphans(self, host: str, alive: Callable[[int], bool]) -> int:
        """Free the leases and outbox claims of processes on `host` that are gone (a kill -9, a crash), so a
        restart takes their work at once instead of waiting for the claims to run out."""
        owners = {r["owner"] for r in self._wdb.query("SELECT owner FROM leases")}
        owners |= {
            r["claimed_by"] for r in self._wdb.query("SELECT claimed_by FROM outbox WHERE claimed_by IS NOT NULL")
        }
        dead = [o for o in owners if _owner_pid(o, host) is not None and not alive(_owner_pid(o, host) or 0)]
        with self._wdb.atomic():
            for owner in dead:
                self._wdb.execute("DELETE FROM leases WHERE owner = ?", [owner])
                self._wdb.execute(
                    "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ?", [owner]
                )
        return len(dead)

    # -- the outbox: every card edit, request edit, thread note and DM, until Slack takes it ------------
    def _enqueue(self, items: Iterable[OutboxItem]) -> None:
        stamp = now().isoformat()
        for item in items:
            if item.kind in STATEFUL:  # rendered from the latest state when sent: one row per message
                self._wdb.execute(
                    "INSERT INTO outbox (key, kind, experiment_id, request_id, target, text, status, next_at,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET version = version + 1, status = 'pending', next_at = ?,"
                    " attempts = CASE WHEN outbox.status = 'pending' THEN attempts ELSE 0 END, updated_at = ?",
                    [*_item_args(item), stamp, stamp, stamp, stamp, stamp],
                )
            else:  # an event (a thread note, a DM): sent once
                self._wdb.execute(
                    "INSERT OR IGNORE INTO outbox (key, kind, experiment_id, request_id, target, text, status,"
                    " next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    [*_item_args(item), stamp, stamp, stamp],
                )

    @_writes
    def enqueue(self, items: list[OutboxItem]) -> None:
        with self._wdb.atomic():
            self._enqueue(items)

    @_writes
    def claim_due(self, owner: str, ttl: timedelta, keys: list[str] | None = None, limit: int = 20) -> list[OutboxRow]:
        """Take up to `limit` due messages nobody is sending; each is sent by one process at a time, in order."""
        stamp = now()
        sql = "SELECT * FROM outbox WHERE status = 'pending' AND next_at <= ?"
        sql += " AND (claim_until IS NULL OR claim_until < ?)"
        args: list[Any] = [stamp.isoformat(), stamp.isoformat()]
        if keys is not None:
            sql, args = sql + f" AND key IN ({', '.join('?' * len(keys))})", [*args, *keys]
        taken: list[OutboxRow] = []
        with self._wdb.atomic():
            for row in list(self._wdb.query(sql + " ORDER BY id LIMIT ?", [*args, limit])):
                cur = self._wdb.execute(
                    "UPDATE outbox SET claimed_by = ?, claim_until = ? WHERE id = ? AND version = ?",
                    [owner, (stamp + ttl).isoformat(), row["id"], row["version"]],
                )
                if cur.rowcount == 1:
                    taken.append(OutboxRow.model_validate(row))
        return taken

    @_writes
    def outbox_sent(self, row: OutboxRow, owner: str) -> bool:
        """Mark a message sent, unless its state changed while it was being sent (then it is sent again)."""
        with self._wdb.atomic():
            cur = self._wdb.execute(
                "UPDATE outbox SET status = 'sent', claimed_by = NULL, claim_until = NULL, last_error = NULL,"
                " updated_at = ? WHERE id = ? AND claimed_by = ? AND version = ?",
                [now().isoformat(), row.id, owner, row.version],
            )
            if cur.rowcount == 1:
                return True
            self._wdb.execute(
                "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE id = ? AND claimed_by = ?",
                [row.id, owner],
            )
        return False

    @_writes
    def outbox_failed(self, row: OutboxRow, owner: str, error: str, retry_at: datetime | None) -> None:
        """A try failed: due again at `retry_at`, or given up (`dead`) when retrying cannot fix it."""
        status = "pending" if retry_at is not None else "dead"
        self._wdb.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, next_at = ?, last_error = ?, claimed_by = NULL,"
            " claim_until = NULL, updated_at = ? WHERE id = ? AND claimed_by = ?",
            [status, (retry_at or now()).isoformat(), error, now().isoformat(), row.id, owner],
        )

    def outbox_stats(self) -> OutboxStats:
        """Depth, oldest pending age (s), messages given up, for `/metrics`, `/readyz` and `expbot check`."""
        row = _one(
            self.db,
            "SELECT SUM(status = 'pending') AS depth, MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest,"
            " SUM(status = 'dead') AS dead FROM outbox",
            [],
        )
        oldest = row["oldest"] if row else None
        age = (now() - datetime.fromisoformat(oldest)).total_seconds() if oldest else None
        return OutboxStats(
            depth=int((row or {}).get("depth") or 0), oldest_age=age, dead=int((row or {}).get("dead") or 0)
        )

    def outbox_rows(self, status: str | None = None) -> list[OutboxRow]:
        sql, args = "SELECT * FROM outbox", []
        if status:
            sql, args = sql + " WHERE status = ?", [status]
        return [OutboxRow.model_validate(r) for r in self.db.query(sql + " ORDER BY id", args)]

    # -- audit ---------------------------------------------------------------------------------
    @_writes
    def audit(
        self,
        actor: str,
        action: str,
        experiment_id: int | None = None,
        request_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._audit(actor, action, experiment_id, request_id, detail or {})

    def audit_events(self, experiment_id: int, limit: int = 30) -> list[AuditEvent]:
        rows = self.db.query(
            "SELECT * FROM audit WHERE experiment_id = ? ORDER BY id DESC LIMIT ?", [experiment_id, limit]
        )
        return [AuditEvent.model_validate({**r, "detail": json.loads(r["detail"])}) for r in rows][::-1]

    def _audit(
        self, actor: str, action: str, experiment_id: int | None, request_id: int | None, detail: dict[str, Any]
    ) -> None:
        self._wdb.execute(
            "INSERT INTO audit (ts, actor, experiment_id, request_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [now().isoformat(), actor, experiment_id, request_id, action, json.dumps(detail, default=str)],
        )

    def _experiment_of(self, request_id: int) -> int:
        row = _one(self._wdb, "SELECT experiment_id FROM requests WHERE id = ?", [request_id])
        assert row is not None
        return int(row["experiment_id"])

    # -- sandbox provider records ------------------------------------------------------------
    @_writes
    def sandbox_insert(self, record: dict[str, Any]) -> str:
        cur = self._wdb.execute("INSERT INTO sandbox_experiments (record) VALUES (?)", [json.dumps(record)])
        return f"sbx-{cur.lastrowid}"

    async def sandbox_get(self, remote_id: str) -> dict[str, Any] | None:
        if not remote_id.startswith("sbx-") or not remote_id[4:].isdigit() or len(remote_id) > 16:
            return None
        row = _one(self.db, "SELECT record FROM sandbox_experiments WHERE id = ?", [int(remote_id[4:])])
        return json.loads(row["record"]) if row else None

    @_writes
    def sandbox_put(self, remote_id: str, record: dict[str, Any]) -> None:
        self._wdb.execute(
            "UPDATE sandbox_experiments SET record = ? WHERE id = ?", [json.dumps(record), int(remote_id[4:])]
        )

    async def sandbox_all(self) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT id, record FROM sandbox_experiments ORDER BY id")
        return [{**json.loads(r["record"]), "id": f"sbx-{r['id']}"} for r in rows]


def _one(db: Db, sql: str, args: list[Any]) -> dict[str, Any] | None:
    """One row as a dict; the cursor is closed at once so no read transaction stays open."""
    cur = db.execute(sql, args)
    try:
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))
    finally:
        cur.close()


def _owner_pid(owner: str, host: str) -> int | None:
    """The pid in an owner id `host:pid:nonce`, when it is a process of `host`."""
    parts = owner.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == host and parts[1].isdigit() else None


def _item_args(item: OutboxItem) -> list[Any]:
    return [item.key, item.kind, item.experiment_id, item.request_id, item.target, item.text]


def _experiment(row: dict[str, Any]) -> Experiment:
    return Experiment.model_validate({**row, "snapshot": json.loads(row["snapshot"])})


def _request(row: dict[str, Any], approvals: tuple[Approval, ...]) -> ChangeRequest:
    decoded = {key: json.loads(row[key]) for key in ("change", "before", "plan")}
    return ChangeRequest.model_validate({**row, **decoded, "approvals": approvals})


def _journal(row: dict[str, Any]) -> JournalEntry:
    answer = (
        None
        if row["http_status"] is None
        else Answer(status=row["http_status"], data=json.loads(row["answer"] or "null"))
    )
    return JournalEntry(
        idx=row["idx"], status=row["status"], step=json.loads(row["step"]), answer=answer, error=row["error"]
    )
