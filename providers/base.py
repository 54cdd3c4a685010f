"""The provider contract: the `Provider` protocol, what a provider offers for a snapshot, and shared defaults.

An adapter module has one shape: a pydantic draft model (the API's own create rules), a settings model
(`[providers.<name>]`), the pure mapping (change → steps, answer → Snapshot) and a class that sends steps
through `providers/http.py`. `ProviderBase` gives the generic answers an adapter overrides where its API differs.
"""

from __future__ import annotations

import builtins
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from providers.errors import InvalidChange, OutcomeUnknown
from providers.models import WEIGHT_TOLERANCE, Change, ChangeKind, Snapshot, Status, pct, weights_equal
from providers.plan import Answer, Plan, Step


class Action(BaseModel):
    """A provider action that moves no traffic (e.g. "Submit for App Review"): audited, no approval needed."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str


class Capabilities(BaseModel):
    """What an experiment can do now, given its whole snapshot: the change kinds and the actions."""

    model_config = ConfigDict(frozen=True)

    changes: frozenset[ChangeKind] = frozenset()
    actions: tuple[Action, ...] = ()

    def allows(self, change: Change) -> bool:
        if change.kind is ChangeKind.ACTION:
            return any(a.key == change.action for a in self.actions)
        return change.kind in self.changes


class ChangeOptions(BaseModel):
    """The choices a change offers in its modal (Auth0's ramp offers only the next level)."""

    model_config = ConfigDict(frozen=True)

    exposure_levels: tuple[float, ...] | None = None
    exposure_min: float = 0
    exposure_max: float = 100
    decimals: bool = False
    variants: tuple[str, ...] = ()


class Choice(BaseModel):
    """One option of a select whose choices come from the provider (apps, flags, variations …)."""

    model_config = ConfigDict(frozen=True)

    value: str
    label: str


class Created(BaseModel):
    """The result of `create`: the experiment, and what could not be created with it (it is still tracked)."""

    model_config = ConfigDict(frozen=True)

    snapshot: Snapshot
    missing: list[str] = Field(default_factory=list)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_split_commas)]
"""A list field entered as comma-separated text in a modal."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("this cannot be blank")
    return value.strip()


Text = Annotated[str, AfterValidator(_not_blank)]
"""Typed text that must not be blank; kept without its leading and trailing blanks."""


@runtime_checkable
class Provider(Protocol):
    """What every experiment platform adapter implements."""

    name: ClassVar[str]
    label: ClassVar[str]
    draft_model: ClassVar[type[BaseModel]]

    async def create(self, draft: BaseModel) -> Created: ...

    async def get(self, remote_id: str) -> Snapshot: ...

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]: ...

    def canonical_id(self, remote_id: str) -> str: ...

    def capabilities(self, snapshot: Snapshot) -> Capabilities: ...

    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions: ...

    def check(self, snapshot: Snapshot, change: Change) -> None: ...

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot: ...

    async def plan(self, snapshot: Snapshot, change: Change) -> Plan: ...

    async def apply(self, step: Step) -> Answer: ...

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None: ...

    def took_effect(self, before: Snapshot, change: Change, after: Snapshot) -> bool: ...

    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]: ...

    async def form_defaults(self, values: dict[str, Any]) -> dict[str, Any]: ...

    def draft_defaults(self) -> dict[str, Any]: ...

    async def verify(self) -> str: ...

    async def aclose(self) -> None: ...


TUNE = frozenset({ChangeKind.EXPOSURE, ChangeKind.WEIGHTS})
"""The changes that tune traffic (ramp, re-split), allowed together in most providers' tables."""

_TARGET_STATUS = {
    ChangeKind.START: Status.RUNNING,
    ChangeKind.RESUME: Status.RUNNING,
    ChangeKind.PAUSE: Status.PAUSED,
    ChangeKind.STOP: Status.STOPPED,
    ChangeKind.ARCHIVE: Status.ARCHIVED,
}


