"""Amplitude Experiment's pure mapping: experiment JSON → Snapshot, versions → a note, change → steps, step → seen."""

from __future__ import annotations

import hashlib
import json
import math
from functools import reduce
from typing import Any
from urllib.parse import quote, unquote

from providers.models import Change, ChangeKind, Scalar, Snapshot, Status, Variant, normalize_weights, pct
from providers.plan import Answer, Plan, Step

API = "/api/1"
DECIDED = ("rollout", "rollback")
REASON = "expbot request #{{request.id}}, approved by {{request.approvers}}"
_READ_BACK = "Amplitude answers PATCH calls with no data: expbot reads the experiment back afterwards."


def experiment_path(remote_id: str) -> str:
    return f"{API}/experiments/{quote(remote_id, safe='')}"


def variant_path(remote_id: str, key: str) -> str:
    return f"{experiment_path(remote_id)}/variants/{quote(key, safe='')}"


def id_of(exp: dict[str, Any]) -> str:
    """The experiment's canonical id: Amplitude's numeric id as text (it may come as a number or a string)."""
    return str(exp.get("id", "")).strip()


def archived(exp: dict[str, Any]) -> bool:
    """Archived: the read-side field is not documented; `archived` (what PATCH `archive` sets) or the state says so."""
    return exp.get("archived") is True or exp.get("state") == "archived"


def status_of(exp: dict[str, Any]) -> Status:
    """never started and off → draft; on → running; off after a start → paused; off with an end date → stopped;
    a decision (rollout/rollback) → completed; archived → archived."""
    if archived(exp):
        return Status.ARCHIVED
    if exp.get("decision") in DECIDED or exp.get("state") == "decision-made":
        return Status.COMPLETED
    if exp.get("enabled") is True:
        return Status.RUNNING
    if exp.get("endDate"):
        return Status.STOPPED
    if exp.get("startDate"):
        return Status.PAUSED
    return Status.DRAFT


def raw_weights(exp: dict[str, Any]) -> dict[str, float]:
    """`rolloutWeights` (integer ratios) in variant order; a variant without one weighs 0."""
    found = exp.get("rolloutWeights")
    weights: dict[str, Any] = found if isinstance(found, dict) else {}
    keys = [str(v.get("key")) for v in exp.get("variants") or [] if isinstance(v, dict) and v.get("key")]
    keys += [str(k) for k in weights if str(k) not in keys]
    return {k: float(weights.get(k) or 0) for k in keys}


def _ratio(weights: dict[str, float]) -> str:
    return ":".join(f"{w:g}" for w in weights.values())


def _segments_hash(exp: dict[str, Any]) -> str:
    segments = exp.get("targetSegments") or []
    if not segments:
        return ""
    return hashlib.sha256(json.dumps(segments, sort_keys=True, default=str).encode()).hexdigest()[:12]


def to_snapshot(exp: dict[str, Any], console: str, versions: list[dict[str, Any]] | None = None) -> Snapshot:
    """The experiment in expbot's terms; weights are percentages of their sum (1:3 → 25 % / 75 %)."""
    raw = raw_weights(exp)
    shares = normalize_weights(raw)
    keys = list(raw)
    control = "control" if "control" in keys else (keys[0] if keys else "")
    names = {str(v.get("key")): v.get("name") for v in exp.get("variants") or [] if isinstance(v, dict)}
    variants = tuple(
        Variant(key=k, name=str(names.get(k) or k), weight=shares[k], is_control=k == control) for k in keys
    )
    rollout = exp.get("rolloutPercentage")
    guard: dict[str, Scalar] = {
        "enabled": exp.get("enabled") is True,
        "decision": exp.get("decision"),
        "rolled_out": exp.get("rolledOutVariant"),
        "weights": _ratio(raw),
        "segments": _segments_hash(exp),
    }
    latest = max((int(v.get("version") or 0) for v in versions or []), default=0)
    rid, project = id_of(exp), exp.get("projectId")
    return Snapshot(
        remote_id=rid,
        name=str(exp.get("name") or exp.get("key") or rid),
        status=status_of(exp),
        exposure=float(rollout) if isinstance(rollout, int | float) else None,
        variants=variants,
        url=f"{console}/amplitude/{project}/config/{rid}" if project is not None else None,
        version=str(latest) if latest else None,
        guard=guard,
        note=versions_note(versions or []),
    )


