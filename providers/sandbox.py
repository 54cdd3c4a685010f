"""The sandbox provider: experiments kept in expbot's own database, so every flow works without an account."""

from __future__ import annotations

import builtins
import re
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field, field_validator

from providers.base import (
    Call,
    Capabilities,
    Change,
    ChangeKind,
    CommaList,
    Conflict,
    NotFound,
    Snapshot,
    Status,
    Variant,
    check_change,
    even_weights,
)

_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_EDITABLE = frozenset({ChangeKind.EXPOSURE, ChangeKind.WEIGHTS})


class SandboxRecords(Protocol):
    """Where the sandbox keeps its experiments (the bot's store implements it)."""

    def sandbox_insert(self, record: dict[str, Any]) -> str: ...

    def sandbox_get(self, remote_id: str) -> dict[str, Any] | None: ...

    def sandbox_put(self, remote_id: str, record: dict[str, Any]) -> None: ...

    def sandbox_all(self) -> list[dict[str, Any]]: ...


class SandboxDraft(BaseModel):
    """Create fields of a sandbox experiment."""

    name: str = Field(title="Name", min_length=1, max_length=80, description="Shown on the card")
    variants: CommaList = Field(
        default=["control", "treatment"],
        title="Variants",
        min_length=2,
        max_length=5,
        description="2 to 5 comma-separated keys (lower case, digits, - or _); the first is the control",
    )
    exposure: int = Field(
        default=10,
        title="Exposure (%)",
        ge=0,
        le=100,
        description="Share of eligible traffic in the experiment once it starts",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name cannot be blank")
        return value.strip()

    @field_validator("variants")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _KEY.match(key):
                raise ValueError(f"{key!r} is not a valid key: start with a-z, then a-z 0-9 - _ (≤ 32)")
        if len(set(value)) != len(value):
            raise ValueError("variant keys must be different")
        return value


class SandboxProvider:
    """A provider whose experiments live in the bot's database."""

    name: ClassVar[str] = "sandbox"
    label: ClassVar[str] = "Sandbox"
    draft_model: ClassVar[type[BaseModel]] = SandboxDraft
    capabilities: ClassVar[Capabilities] = Capabilities(
        by_status={
            Status.DRAFT: frozenset({ChangeKind.START}) | _EDITABLE,
            Status.RUNNING: frozenset({ChangeKind.PAUSE, ChangeKind.STOP, ChangeKind.SHIP}) | _EDITABLE,
            Status.PAUSED: frozenset({ChangeKind.RESUME, ChangeKind.STOP, ChangeKind.SHIP}) | _EDITABLE,
            Status.STOPPED: frozenset({ChangeKind.SHIP}),
        }
    )

    def __init__(self, records: SandboxRecords) -> None:
        self._records = records

    async def create(self, draft: BaseModel) -> Snapshot:
        assert isinstance(draft, SandboxDraft)
        weights = even_weights(len(draft.variants))
        record = {
            "name": draft.name,
            "status": Status.DRAFT.value,
            "exposure": draft.exposure,
            "variants": [
                {"key": k, "name": k, "weight": w, "is_control": i == 0}
                for i, (k, w) in enumerate(zip(draft.variants, weights, strict=True))
            ],
            "version": 1,
        }
        remote_id = self._records.sandbox_insert(record)
        return self._snapshot(remote_id, record)

    async def get(self, remote_id: str) -> Snapshot:
        return self._snapshot(remote_id, self._load(remote_id))

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        snaps = [self._snapshot(r["id"], r) for r in self._records.sandbox_all()]
        return [s for s in snaps if status is None or s.status is status]

    def plan(self, snapshot: Snapshot, change: Change) -> builtins.list[Call]:
        check_change(self.name, self.capabilities, snapshot, change)
        path = f"/sandbox/experiments/{snapshot.remote_id}"
        body: dict[str, Any]
        if change.kind is ChangeKind.SHIP:
            return [Call(method="POST", path=f"{path}/ship", body={"variant": change.variant})]
        if change.kind is ChangeKind.EXPOSURE:
            body = {"exposure": change.exposure}
        elif change.kind is ChangeKind.WEIGHTS:
            body = {"weights": change.weights}
        else:
            body = {"status": change.preview(snapshot).status.value}
        return [Call(method="PATCH", path=path, body=body)]

    async def apply(self, remote_id: str, plan: builtins.list[Call]) -> Snapshot:
        for call in plan:
            record = self._load(remote_id)
            self._run(remote_id, record, call)
            record["version"] = int(record.get("version", 1)) + 1
            self._records.sandbox_put(remote_id, record)
        return await self.get(remote_id)

    def _run(self, remote_id: str, record: dict[str, Any], call: Call) -> None:
        body = call.body or {}
        status = Status(record["status"])
        if call.method == "POST" and call.path.endswith("/ship"):
            if status not in (Status.RUNNING, Status.PAUSED, Status.STOPPED):
                raise Conflict(self.name, f"cannot ship from {status.value}", status=409, code="state")
            winner = body["variant"]
            if winner not in {v["key"] for v in record["variants"]}:
                raise NotFound(self.name, f"no variant {winner!r}", status=404, code="not_found")
            record["status"] = Status.COMPLETED.value
            record["exposure"] = 100
            for v in record["variants"]:
                v["weight"] = 100 if v["key"] == winner else 0
        elif call.method == "PATCH" and "status" in body:
            target = Status(body["status"])
            if target not in _FROM or status not in _FROM[target]:
                raise Conflict(self.name, f"cannot go from {status.value} to {target.value}", status=409, code="state")
            record["status"] = target.value
        elif call.method == "PATCH" and "exposure" in body:
            record["exposure"] = int(body["exposure"])
        elif call.method == "PATCH" and "weights" in body:
            for v in record["variants"]:
                v["weight"] = int(body["weights"][v["key"]])
        else:
            raise Conflict(self.name, f"unsupported call {call.render()}", status=400, code="bad_request")

    def _load(self, remote_id: str) -> dict[str, Any]:
        record = self._records.sandbox_get(remote_id)
        if record is None:
            raise NotFound(self.name, f"no sandbox experiment {remote_id}", status=404, code="not_found")
        return record

    @staticmethod
    def _snapshot(remote_id: str, record: dict[str, Any]) -> Snapshot:
        return Snapshot(
            remote_id=remote_id,
            name=record["name"],
            status=Status(record["status"]),
            exposure=record["exposure"],
            variants=tuple(Variant(**v) for v in record["variants"]),
            url=None,
            version=str(record.get("version", 1)),
        )


_FROM = {
    Status.RUNNING: {Status.DRAFT, Status.PAUSED},
    Status.PAUSED: {Status.RUNNING},
    Status.STOPPED: {Status.RUNNING, Status.PAUSED},
}
