"""The experiments table (what expbot tracks, its card, its latest read) and the sandbox provider's records."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.models import Experiment, ExperimentSummary
from bot.store.db import Tables, now, one, writes
from providers.models import Snapshot


class ExperimentTables(Tables):
    """Tracked experiments (card, latest read, listing columns) and the sandbox provider's records."""

    @writes
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
            row = one(
                self._wdb,
                "SELECT * FROM experiments WHERE provider = ? AND remote_id = ?",
                [provider, snapshot.remote_id],
            )
        assert row is not None
        return _experiment(row), cur.rowcount == 1

    def experiment(self, experiment_id: int) -> Experiment | None:
        row = one(self.db, "SELECT * FROM experiments WHERE id = ?", [experiment_id])
        return _experiment(row) if row else None

    def experiment_by_remote(self, provider: str, remote_id: str) -> Experiment | None:
        row = one(self.db, "SELECT * FROM experiments WHERE provider = ? AND remote_id = ?", [provider, remote_id])
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

    @writes
    def set_card(self, experiment_id: int, channel: str, ts: str) -> None:
        self._wdb.execute("UPDATE experiments SET channel = ?, card_ts = ? WHERE id = ?", [channel, ts, experiment_id])

    @writes
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

    # -- sandbox provider records ------------------------------------------------------------
    @writes
    def sandbox_insert(self, record: dict[str, Any]) -> str:
        cur = self._wdb.execute("INSERT INTO sandbox_experiments (record) VALUES (?)", [json.dumps(record)])
        return f"sbx-{cur.lastrowid}"

    async def sandbox_get(self, remote_id: str) -> dict[str, Any] | None:
        if not remote_id.startswith("sbx-") or not remote_id[4:].isdigit() or len(remote_id) > 16:
            return None
        row = one(self.db, "SELECT record FROM sandbox_experiments WHERE id = ?", [int(remote_id[4:])])
        return json.loads(row["record"]) if row else None

    @writes
    def sandbox_put(self, remote_id: str, record: dict[str, Any]) -> None:
        self._wdb.execute(
            "UPDATE sandbox_experiments SET record = ? WHERE id = ?", [json.dumps(record), int(remote_id[4:])]
        )

    async def sandbox_all(self) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT id, record FROM sandbox_experiments ORDER BY id")
        return [{**json.loads(r["record"]), "id": f"sbx-{r['id']}"} for r in rows]


def _experiment(row: dict[str, Any]) -> Experiment:
    return Experiment.model_validate({**row, "snapshot": json.loads(row["snapshot"])})
