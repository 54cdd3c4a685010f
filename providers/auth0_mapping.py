"""The pure Auth0 mapping: experiment JSON → Snapshot, what each status allows, change → steps, error words."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from providers.base import Capabilities
from providers.http import parse_auth0_error
from providers.models import Change, ChangeKind, Scalar, Snapshot, Status, Variant, pct
from providers.plan import Step

API = "/api/v2/experimentation"
EXPERIMENTS = f"{API}/experiments"
STATUS_IN = {
    "draft": Status.DRAFT,
    "active": Status.RUNNING,
    "paused": Status.PAUSED,
    "completed": Status.COMPLETED,
    "archived": Status.ARCHIVED,
}
STATUS_OUT = {status: raw for raw, status in STATUS_IN.items()}
_ENDS = frozenset({ChangeKind.STOP, ChangeKind.ARCHIVE})
CHANGES = {
    Status.DRAFT: frozenset({ChangeKind.START, ChangeKind.WEIGHTS, ChangeKind.ARCHIVE}),
    Status.RUNNING: frozenset({ChangeKind.PAUSE, ChangeKind.EXPOSURE}) | _ENDS,
    Status.PAUSED: frozenset({ChangeKind.RESUME}) | _ENDS,
    Status.COMPLETED: frozenset({ChangeKind.ARCHIVE}),
}
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+")
ACTIVE_LIMIT = "experiment_active_limit_exceeded"
SHIP_REFUSAL = (
    "Auth0 Experiment Center has no promotion. Complete the experiment (`/experiment stop`), then roll the winner "
    "out yourself: make its variation the default of the feature flag in the Auth0 dashboard (Experiment Center → "
    "Feature flags); the completed experiment keeps its configuration for reference"
)


def levels_of(snapshot: Snapshot) -> list[float]:
    raw = snapshot.guard.get("levels")
    return [float(x) for x in json.loads(raw)] if isinstance(raw, str) and raw else []


def current_level(snapshot: Snapshot) -> int | None:
    level = snapshot.guard.get("current_level")
    return level if isinstance(level, int) and not isinstance(level, bool) else None


def next_level(snapshot: Snapshot) -> tuple[int, float] | None:
    """The ramp's next level (index, percent) while active; the ramp moves one level at a time, up only."""
    levels, now = levels_of(snapshot), current_level(snapshot)
    if snapshot.status is not Status.RUNNING or not levels:
        return None
    target = (now or 0) + 1  # an active ramp without a level reported is taken to be at its first level
    return (target, levels[target]) if target < len(levels) else None


def capabilities(snapshot: Snapshot) -> Capabilities:
    changes = set(CHANGES.get(snapshot.status, frozenset()))
    if next_level(snapshot) is None:
        changes.discard(ChangeKind.EXPOSURE)
    if snapshot.guard.get("allocation_strategy") != "percentage" or len(snapshot.variants) < 2:
        changes.discard(ChangeKind.WEIGHTS)
    return Capabilities(changes=frozenset(changes))


def _variation_name(variation_id: str, names: dict[str, str]) -> str:
    return names.get(variation_id) or variation_id


def snapshot_of(data: dict[str, Any], names: dict[str, str]) -> Snapshot:
    """An experiment as Auth0 answers it; `names` maps variation ids to the names people type (control, b …)."""
    levels = [float(x) for x in data.get("levels") or [] if isinstance(x, int | float)]
    level = data.get("current_level")
    level = level if isinstance(level, int) and not isinstance(level, bool) else None
    exposure = 100.0
    if levels:
        exposure = levels[level] if level is not None and 0 <= level < len(levels) else levels[0]
    variants = tuple(
        Variant(
            key=_variation_name(str(a.get("variation_id")), names),
            name=_variation_name(str(a.get("variation_id")), names),
            weight=min(100.0, max(0.0, float(a.get("weight") or 0))),
            is_control=bool(a.get("is_control")),
            remote_id=str(a.get("variation_id")),
        )
        for a in data.get("allocations") or []
        if isinstance(a, dict)
    )
    guard: dict[str, Scalar] = {
        "status": str(data.get("status")),
        "updated_at": data.get("updated_at"),
        "levels": json.dumps(data.get("levels") or []),
        "current_level": level,
        "is_valid": bool(data.get("is_valid")),
        "allocation_strategy": str(data.get("allocation_strategy") or "percentage"),
        "feature_flag_id": str(data.get("feature_flag_id") or ""),
    }
    notes = []
    if levels:
        at = f", at level {level + 1} of {len(levels)}" if level is not None else ", starts at the first level"
        notes.append("ramp " + " → ".join(pct(x) for x in levels) + at)
    if data.get("status") == "draft" and not data.get("is_valid"):
        notes.append("Auth0 does not call it valid yet; starting it checks again")
    return Snapshot(
        remote_id=str(data["id"]),
        name=str(data.get("name") or data["id"]),
        status=STATUS_IN.get(str(data.get("status")), Status.DRAFT),
        exposure=exposure,
        variants=variants,
        version=str(data.get("updated_at") or "") or None,
        guard=guard,
        note="; ".join(notes) or None,
    )


def _status(path: str, status: str, label: str) -> Step:
    """A lifecycle transition: not known to be safe to send twice, so a lost answer is confirmed by reading."""
    return Step(method="POST", path=f"{path}/status", body={"status": status}, label=label)


