"""Normalized models every provider maps to: Status, Variant, Snapshot (with its fingerprint) and Change."""

from __future__ import annotations

import hashlib
import json
import math
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

WEIGHT_TOLERANCE = 0.01
"""Two weights (in percent) closer than this are equal: providers round differently."""

Scalar = str | int | float | bool | None


class Status(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class ChangeKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    EXPOSURE = "exposure"
    WEIGHTS = "weights"
    SHIP = "ship"
    ARCHIVE = "archive"
    RESTORE = "restore"
    ACTION = "action"

    @property
    def moves_traffic(self) -> bool:
        """Provider actions (submit for review, …) move no traffic and need no approval."""
        return self is not ChangeKind.ACTION


def pct(value: float | None) -> str:
    """A percentage as people write it: 25%, 33.33%, — for unknown."""
    return "—" if value is None else f"{round(value, 2):g}%"


def normalize_weights(raw: dict[str, float]) -> dict[str, float]:
    """Ratios or allocations in any unit (1:3, 0.25/0.75, 2500/7500) as percentages of their sum, 2 decimals."""
    total = sum(raw.values())
    if total <= 0:
        return {key: 0.0 for key in raw}
    return {key: round(value * 100 / total, 2) for key, value in raw.items()}


def weights_equal(a: dict[str, float], b: dict[str, float]) -> bool:
    """Same variants with weights equal within rounding."""
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=WEIGHT_TOLERANCE * 2) for k in a)


class Variant(BaseModel):
    """One variant (treatment) and its share of the experiment's traffic, in percent (decimals allowed)."""

    model_config = ConfigDict(frozen=True)

    key: str
    name: str
    weight: float = Field(ge=0, le=100)
    is_control: bool = False
    remote_id: str | None = None


class Snapshot(BaseModel):
    """What the provider says about one experiment now, in expbot's own terms."""

    model_config = ConfigDict(frozen=True)

    remote_id: str
    name: str
    status: Status
    exposure: float | None = Field(default=None, ge=0, le=100)
    variants: tuple[Variant, ...] = ()
    url: str | None = None
    version: str | None = None
    guard: dict[str, Scalar] = Field(default_factory=dict)
    """Provider-specific version signals (iteration id and version, `updated_at`, treatment ids …)."""
    note: str | None = None
    """What the normalized status cannot say (for example "rejected by App Review")."""

    @property
    def fingerprint(self) -> str:
        """A hash of the fields that decide who sees what, and the provider's guard; approvers approve against it."""
        material = {
            "status": self.status.value,
            "exposure": None if self.exposure is None else round(self.exposure, 2),
            "variants": [[v.key, round(v.weight, 2), v.is_control] for v in self.variants],
            "guard": self.guard,
        }
        digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
        return digest[:16]

    def weights(self) -> dict[str, float]:
        return {v.key: v.weight for v in self.variants}

    def variant(self, key: str) -> Variant | None:
        return next((v for v in self.variants if v.key == key), None)


def _weights_in(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    return value


class Change(BaseModel):
    """One change: a kind plus its value (exposure percent, weights, the winning variant or a provider action)."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    exposure: float | None = Field(default=None, ge=0, le=100)
    weights: Annotated[dict[str, float] | None, BeforeValidator(_weights_in)] = None
    variant: str | None = None
    action: str | None = None

    def describe(self) -> str:
        if self.kind is ChangeKind.EXPOSURE:
            return f"ramp exposure to {pct(self.exposure)}"
        if self.kind is ChangeKind.WEIGHTS and self.weights is not None:
            return "split " + " / ".join(f"{k} {pct(w)}" for k, w in self.weights.items())
        if self.kind is ChangeKind.SHIP:
            return f"ship {self.variant}"
        if self.kind is ChangeKind.ACTION:
            return (self.action or "action").replace("_", " ")
        return self.kind.value
