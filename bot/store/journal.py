"""Leases (one change in flight per experiment, owned by one process) and the journal of provider calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.models import JournalEntry
from bot.store.db import Tables, now, one, writes
from providers.plan import Answer, Step


class JournalTables(Tables):
    """Leases and the step journal: what lets a change be applied once, by one process, and resumed."""

    # -- leases: one change in flight per experiment, owned by one process ----------------------
    @writes
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

    @writes
    def renew_lease(self, experiment_id: int, owner: str, ttl: timedelta) -> bool:
        cur = self._wdb.execute(
            "UPDATE leases SET expires_at = ? WHERE experiment_id = ? AND owner = ?",
            [(now() + ttl).isoformat(), experiment_id, owner],
        )
        return cur.rowcount == 1

    @writes
    def release_lease(self, experiment_id: int, owner: str) -> None:
        self._wdb.execute("DELETE FROM leases WHERE experiment_id = ? AND owner = ?", [experiment_id, owner])

    def lease_holder(self, experiment_id: int) -> tuple[int, str] | None:
        row = one(
            self.db,
            "SELECT * FROM leases WHERE experiment_id = ? AND expires_at >= ?",
            [experiment_id, now().isoformat()],
        )
        return (int(row["request_id"]), str(row["owner"])) if row else None

    # -- the step journal --------------------------------------------------------------------
    @writes
    def step_sent(self, request_id: int, idx: int, step: Step) -> None:
        self._wdb.execute(
            "INSERT INTO steps (request_id, idx, status, step, sent_at) VALUES (?, ?, 'sent', ?, ?)"
            " ON CONFLICT (request_id, idx) DO UPDATE SET status = 'sent', step = excluded.step,"
            " sent_at = excluded.sent_at, finished_at = NULL, error = NULL",
            [request_id, idx, step.model_dump_json(), now().isoformat()],
        )

    @writes
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
            row = one(self._wdb, "SELECT step FROM steps WHERE request_id = ? AND idx = ?", [request_id, idx])
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

    @writes
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


def _owner_pid(owner: str, host: str) -> int | None:
    """The pid in an owner id `host:pid:nonce`, when it is a process of `host`."""
    parts = owner.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == host and parts[1].isdigit() else None


def _journal(row: dict[str, Any]) -> JournalEntry:
    answer = (
        None
        if row["http_status"] is None
        else Answer(status=row["http_status"], data=json.loads(row["answer"] or "null"))
    )
    return JournalEntry(
        idx=row["idx"], status=row["status"], step=json.loads(row["step"]), answer=answer, error=row["error"]
    )
