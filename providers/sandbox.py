"""The sandbox provider: experiments kept in expbot's own database, with optional latency and faults for demos."""

from __future__ import annotations

import builtins
import uuid
from typing import Any, ClassVar

from pydantic import BaseModel

from providers.base import TUNE, Action, Capabilities, ChangeOptions, Choice, Created, ProviderBase, even_weights
from providers.errors import Conflict, NotFound, OutcomeUnknown, ProviderError
from providers.faults import FaultPlan
from providers.models import Change, ChangeKind, Snapshot, Status, Variant
from providers.plan import Answer, Plan, Step
from providers.registry import Deps, Driver
from providers.sandbox_forms import TEMPLATES, SandboxDraft, SandboxSettings

__all__ = ["DRIVER", "SandboxDraft", "SandboxProvider", "SandboxSettings"]

_CHANGES = {
    Status.DRAFT: frozenset({ChangeKind.START, ChangeKind.ARCHIVE}) | TUNE,
    Status.RUNNING: frozenset({ChangeKind.PAUSE, ChangeKind.STOP, ChangeKind.SHIP}) | TUNE,
    Status.PAUSED: frozenset({ChangeKind.RESUME, ChangeKind.STOP, ChangeKind.SHIP}) | TUNE,
    Status.STOPPED: frozenset({ChangeKind.SHIP, ChangeKind.ARCHIVE}),
    Status.COMPLETED: frozenset({ChangeKind.ARCHIVE}),
    Status.ARCHIVED: frozenset({ChangeKind.RESTORE}),
}
_FROM = {
    Status.RUNNING: {Status.DRAFT, Status.PAUSED},
    Status.PAUSED: {Status.RUNNING},
    Status.STOPPED: {Status.RUNNING, Status.PAUSED},
}
SUBMIT_REVIEW = Action(key="submit_review", label="Submit for review")


