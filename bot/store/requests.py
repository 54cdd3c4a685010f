"""The change requests and approvals tables: compare-and-set transitions, each with its audit row and messages."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.models import Approval, ChangeRequest, Experiment, OutboxItem, RequestStatus
from bot.store.db import now, one, writes
from bot.store.outbox import OutboxTables
from providers.models import Change, Snapshot
from providers.plan import Plan


class RequestTables(OutboxTables):
    """Change requests and their approvals; a transition queues the Slack messages it causes in its transaction."""

    @writes
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
        row = one(self.db, "SELECT * FROM requests WHERE id = ?", [request_id])
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

    @writes
    def set_request_message(self, request_id: int, channel: str, ts: str) -> None:
        self._wdb.execute("UPDATE requests SET channel = ?, message_ts = ? WHERE id = ?", [channel, ts, request_id])

    @writes
    def adopt_request_message(self, request_id: int, channel: str, ts: str, actor: str) -> bool:
        """Take `ts` as the message of a request that was withdrawn because Slack never answered its post, and
        queue the edit that shows it as it is; False if the request has a message or is not withdrawn yet."""
        with self._wdb.atomic():
            cur = self._wdb.execute(
                "UPDATE requests SET message_ts = ? WHERE id = ? AND channel = ? AND message_ts IS NULL"
                " AND status = 'cancelled'",
                [ts, request_id, channel],
            )
            if cur.rowcount != 1:
                return False
            self._audit(actor, "request.message_found", self._experiment_of(request_id), request_id, {"ts": ts})
            self._enqueue([OutboxItem.request(request_id)])
        return True

    @writes
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

    @writes
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


def _request(row: dict[str, Any], approvals: tuple[Approval, ...]) -> ChangeRequest:
    decoded = {key: json.loads(row[key]) for key in ("change", "before", "plan")}
    return ChangeRequest.model_validate({**row, **decoded, "approvals": approvals})