class ProviderBase(ABC):
    """Generic answers for the parts of the protocol most providers share; adapters override what differs."""

    name: ClassVar[str]
    label: ClassVar[str]
    draft_model: ClassVar[type[BaseModel]]
    changes: ClassVar[Mapping[Status, frozenset[ChangeKind]]] = {}
    """The changes each status allows, for providers whose rules depend on the status alone."""

    @abstractmethod
    async def create(self, draft: BaseModel) -> Created: ...

    @abstractmethod
    async def get(self, remote_id: str) -> Snapshot: ...

    @abstractmethod
    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]: ...

    @abstractmethod
    async def plan(self, snapshot: Snapshot, change: Change) -> Plan: ...

    @abstractmethod
    async def apply(self, step: Step) -> Answer: ...

    def canonical_id(self, remote_id: str) -> str:
        return remote_id.strip()

    def capabilities(self, snapshot: Snapshot) -> Capabilities:
        return Capabilities(changes=self.changes.get(snapshot.status, frozenset()))

    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        return ChangeOptions(variants=tuple(v.key for v in snapshot.variants))

    def check(self, snapshot: Snapshot, change: Change) -> None:
        """Refuse, before any call, a change the experiment cannot take as it is now."""
        caps = self.capabilities(snapshot)
        if not caps.allows(change):
            can = sorted(k.value for k in caps.changes if k is not ChangeKind.ACTION)
            can += [a.key for a in caps.actions]
            what = change.action if change.kind is ChangeKind.ACTION else change.kind.value
            self._refuse(
                f"cannot {what} an experiment that is {snapshot.status.value} (it can: {', '.join(can) or 'nothing'})"
            )
        if change.kind is ChangeKind.EXPOSURE:
            self._check_exposure(snapshot, change)
        elif change.kind is ChangeKind.WEIGHTS:
            self._check_weights(snapshot, change.weights or {})
        elif change.kind is ChangeKind.SHIP and snapshot.variant(change.variant or "") is None:
            keys = ", ".join(v.key for v in snapshot.variants)
            self._refuse(f"there is no variant {change.variant!r} (variants: {keys})")

    def _check_exposure(self, snapshot: Snapshot, change: Change) -> None:
        opts = self.options(snapshot, ChangeKind.EXPOSURE)
        if change.exposure is None:
            self._refuse("a ramp needs a percentage")
        assert change.exposure is not None
        if snapshot.exposure is not None and math.isclose(change.exposure, snapshot.exposure, abs_tol=WEIGHT_TOLERANCE):
            self._refuse(f"exposure is already {pct(snapshot.exposure)}", "no_change")
        if opts.exposure_levels is not None and not any(
            math.isclose(change.exposure, lv) for lv in opts.exposure_levels
        ):
            levels = ", ".join(pct(lv) for lv in opts.exposure_levels) or "none left"
            self._refuse(f"exposure can only move to the next level of its ramp: {levels}")
        if not opts.exposure_min <= change.exposure <= opts.exposure_max:
            self._refuse(f"exposure must be from {pct(opts.exposure_min)} to {pct(opts.exposure_max)}")

    def _check_weights(self, snapshot: Snapshot, weights: dict[str, float]) -> None:
        names = [v.key for v in snapshot.variants]
        if sorted(weights) != sorted(names):
            self._refuse(f"give a weight for every variant: {', '.join(names)}")
        total = sum(weights.values())
        if not math.isclose(total, 100, abs_tol=WEIGHT_TOLERANCE * len(weights)):
            self._refuse(f"weights must add up to 100 (they add up to {round(total, 2):g})")
        if weights_equal(weights, snapshot.weights()):
            self._refuse("the weights are already like that", "no_change")

    def _refuse(self, detail: str, code: str = "invalid_change") -> None:
        raise InvalidChange(self.name, detail, code=code)

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot:
        """The snapshot as it should look once `change` is applied (shown to approvers)."""
        status, exposure, weights = snapshot.status, snapshot.exposure, snapshot.weights()
        if change.kind in _TARGET_STATUS:
            status = _TARGET_STATUS[change.kind]
        elif change.kind is ChangeKind.EXPOSURE:
            exposure = change.exposure
        elif change.kind is ChangeKind.WEIGHTS and change.weights is not None:
            weights = dict(change.weights)
        elif change.kind is ChangeKind.SHIP:
            status, exposure = Status.COMPLETED, 100
            weights = {k: 100.0 if k == change.variant else 0.0 for k in weights}
        variants = tuple(v.model_copy(update={"weight": weights.get(v.key, v.weight)}) for v in snapshot.variants)
        return snapshot.model_copy(update={"status": status, "exposure": exposure, "variants": variants})

    def took_effect(self, before: Snapshot, change: Change, after: Snapshot) -> bool:
        """Whether `after` shows `change` carried out (status, exposure and weights as previewed)."""
        if change.kind is ChangeKind.ACTION:
            return False
        want = self.preview(before, change)
        same_exposure = (want.exposure is None) == (after.exposure is None) and (
            want.exposure is None or math.isclose(want.exposure, after.exposure or 0, abs_tol=WEIGHT_TOLERANCE)
        )
        return want.status is after.status and same_exposure and weights_equal(want.weights(), after.weights())

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Find out whether a step left "sent" was carried out; by default the provider cannot tell."""
        raise OutcomeUnknown(self.name, f"cannot tell whether {step.method} {step.path} was carried out")

    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        return []

    async def form_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        return {}

    def draft_defaults(self) -> dict[str, Any]:
        return {}

    async def verify(self) -> str:
        """For `expbot check`: prove the credentials work and the configured project/app/tenant is reachable;
        return one line saying what was checked, or raise a `ProviderError`."""
        found = await self.list()
        return f"{len(found)} experiment(s) visible"

    async def aclose(self) -> None:
        return None


def even_weights(count: int, decimals: int = 2) -> list[float]:
    """Weights summing to 100, as even as the decimals allow, the remainder on the first ones."""
    units = 100 * 10**decimals
    share, extra = divmod(units, count)
    return [(share + (1 if i < extra else 0)) / 10**decimals for i in range(count)]
