"""The outbox table: every card edit, request edit, thread note and DM, kept until Slack takes it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bot.models import STATEFUL, OutboxItem, OutboxRow, OutboxStats
from bot.store.db import Tables, now, one, writes


class OutboxTables(Tables):
    """Slack messages to deliver, one row per message: queued with the change that causes them, claimed, sent."""

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

    @writes
    def enqueue(self, items: list[OutboxItem]) -> None:
        with self._wdb.atomic():
            self._enqueue(items)

    @writes
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

    @writes
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

    @writes
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
        row = one(
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


def _item_args(item: OutboxItem) -> list[Any]:
    return [item.key, item.kind, item.experiment_id, item.request_id, item.target, item.text]
