"""The provider contract: normalized models, the `Provider` protocol and the `ProviderError` hierarchy."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


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


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    name: str
    weight: int = Field(ge=0, le=100)
    is_control: bool = False


class Snapshot(BaseModel):
    """What the provider says about one experiment now, in expbot's own terms."""

    model_config = ConfigDict(frozen=True)

    remote_id: str
    name: str
    status: Status
    exposure: int | None = Field(default=None, ge=0, le=100)
    variants: tuple[Variant, ...] = ()
    url: str | None = None
    version: str | None = None

    @property
    def fingerprint(self) -> str:
        """A hash of the fields that decide who sees what; approvers approve against it."""
        material = {
            "status": self.status.value,
            "exposure": self.exposure,
            "variants": [[v.key, v.weight, v.is_control] for v in self.variants],
        }
        digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
        return digest[:16]

    def weights(self) -> dict[str, int]:
        return {v.key: v.weight for v in self.variants}


class Change(BaseModel):
    """One traffic change: a kind plus its value (exposure percent, weights or the winning variant)."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    exposure: int | None = Field(default=None, ge=0, le=100)
    weights: dict[str, int] | None = None
    variant: str | None = None

    def describe(self) -> str:
        if self.kind is ChangeKind.EXPOSURE:
            return f"ramp exposure to {self.exposure}%"
        if self.kind is ChangeKind.WEIGHTS and self.weights is not None:
            return "split " + " / ".join(f"{k} {w}%" for k, w in self.weights.items())
        if self.kind is ChangeKind.SHIP:
            return f"ship {self.variant}"
        return self.kind.value

    def preview(self, snap: Snapshot) -> Snapshot:
        """The snapshot as it should look once this change is applied (shown to approvers)."""
        status, exposure, weights = snap.status, snap.exposure, snap.weights()
        if self.kind in _TARGET_STATUS:
            status = _TARGET_STATUS[self.kind]
        elif self.kind is ChangeKind.EXPOSURE:
            exposure = self.exposure
        elif self.kind is ChangeKind.WEIGHTS and self.weights is not None:
            weights = dict(self.weights)
        elif self.kind is ChangeKind.SHIP:
            status, exposure = Status.COMPLETED, 100
            weights = {k: 100 if k == self.variant else 0 for k in weights}
        variants = tuple(v.model_copy(update={"weight": weights.get(v.key, v.weight)}) for v in snap.variants)
        return snap.model_copy(update={"status": status, "exposure": exposure, "variants": variants})

    def took_effect(self, snap: Snapshot) -> bool:
        """Whether `snap` shows this change carried out (used to reconcile after a crash)."""
        if self.kind in (ChangeKind.START, ChangeKind.RESUME):
            return snap.status is Status.RUNNING
        if self.kind is ChangeKind.PAUSE:
            return snap.status is Status.PAUSED
        if self.kind is ChangeKind.STOP:
            return snap.status is Status.STOPPED
        if self.kind is ChangeKind.EXPOSURE:
            return snap.exposure == self.exposure
        if self.kind is ChangeKind.WEIGHTS:
            return snap.weights() == self.weights
        return snap.status is Status.COMPLETED and snap.weights().get(self.variant or "") == 100


_TARGET_STATUS = {
    ChangeKind.START: Status.RUNNING,
    ChangeKind.RESUME: Status.RUNNING,
    ChangeKind.PAUSE: Status.PAUSED,
    ChangeKind.STOP: Status.STOPPED,
}


class Call(BaseModel):
    """One HTTP call a plan will make: what approvers see. Never headers or tokens."""

    model_config = ConfigDict(frozen=True)

    method: str
    path: str
    body: dict[str, Any] | None = None

    def render(self) -> str:
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
        return f"{self.method} {self.path}{body}"


class Capabilities(BaseModel):
    """Which change kinds a provider supports in which status."""

    model_config = ConfigDict(frozen=True)

    by_status: Mapping[Status, frozenset[ChangeKind]]

    def allowed(self, status: Status) -> frozenset[ChangeKind]:
        return self.by_status.get(status, frozenset())


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_split_commas)]
"""A list field entered as comma-separated text in a modal."""


class ProviderError(Exception):
    """Anything a provider refused or failed to do."""

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class NotFound(ProviderError):
    """The experiment (or a part of it) does not exist on the provider."""


class InvalidChange(ProviderError):
    """The change is not possible for the experiment as it is now (checked before any call)."""


class Conflict(ProviderError):
    """The provider refused the call because of the experiment's state (HTTP 409)."""


class Unauthorized(ProviderError):
    """Credentials are missing, wrong or lack the role (HTTP 401/403)."""


class RateLimited(ProviderError):
    """The provider asked us to slow down (HTTP 429)."""


class Unavailable(ProviderError):
    """The provider could not be reached or failed (timeouts, 5xx)."""


@runtime_checkable
class Provider(Protocol):
    """What every experiment platform adapter implements."""

    name: ClassVar[str]
    label: ClassVar[str]
    draft_model: ClassVar[type[BaseModel]]
    capabilities: ClassVar[Capabilities]

    async def create(self, draft: BaseModel) -> Snapshot: ...

    async def get(self, remote_id: str) -> Snapshot: ...

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]: ...

    def plan(self, snapshot: Snapshot, change: Change) -> builtins.list[Call]: ...

    async def apply(self, remote_id: str, plan: builtins.list[Call]) -> Snapshot: ...


def even_weights(count: int) -> list[int]:
    """Integer weights summing to 100, as even as possible, the remainder on the first ones."""
    base, extra = divmod(100, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def check_change(provider: str, caps: Capabilities, snap: Snapshot, change: Change) -> None:
    """Refuse, before any call, a change the experiment cannot take in its current state."""
    allowed = caps.allowed(snap.status)
    if change.kind not in allowed:
        can = ", ".join(sorted(k.value for k in allowed)) or "nothing"
        raise InvalidChange(
            provider,
            f"cannot {change.kind.value} an experiment that is {snap.status.value} (it can: {can})",
            code="invalid_change",
        )
    if change.kind is ChangeKind.EXPOSURE:
        if change.exposure is None:
            raise InvalidChange(provider, "a ramp needs a percentage", code="invalid_change")
        if change.exposure == snap.exposure:
            raise InvalidChange(provider, f"exposure is already {snap.exposure}%", code="no_change")
    if change.kind is ChangeKind.WEIGHTS:
        weights = change.weights or {}
        names = [v.key for v in snap.variants]
        if sorted(weights) != sorted(names):
            raise InvalidChange(provider, f"give a weight for every variant: {', '.join(names)}", code="invalid_change")
        if sum(weights.values()) != 100:
            raise InvalidChange(
                provider,
                f"weights must add up to 100 (they add up to {sum(weights.values())})",
                code="invalid_change",
            )
        if weights == snap.weights():
            raise InvalidChange(provider, "the weights are already like that", code="no_change")
    if change.kind is ChangeKind.SHIP and change.variant not in {v.key for v in snap.variants}:
        keys = ", ".join(v.key for v in snap.variants)
        raise InvalidChange(
            provider, f"there is no variant {change.variant!r} (variants: {keys})", code="invalid_change"
        )
