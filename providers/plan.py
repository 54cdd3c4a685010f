"""Plans as steps: each step is one HTTP call that may use earlier answers and apply-time values.

A string anywhere in a step's path or body may hold placeholders, filled in just before the step is
sent: `{{steps.N.<dotted.path>}}` (the JSON answer of step N, counted from 0), `{{request.id}}`,
`{{request.requester}}`, `{{request.approvers}}` and `{{now}}` (ISO 8601, UTC). A string that is
exactly one placeholder takes the value's own type (a number stays a number).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.\-]+)\s*\}\}")


class Step(BaseModel):
    """One HTTP call of a plan: what approvers see. Never headers or tokens."""

    model_config = ConfigDict(frozen=True)

    method: str
    path: str
    body: dict[str, Any] | list[Any] | None = None
    repeatable: bool = False
    """Safe to send twice (idempotent). A step that is not is confirmed by reading the provider instead."""
    label: str = ""
    """What the step does, in words ("start the new iteration")."""

    def render(self) -> str:
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
        return f"{self.method} {self.path}{body}"


class Plan(BaseModel):
    """The exact calls a change needs, in order, and notes for the approvers."""

    model_config = ConfigDict(frozen=True)

    steps: list[Step] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Answer(BaseModel):
    """What the provider answered to one step: its HTTP status and the JSON body (trimmed for the journal)."""

    model_config = ConfigDict(frozen=True)

    status: int
    data: Any = None

    def ids(self) -> dict[str, str]:
        """The ids an answer returned, for the journal and the audit (`id`, `data.id`, `_id`, `key`)."""
        found: dict[str, str] = {}
        nested = self.data.get("data") if isinstance(self.data, dict) else None
        for where, value in (("", self.data), ("data.", nested)):
            if isinstance(value, dict):
                for key in ("id", "_id", "key"):
                    if isinstance(value.get(key), str | int):
                        found[where + key] = str(value[key])
        return found


class ApplyContext(BaseModel):
    """Values known only when a plan is applied."""

    model_config = ConfigDict(frozen=True)

    request_id: int
    requester: str
    approvers: list[str]
    now: datetime


class MissingValue(LookupError):
    """A placeholder names an answer or field that does not exist."""


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise MissingValue(dotted)
    return data


def _lookup(name: str, answers: list[Answer], ctx: ApplyContext) -> Any:
    if name == "now":
        return ctx.now.isoformat().replace("+00:00", "Z")
    if name == "request.id":
        return ctx.request_id
    if name == "request.requester":
        return ctx.requester
    if name == "request.approvers":
        return ", ".join(ctx.approvers)
    head, _, rest = name.partition(".")
    index, _, path = rest.partition(".")
    if head != "steps" or not index.isdigit() or int(index) >= len(answers):
        raise MissingValue(name)
    return _get(answers[int(index)].data, path) if path else answers[int(index)].data


def _fill(value: Any, answers: list[Answer], ctx: ApplyContext) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), answers, ctx)
        return _PLACEHOLDER.sub(lambda m: str(_lookup(m.group(1), answers, ctx)), value)
    if isinstance(value, dict):
        return {k: _fill(v, answers, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, answers, ctx) for v in value]
    return value


def resolve(step: Step, answers: list[Answer], ctx: ApplyContext) -> Step:
    """The step with every placeholder filled in from earlier answers and the apply context."""
    return step.model_copy(update={"path": _fill(step.path, answers, ctx), "body": _fill(step.body, answers, ctx)})