class SandboxProvider(ProviderBase):
    """A provider whose experiments live in the bot's database; it speaks in steps like a real HTTP API."""

    name: ClassVar[str] = "sandbox"
    label: ClassVar[str] = "Sandbox"
    draft_model: ClassVar[type[BaseModel]] = SandboxDraft
    changes = _CHANGES

    def __init__(self, deps: Deps, settings: SandboxSettings | None = None) -> None:
        self._records = deps.records
        settings = settings or SandboxSettings()
        self.latency = float(settings.latency)
        self.faults = FaultPlan(self.name, settings.fault, settings.fault_rate)

    # -- reading -------------------------------------------------------------------------------
    async def get(self, remote_id: str) -> Snapshot:
        await self.faults.wait(self.latency)
        return self._snapshot(remote_id, await self._load(remote_id))

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        await self.faults.wait(self.latency)
        snaps = [self._snapshot(r["id"], r) for r in await self._records.sandbox_all()]
        return [s for s in snaps if status is None or s.status is status]

    def canonical_id(self, remote_id: str) -> str:
        raw = remote_id.strip().lower()
        return f"sbx-{int(raw[4:])}" if raw.startswith("sbx-") and raw[4:].isdigit() else raw

    # -- creating ------------------------------------------------------------------------------
    async def create(self, draft: BaseModel) -> Created:
        assert isinstance(draft, SandboxDraft)
        await self.faults.wait(self.latency)
        token = uuid.uuid4().hex
        record: dict[str, Any] = {"name": draft.name, "status": "draft", "exposure": draft.exposure, "variants": []}
        record["sticky"] = draft.sticky
        record |= {"version": 1, "token": token, "decisions": [], "reviews": []}
        try:
            remote_id = await self.faults.write(lambda: self._records.sandbox_insert(record))
        except OutcomeUnknown:  # look it up by the token expbot chose before anything is sent again
            found = await self._by_token(token)
            if found is None:  # it did not happen: now it is safe to send again
                found = await self.faults.write(lambda: self._records.sandbox_insert(record))
            remote_id = found
        missing: list[str] = []
        for i, key in enumerate(draft.variants):
            record["variants"].append({"key": key, "name": key, "weight": 0, "is_control": i == 0})
            weights = even_weights(len(record["variants"]), decimals=0)
            for variant, weight in zip(record["variants"], weights, strict=True):
                variant["weight"] = weight
            try:
                await self.faults.write(lambda: self._records.sandbox_put(remote_id, record))
            except ProviderError as err:
                record["variants"].pop()
                missing.append(f"variant `{key}`: {err.detail}")
        return Created(snapshot=self._snapshot(remote_id, await self._load(remote_id)), missing=missing)

    async def _by_token(self, token: str) -> str | None:
        return next((str(r["id"]) for r in await self._records.sandbox_all() if r.get("token") == token), None)

    # -- the create form ------------------------------------------------------------------------
    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        if field != "template":
            return []
        await self.faults.wait(self.latency)
        wanted = query.strip().lower()
        return [
            Choice(value=key, label=f"{key} · {label}")
            for key, (label, _) in TEMPLATES.items()
            if wanted in key or wanted in label.lower()
        ]

    async def form_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        template = TEMPLATES.get(str(values.get("template")))
        return {"variants": template[1]} if template else {}

    # -- what an experiment can do ------------------------------------------------------------
    def capabilities(self, snapshot: Snapshot) -> Capabilities:
        actions = (SUBMIT_REVIEW,) if snapshot.status is Status.DRAFT and not snapshot.guard.get("reviewed") else ()
        return super().capabilities(snapshot).model_copy(update={"actions": actions})

    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        return ChangeOptions(variants=tuple(v.key for v in snapshot.variants))

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot:
        if change.kind is ChangeKind.RESTORE:
            return snapshot.model_copy(update={"status": Status(str(snapshot.guard.get("archived_from") or "draft"))})
        if change.kind is ChangeKind.ACTION:
            return snapshot.model_copy(update={"guard": {**snapshot.guard, "reviewed": True}})
        return super().preview(snapshot, change)

    async def plan(self, snapshot: Snapshot, change: Change) -> Plan:
        self.check(snapshot, change)
        path = f"/sandbox/experiments/{snapshot.remote_id}"
        comment = "expbot request #{{request.id}} approved by {{request.approvers}}"
        if change.kind is ChangeKind.SHIP:
            return Plan(
                steps=[
                    Step(
                        method="POST",
                        path=f"{path}/decisions",
                        body={"variant": change.variant},
                        label="record the decision",
                    ),
                    Step(
                        method="PUT",
                        path=f"{path}/rollout",
                        body={"decision": "{{steps.0.id}}", "comment": comment},
                        repeatable=True,
                        label=f"roll {change.variant} out to everyone",
                    ),
                ],
                notes=["Shipping completes the experiment: the winner gets 100 % of the traffic."],
            )
        if change.kind in (ChangeKind.ARCHIVE, ChangeKind.RESTORE):
            return Plan(
                steps=[
                    Step(method="POST", path=f"{path}/{change.kind.value}", repeatable=True, label=change.kind.value)
                ]
            )
        if change.kind is ChangeKind.ACTION:
            return Plan(steps=[Step(method="POST", path=f"{path}/reviews", body={}, label="submit for review")])
        body: dict[str, Any] = {"comment": comment}
        if change.kind is ChangeKind.EXPOSURE:
            body["exposure"] = change.exposure
        elif change.kind is ChangeKind.WEIGHTS:
            body["weights"] = change.weights
        else:
            body["status"] = self.preview(snapshot, change).status.value
        return Plan(steps=[Step(method="PATCH", path=path, body=body, repeatable=True, label=change.describe())])

    # -- sending -------------------------------------------------------------------------------
    async def apply(self, step: Step) -> Answer:
        remote_id = step.path.split("/")[3]
        await self.faults.wait(self.latency)
        record = await self._load(remote_id)
        answer = self._run(record, step)
        record["version"] = int(record.get("version", 1)) + 1
        await self.faults.write(lambda: self._records.sandbox_put(remote_id, record))
        return answer

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Read the record to see whether a sent decision or review exists (they are not safe to repeat)."""
        await self.faults.wait(self.latency)
        record = await self._load(snapshot.remote_id)
        kind = step.path.rsplit("/", 1)[-1]
        body = step.body if isinstance(step.body, dict) else {}
        if kind == "decisions":
            found = [d for d in record["decisions"] if d["variant"] == body.get("variant")]
            return Answer(status=201, data=found[-1]) if found else None
        if kind == "reviews":
            return Answer(status=201, data=record["reviews"][-1]) if record["reviews"] else None
        return None

    def _run(self, record: dict[str, Any], step: Step) -> Answer:
        body = step.body if isinstance(step.body, dict) else {}
        status, kind = Status(record["status"]), step.path.rsplit("/", 1)[-1]
        if step.method == "POST" and kind == "decisions":
            if status not in (Status.RUNNING, Status.PAUSED, Status.STOPPED):
                raise Conflict(
                    self.name, f"cannot decide a winner of a {status.value} experiment", status=409, code="state"
                )
            if body.get("variant") not in {v["key"] for v in record["variants"]}:
                raise NotFound(self.name, f"no variant {body.get('variant')!r}", status=404, code="not_found")
            decision = {"id": f"dec-{len(record['decisions']) + 1}", "variant": body["variant"]}
            record["decisions"].append(decision)
            return Answer(status=201, data=decision)
        if step.method == "PUT" and kind == "rollout":
            chosen: dict[str, Any] | None = next(
                (d for d in record["decisions"] if d["id"] == body.get("decision")), None
            )
            if chosen is None:
                raise NotFound(self.name, f"no decision {body.get('decision')!r}", status=404, code="not_found")
            record |= {"status": "completed", "exposure": 100}
            for v in record["variants"]:
                v["weight"] = 100 if v["key"] == chosen["variant"] else 0
        elif step.method == "POST" and kind == "archive":
            record["archived_from"] = record.get("archived_from") or record["status"]
            record["status"] = "archived"
        elif step.method == "POST" and kind == "restore":
            record["status"] = record.pop("archived_from", None) or "draft"
        elif step.method == "POST" and kind == "reviews":
            review = {"id": f"rev-{len(record['reviews']) + 1}"}
            record["reviews"].append(review)
            return Answer(status=201, data=review)
        elif step.method == "PATCH":
            self._patch(record, status, body)
        else:
            raise ProviderError(self.name, f"unsupported call {step.render()}", status=400, code="bad_request")
        return Answer(status=200, data={"id": step.path.split("/")[3], "status": record["status"]})

    def _patch(self, record: dict[str, Any], status: Status, body: dict[str, Any]) -> None:
        if "status" in body:
            target = Status(body["status"])
            if target is not status and (target not in _FROM or status not in _FROM[target]):
                raise Conflict(self.name, f"cannot go from {status.value} to {target.value}", status=409, code="state")
            record["status"] = target.value
        if "exposure" in body:
            record["exposure"] = body["exposure"]
        if "weights" in body:
            for v in record["variants"]:
                v["weight"] = body["weights"][v["key"]]

    async def _load(self, remote_id: str) -> dict[str, Any]:
        record = await self._records.sandbox_get(remote_id)
        if record is None:
            raise NotFound(self.name, f"no sandbox experiment {remote_id}", status=404, code="not_found")
        return record

    @staticmethod
    def _snapshot(remote_id: str, record: dict[str, Any]) -> Snapshot:
        guard: dict[str, str | bool] = {"reviewed": True} if record.get("reviews") else {}
        if record.get("archived_from"):
            guard["archived_from"] = record["archived_from"]
        return Snapshot(
            remote_id=remote_id,
            name=record["name"],
            status=Status(record["status"]),
            exposure=record["exposure"],
            variants=tuple(Variant(**v) for v in record["variants"]),
            version=str(record.get("version", 1)),
            guard=guard,
        )


DRIVER = Driver(
    name="sandbox",
    label="Sandbox",
    settings_model=SandboxSettings,
    secrets=(),
    build=lambda settings, deps: SandboxProvider(deps, settings),
)
