"""SQLite storage (sqlite-utils): the only module that touches SQL. Every status change is a compare-and-set."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from bot.models import Approval, AuditEvent, ChangeRequest, Experiment, RequestStatus
from providers.base import Call, Change, Snapshot

migrations = Migrations("expbot")


@migrations()
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


def now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Experiments, change requests, approvals, the audit log and sandbox records in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self.db = Database(conn)
        self.db.execute("PRAGMA busy_timeout = 10000")
        if str(path) != ":memory:":
            self.db.enable_wal()
        self.db.execute("PRAGMA foreign_keys = ON")
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    # -- experiments -------------------------------------------------------------------------
    def add_experiment(
        self, provider: str, snapshot: Snapshot, channel: str, created_by: str
    ) -> tuple[Experiment, bool]:
        """Track an experiment; returns it and whether it was new (a remote id is tracked once)."""
        stamp = now().isoformat()
        cur = self.db.execute(
            "INSERT OR IGNORE INTO experiments (provider, remote_id, name, channel, created_by, snapshot,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                provider,
                snapshot.remote_id,
                snapshot.name,
                channel,
                created_by,
                snapshot.model_dump_json(),
                stamp,
                stamp,
            ],
        )
        row = self._one(
            "SELECT * FROM experiments WHERE provider = ? AND remote_id = ?", [provider, snapshot.remote_id]
        )
        assert row is not None
        return _experiment(row), cur.rowcount == 1

    def experiment(self, experiment_id: int) -> Experiment | None:
        row = self._one("SELECT * FROM experiments WHERE id = ?", [experiment_id])
        return _experiment(row) if row else None

    def find_experiment(self, ref: str) -> Experiment | None:
        """By expbot ref (`exp-12`) or by a provider's own id/key."""
        if ref.lower().startswith("exp-") and ref[4:].isdigit():
            return self.experiment(int(ref[4:]))
        row = self._one("SELECT * FROM experiments WHERE remote_id = ? ORDER BY id LIMIT 1", [ref])
        return _experiment(row) if row else None

    def experiments(self, provider: str | None = None) -> list[Experiment]:
        sql, args = "SELECT * FROM experiments", []
        if provider:
            sql, args = sql + " WHERE provider = ?", [provider]
        return [_experiment(r) for r in self.db.query(sql + " ORDER BY id", args)]

    def set_card(self, experiment_id: int, channel: str, ts: str) -> None:
        self.db.execute("UPDATE experiments SET channel = ?, card_ts = ? WHERE id = ?", [channel, ts, experiment_id])

    def save_snapshot(self, experiment_id: int, snapshot: Snapshot) -> None:
        self.db.execute(
            "UPDATE experiments SET snapshot = ?, name = ?, updated_at = ? WHERE id = ?",
            [snapshot.model_dump_json(), snapshot.name, now().isoformat(), experiment_id],
        )

    # -- change requests ---------------------------------------------------------------------
    def add_request(
        self,
        experiment: Experiment,
        change: Change,
        before: Snapshot,
        plan: list[Call],
        requested_by: str,
        required: int,
        expires_at: datetime,
    ) -> ChangeRequest:
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO requests (experiment_id, change, before, plan, requested_by, required, status,"
                " channel, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                [
                    experiment.id,
                    change.model_dump_json(),
                    before.model_dump_json(),
                    json.dumps([c.model_dump() for c in plan]),
                    requested_by,
                    required,
                    experiment.channel,
                    now().isoformat(),
                    expires_at.isoformat(),
                ],
            )
            request_id = int(cur.lastrowid or 0)
            self._audit(
                requested_by,
                "request.created",
                experiment.id,
                request_id,
                {
                    "change": change.model_dump(mode="json"),
                    "plan": [c.render() for c in plan],
                    "fingerprint": before.fingerprint,
                },
            )
        found = self.request(request_id)
        assert found is not None
        return found

    def request(self, request_id: int) -> ChangeRequest | None:
        row = self._one("SELECT * FROM requests WHERE id = ?", [request_id])
        if row is None:
            return None
        approvals = tuple(
            Approval(user=a["user"], at=datetime.fromisoformat(a["at"]))
            for a in self.db.query("SELECT * FROM approvals WHERE request_id = ? ORDER BY at", [request_id])
        )
        return _request(row, approvals)

    def requests(self, statuses: Iterable[RequestStatus], experiment_id: int | None = None) -> list[ChangeRequest]:
        wanted = [s.value for s in statuses]
        sql = f"SELECT id FROM requests WHERE status IN ({', '.join('?' * len(wanted))})"
        if experiment_id is not None:
            sql, wanted = sql + " AND experiment_id = ?", [*wanted, str(experiment_id)]
        found = (self.request(int(r["id"])) for r in self.db.query(sql + " ORDER BY id", wanted))
        return [r for r in found if r is not None]

    def request_counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT status, COUNT(*) AS n FROM requests GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    def set_request_message(self, request_id: int, channel: str, ts: str) -> None:
        self.db.execute("UPDATE requests SET channel = ?, message_ts = ? WHERE id = ?", [channel, ts, request_id])

    def transition(
        self,
        request_id: int,
        from_: Iterable[RequestStatus],
        to: RequestStatus,
        actor: str,
        detail: dict[str, Any] | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Move a request from one of `from_` to `to` with its audit row; False if someone else moved it first."""
        sources = [s.value for s in from_]
        with self.db.atomic():
            cur = self.db.execute(
                f"UPDATE requests SET status = ?, decided_by = COALESCE(?, decided_by),"
                f" outcome = COALESCE(?, outcome) WHERE id = ? AND status IN ({', '.join('?' * len(sources))})",
                [to.value, actor if to.final else None, outcome, request_id, *sources],
            )
            if cur.rowcount != 1:
                return False
            row = self._one("SELECT experiment_id FROM requests WHERE id = ?", [request_id])
            assert row is not None
            self._audit(
                actor,
                f"request.{to.value}",
                int(row["experiment_id"]),
                request_id,
                {"from": sources, **(detail or {}), **({"outcome": outcome} if outcome else {})},
            )
        return True

    def add_approval(self, request_id: int, user: str) -> bool:
        """Record an approval while the request is pending; False for a repeat or a request no longer pending."""
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO approvals (request_id, user, at) SELECT ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM requests WHERE id = ? AND status = 'pending')",
                [request_id, user, now().isoformat(), request_id],
            )
            if cur.rowcount != 1:
                return False
            row = self._one("SELECT experiment_id FROM requests WHERE id = ?", [request_id])
            assert row is not None
            self._audit(user, "request.approval", int(row["experiment_id"]), request_id, {})
        return True

    # -- audit ---------------------------------------------------------------------------------
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
        return [
            AuditEvent(
                id=r["id"],
                ts=datetime.fromisoformat(r["ts"]),
                actor=r["actor"],
                experiment_id=r["experiment_id"],
                request_id=r["request_id"],
                action=r["action"],
                detail=json.loads(r["detail"]),
            )
            for r in rows
        ][::-1]

    def _audit(
        self, actor: str, action: str, experiment_id: int | None, request_id: int | None, detail: dict[str, Any]
    ) -> None:
        self.db.execute(
            "INSERT INTO audit (ts, actor, experiment_id, request_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [now().isoformat(), actor, experiment_id, request_id, action, json.dumps(detail, default=str)],
        )

    # -- sandbox provider records ------------------------------------------------------------
    def sandbox_insert(self, record: dict[str, Any]) -> str:
        cur = self.db.execute("INSERT INTO sandbox_experiments (record) VALUES (?)", [json.dumps(record)])
        return f"sbx-{cur.lastrowid}"

    def sandbox_get(self, remote_id: str) -> dict[str, Any] | None:
        if not remote_id.startswith("sbx-") or not remote_id[4:].isdigit():
            return None
        row = self._one("SELECT record FROM sandbox_experiments WHERE id = ?", [int(remote_id[4:])])
        return json.loads(row["record"]) if row else None

    def sandbox_put(self, remote_id: str, record: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE sandbox_experiments SET record = ? WHERE id = ?", [json.dumps(record), int(remote_id[4:])]
        )

    def sandbox_all(self) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT id, record FROM sandbox_experiments ORDER BY id")
        return [{**json.loads(r["record"]), "id": f"sbx-{r['id']}"} for r in rows]

    def _one(self, sql: str, args: list[Any]) -> dict[str, Any] | None:
        return next(iter(self.db.query(sql, args)), None)


def _experiment(row: dict[str, Any]) -> Experiment:
    return Experiment.model_validate({**row, "snapshot": json.loads(row["snapshot"])})


def _request(row: dict[str, Any], approvals: tuple[Approval, ...]) -> ChangeRequest:
    decoded = {key: json.loads(row[key]) for key in ("change", "before", "plan")}
    return ChangeRequest.model_validate({**row, **decoded, "approvals": approvals})