_FIELDS = {
    "rolloutPercentage": "rollout",
    "rolloutWeights": "weights",
    "decision": "decision",
    "rolledOutVariant": "rolled-out variant",
    "targetSegments": "target segments",
    "startDate": "start date",
    "endDate": "end date",
    "variants": "variants",
    "deployments": "deployments",
    "name": "name",
    "description": "description",
}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    said = []
    if bool(old.get("enabled")) != bool(new.get("enabled")):
        said.append("turned on" if new.get("enabled") else "turned off")
    if archived(old) != archived(new):
        said.append("archived" if archived(new) else "unarchived")
    for field, words in _FIELDS.items():
        before, after = old.get(field), new.get(field)
        if before == after:
            continue
        if field == "rolloutPercentage":
            said.append(f"rollout {pct(before)}→{pct(after)}")
        elif field == "rolloutWeights":
            said.append(f"weights {_ratio(raw_weights(old))}→{_ratio(raw_weights(new))}")
        elif field in ("decision", "rolledOutVariant") and after is not None:
            said.append(f"{words} {after}")
        else:
            said.append(words)
    return said or ["other settings"]


def versions_note(versions: list[dict[str, Any]], keep: int = 3) -> str | None:
    """Who changed what lately, from `GET …/versions` (newest first): "v4 by ann@x.com at 2026-01-02 09:30: …"."""
    ordered = sorted(
        (v for v in versions if isinstance(v, dict)), key=lambda v: int(v.get("version") or 0), reverse=True
    )
    lines = []
    for i, version in enumerate(ordered[:keep]):
        config = version.get("flagConfig") if isinstance(version.get("flagConfig"), dict) else {}
        older = ordered[i + 1].get("flagConfig") if i + 1 < len(ordered) else None
        what = _changes(older, config or {}) if isinstance(older, dict) else ["created"]
        when = str(version.get("createdAt") or "")[:16].replace("T", " ")
        who = version.get("createdBy") or "someone"
        lines.append(f"v{version.get('version')} by {who}{' at ' + when if when else ''}: {', '.join(what)}")
    if not lines:
        return None
    note = "Recent changes in Amplitude: " + "; ".join(lines)
    return note if len(note) <= 500 else note[:499] + "…"


