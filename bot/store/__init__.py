"""SQLite storage, the only package that touches SQL: one `Store` over the tables of each part of the loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.store.db import Db, now
from bot.store.experiments import ExperimentTables
from bot.store.journal import JournalTables
from bot.store.requests import RequestTables
from bot.store.schema import MIGRATIONS, migrate

__all__ = ["MIGRATIONS", "Db", "Store", "migrate", "now"]


class Store(ExperimentTables, RequestTables, JournalTables):
    """Experiments, change requests, approvals, leases, the step journal, the outbox, the audit log and sandbox
    records, in one SQLite file in WAL mode; the schema is brought up to date when it is opened."""

    def __init__(self, path: Path | str, busy_timeout_ms: int = 15000) -> None:
        self.path = str(path)
        self._wdb = Db(self.path, busy_timeout_ms)
        if self.path != ":memory:":
            self._wdb.execute("PRAGMA journal_mode = wal")
        migrate(self._wdb.conn)
        self.db = self._wdb if self.path == ":memory:" else Db(self.path, busy_timeout_ms)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="expbot-store")
        self.on_transition = None

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._wdb.close()
        if self.db is not self._wdb:
            self.db.close()
