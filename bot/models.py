"""The bot's domain records: tracked experiments, change requests, approvals, journal entries and audit events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from providers.models import Change, Snapshot
from providers.plan import Answer, Plan, Step


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    STALE = "stale"

    @property
    def final(self) -> bool:
        return self not in (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.APPLYING)


class Experiment(BaseModel):
    """An experiment expbot tracks: where it lives, where its card is, what it looked like last."""

    model_config = ConfigDict(frozen=True)

    id: int
    provider: str
    remote_id: str
    name: str
    channel: str
    card_ts: str | None
    created_by: str
    snapshot: Snapshot

    @property
    def ref(self) -> str:
        return f"exp-{self.id}"


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: str
    at: datetime


class ChangeRequest(BaseModel):
    """A proposed change waiting for, or past, its approvals."""

    model_config = ConfigDict(frozen=True)

    id: int
    experiment_id: int
    change: Change
    before: Snapshot
    plan: Plan
    requested_by: str
    required: int
    status: RequestStatus
    channel: str
    message_ts: str | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    outcome: str | None = None
    approvals: tuple[Approval, ...] = ()

    @property
    def fingerprint(self) -> str:
        return self.before.fingerprint


class JournalEntry(BaseModel):
    """One step of an applied plan: sent, then done, failed or unknown, with the provider's answer."""

    model_config = ConfigDict(frozen=True)

    idx: int
    status: str
    step: Step
    answer: Answer | None = None
    error: str | None = None


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    ts: datetime
    actor: str
    experiment_id: int | None
    request_id: int | None
    action: str
    detail: dict[str, Any]