def integer_weights(shares: dict[str, float]) -> dict[str, int]:
    """Percentages as Amplitude's integer weights: basis points reduced by their common divisor (30/70 → 3:7)."""
    points = {k: round(v * 100) for k, v in shares.items()}
    divisor = reduce(math.gcd, points.values(), 0) or 1
    return {k: v // divisor for k, v in points.items()}


def _raw(snap: Snapshot) -> dict[str, str]:
    """The integer weights as read (kept in the guard as "1:3", in variant order)."""
    return dict(zip(snap.weights(), str(snap.guard.get("weights") or "").split(":"), strict=False))


def _weight_steps(snap: Snapshot, target: dict[str, int]) -> list[Step]:
    """One PATCH per variant whose weight changes; weights going to 0 last, so no step leaves all of them at 0."""
    current = _raw(snap)
    total = sum(target.values()) or 1
    return [
        Step(
            method="PATCH",
            path=variant_path(snap.remote_id, key),
            body={"rolloutWeight": weight},
            label=f"set {key}'s weight to {weight} ({pct(weight * 100 / total)})",
        )
        for key, weight in sorted(target.items(), key=lambda kv: kv[1] == 0)
        if current.get(key) != f"{weight:g}"
    ]


def plan_for(snap: Snapshot, change: Change) -> Plan:
    """The calls a change needs. Every PATCH adds an Amplitude version, so none is marked safe to repeat."""
    path = experiment_path(snap.remote_id)

    def patch(body: dict[str, Any], label: str) -> Step:
        return Step(method="PATCH", path=path, body=body, label=label)

    kind = change.kind
    if kind is ChangeKind.START:
        notes = [_READ_BACK]
        if not snap.exposure:
            notes.insert(0, "Rollout is 0 %: the experiment serves nobody until it is ramped up.")
        return Plan(steps=[patch({"enabled": True, "startDate": "{{now}}"}, "turn the experiment on")], notes=notes)
    if kind is ChangeKind.RESUME:
        return Plan(steps=[patch({"enabled": True}, "turn the experiment back on")], notes=[_READ_BACK])
    if kind is ChangeKind.PAUSE:
        return Plan(steps=[patch({"enabled": False}, "turn the experiment off")], notes=[_READ_BACK])
    if kind is ChangeKind.STOP:
        body = {"enabled": False, "endDate": "{{now}}"}
        return Plan(steps=[patch(body, "turn the experiment off and end it")], notes=[_READ_BACK])
    if kind is ChangeKind.ARCHIVE:
        return Plan(steps=[patch({"archive": True}, "archive the experiment")], notes=[_READ_BACK])
    if kind is ChangeKind.EXPOSURE and change.exposure is not None:
        value: float | int = int(change.exposure) if change.exposure.is_integer() else change.exposure
        step = patch({"rolloutPercentage": value}, f"set the rollout to {pct(change.exposure)}")
        return Plan(steps=[step], notes=[_READ_BACK])
    if kind is ChangeKind.WEIGHTS and change.weights is not None:
        target = integer_weights(change.weights)
        ratio = ":".join(str(w) for w in target.values())
        notes = [
            f"Amplitude weights are integer ratios: this split is sent as {ratio}, one variant per call.",
            _READ_BACK,
        ]
        return Plan(steps=_weight_steps(snap, target), notes=notes)
    if kind is ChangeKind.SHIP and change.variant is not None:
        winner = change.variant
        kept = float(_raw(snap).get(winner) or 0)
        target = {k: 0 if k != winner else (int(kept) if kept > 0 and kept.is_integer() else 1) for k in snap.weights()}
        steps = _weight_steps(snap, target)
        decision = {
            "decision": "rollout",
            "rolledOutVariant": winner,
            "decisionReason": REASON,
            "rolloutPercentage": 100,
            "enabled": True,
        }
        steps.append(patch(decision, f"record the decision: roll {winner} out to 100 %"))
        notes = [
            f"Shipping gives {winner} all the traffic (the other variants' weights go to 0, one call each), then "
            "records the decision `rollout` with rollout 100 % and the experiment on; the card then says completed.",
            _READ_BACK,
        ]
        return Plan(steps=steps, notes=notes)
    raise ValueError(f"no Amplitude plan for {change.describe()}")  # check() refuses these before planning


def _same(seen: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or wanted is None or isinstance(wanted, str):
        return bool(seen == wanted)
    if isinstance(wanted, int | float) and isinstance(seen, int | float):
        return math.isclose(float(seen), float(wanted), abs_tol=0.005)
    return False


def carried_out(step: Step, exp: dict[str, Any]) -> Answer | None:
    """Whether the experiment as read now shows `step`'s effect (for a step whose answer was lost), else None."""
    body = step.body if isinstance(step.body, dict) else {}
    if "/variants/" in step.path:
        key = unquote(step.path.rsplit("/", 1)[-1])
        seen = raw_weights(exp).get(key)
        return Answer(status=200, data="OK") if _same(seen, body.get("rolloutWeight")) else None
    for field, wanted in body.items():
        if field == "decisionReason":
            continue
        if field == "archive":
            ok = archived(exp) is bool(wanted)
        elif field in ("startDate", "endDate"):
            ok = (exp.get(field) is None) if wanted is None else bool(exp.get(field))
        else:
            ok = _same(exp.get(field), wanted)
        if not ok:
            return None
    return Answer(status=200, data=None)