def steps(snapshot: Snapshot, change: Change) -> list[Step]:
    """The calls a change needs (the change was checked before)."""
    path = f"{EXPERIMENTS}/{snapshot.remote_id}"
    kind = change.kind
    if kind is ChangeKind.START:
        validate = Step(method="POST", path=f"{path}/validate", repeatable=True, label="check it is ready (read-only)")
        return [validate, _status(path, "active", "activate the experiment")]
    if kind is ChangeKind.PAUSE:
        return [_status(path, "paused", "pause the experiment")]
    if kind is ChangeKind.RESUME:
        return [_status(path, "active", "resume the experiment")]
    if kind is ChangeKind.STOP:
        return [_status(path, "completed", "complete the experiment")]
    if kind is ChangeKind.ARCHIVE:
        archive = _status(path, "archived", "archive the experiment")
        if snapshot.status in (Status.RUNNING, Status.PAUSED):
            return [_status(path, "completed", "complete the experiment first"), archive]
        return [archive]
    if kind is ChangeKind.EXPOSURE:
        target = next_level(snapshot)
        assert target is not None
        index, percent = target
        label = f"advance the ramp to level {index + 1} of {len(levels_of(snapshot))} ({pct(percent)})"
        return [Step(method="POST", path=f"{path}/advance-ramp", body={"target_level": index}, label=label)]
    if kind is ChangeKind.WEIGHTS and change.weights is not None:
        allocations = [
            {"variation_id": v.remote_id, "is_control": v.is_control, "weight": round(change.weights[v.key])}
            for v in snapshot.variants
        ]
        return [
            Step(
                method="PATCH",
                path=path,
                body={"allocations": allocations},
                repeatable=True,
                label="replace the allocations",
            )
        ]
    raise ValueError(f"no Auth0 call for {change.describe()}")


def notes(snapshot: Snapshot, change: Change) -> list[str]:
    """What approvers should know about how Auth0 will take the change."""
    said: list[str] = []
    if change.kind in (ChangeKind.START, ChangeKind.RESUME):
        said.append(
            "Auth0 runs one active experiment per tenant during the beta: if another one is active, "
            f"Auth0 refuses with `{ACTIVE_LIMIT}` and nothing changes."
        )
    if change.kind is ChangeKind.EXPOSURE:
        said.append(
            "The ramp only moves up, one level at a time. `target_level` is the level's index (as Auth0's SDK says); "
            "Auth0 accepts only the immediate next level, so a different reading of it is refused, never applied."
        )
    if change.kind is ChangeKind.ARCHIVE and snapshot.status in (Status.RUNNING, Status.PAUSED):
        said.append("Auth0 does not say it archives a running experiment, so expbot completes it first.")
    if change.kind is ChangeKind.STOP:
        said.append("A completed experiment cannot be started again; its configuration stays for reference.")
    return said


def _scope(request: httpx.Request | None) -> str:
    if request is None:
        return "*:experimentation"
    path = request.url.path
    if request.method == "GET" or path.endswith("/validate"):
        return "read:experimentation"
    if request.method == "DELETE":
        return "delete:experimentation"
    if request.method == "POST" and path.rstrip("/").endswith("/experiments"):
        return "create:experimentation"
    return "update:experimentation"


def parse_error(response: httpx.Response) -> tuple[str | None, str]:
    """Auth0's own `message`, plus what the user must do for the answers that need explaining."""
    code, message = parse_auth0_error(response)
    if code == ACTIVE_LIMIT or ACTIVE_LIMIT in message:
        code = ACTIVE_LIMIT
        message += (
            f" ({ACTIVE_LIMIT}: another experiment is already active in this Auth0 tenant, which runs one at a time "
            "during the beta; pause or complete that one first)"
        )
    elif response.status_code == 403:
        try:
            request: httpx.Request | None = response.request
        except RuntimeError:
            request = None
        message += (
            f" (the Auth0 application needs the `{_scope(request)}` scope: grant it under Applications → APIs → "
            "Auth0 Management API → Machine to Machine Applications)"
        )
    return code, message


def tenant_domain(raw: str) -> str:
    """AUTH0_DOMAIN as a bare host, also when given as https://host/."""
    return raw.strip().removeprefix("https://").removeprefix("http://").rstrip("/")


def start_up_problems(settings: Any, secrets: Mapping[str, str]) -> list[str]:
    domain = tenant_domain(secrets.get("AUTH0_DOMAIN", ""))
    if domain and not _HOST.fullmatch(domain):
        return ["AUTH0_DOMAIN: give the tenant's domain, e.g. my-tenant.eu.auth0.com (no path)"]
    return []


def problems_in(result: Any) -> str:
    errors = result.get("errors") if isinstance(result, dict) else None
    said = [
        e if isinstance(e, str) else str(e.get("message") or e.get("code") or json.dumps(e))
        for e in errors or []
        if isinstance(e, str | dict)
    ]
    return "; ".join(said) or "it is not valid"


def variation_keys(variations: Any) -> dict[str, str]:
    """Variation id → what people type for it (its key, else its name, else its id)."""
    return {
        str(v["id"]): str(v.get("key") or v.get("name") or v["id"])
        for v in variations or []
        if isinstance(v, dict) and v.get("id")
    }
