"""The store's plumbing: autocommit SQLite connections, the one writer thread, the audit log every part writes."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.models import AuditEvent, RequestStatus

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T", bound="Tables")


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


def one(db: Db, sql: str, args: list[Any]) -> dict[str, Any] | None:
    """One row as a dict; the cursor is closed at once so no read transaction stays open."""
    cur = db.execute(sql, args)
    try:
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))
    finally:
        cur.close()


def writes(fn: Callable[Concatenate[T, P], R]) -> Callable[Concatenate[T, P], Coroutine[Any, Any, R]]:
    """Run a write on the store's writer thread, so a lock held by another process never stalls the loop."""

    async def run(self: T, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, functools.partial(fn, self, *args, **kwargs)
        )

    return run


class Tables:
    """What every group of tables shares: a reader and a writer connection, the writer thread, the audit log.

    Reads run on the caller's thread (WAL readers never wait for writers); writes are coroutines that run on the
    one writer thread with its own connection and a busy timeout, each in one transaction.
    """

    db: Db
    _wdb: Db
    _writer: ThreadPoolExecutor
    on_transition: Callable[[int, int, RequestStatus], None] | None
    """Called after every successful transition (metrics and event log lines hang here)."""

    # -- audit ---------------------------------------------------------------------------------
    @writes
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
        row = one(self._wdb, "SELECT experiment_id FROM requests WHERE id = ?", [request_id])
        assert row is not None
        return int(row["experiment_id"])
