"""The bot's domain records: tracked experiments, change requests, approvals, journal entries and audit events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

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


class ExperimentSummary(NamedTuple):
    """One line of `/experiment list`: read with a narrow query, without decoding the whole snapshot."""

    id: int
    provider: str
    name: str
    status: str
    exposure: float | None

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


STATEFUL = frozenset({"card", "request"})
"""Outbox kinds rendered from the store's latest state when sent (edits); the others are events sent once."""


class OutboxItem(BaseModel):
    """A Slack message to deliver: a card or request message (rendered when sent), a thread note or a DM."""

    model_config = ConfigDict(frozen=True)

    kind: str
    key: str
    experiment_id: int | None = None
    request_id: int | None = None
    target: str | None = None
    text: str | None = None

    @classmethod
    def card(cls, experiment_id: int) -> OutboxItem:
        return cls(kind="card", key=f"card:{experiment_id}", experiment_id=experiment_id)

    @classmethod
    def request(cls, request_id: int) -> OutboxItem:
        return cls(kind="request", key=f"request:{request_id}", request_id=request_id)

    @classmethod
    def request_copy(cls, request_id: int, channel: str, ts: str) -> OutboxItem:
        """A second post of a request (Slack took both, one answer was lost), to be told apart from the request."""
        key = f"request_copy:{channel}:{ts}"
        return cls(kind="request_copy", key=key, request_id=request_id, target=channel, text=ts)

    @classmethod
    def note(cls, experiment_id: int, key: str, text: str) -> OutboxItem:
        return cls(kind="note", key=f"note:{experiment_id}:{key}", experiment_id=experiment_id, text=text)

    @classmethod
    def dm(cls, user: str, key: str, text: str) -> OutboxItem:
        return cls(kind="dm", key=f"dm:{user}:{key}", target=user, text=text)


class OutboxRow(OutboxItem):
    """An outbox entry as stored: its version (bumped by each newer state), tries and status."""

    id: int
    version: int
    status: str
    attempts: int
    last_error: str | None = None


class OutboxStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    depth: int
    oldest_age: float | None
    dead: int
