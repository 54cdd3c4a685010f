"""LaunchDarkly's pure mapping: experiment and flag JSON → Snapshot, ids and paths, and the request bodies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from providers.models import Snapshot, Status, Variant, normalize_weights

NAME = "launchdarkly"
API_VERSION = "20240415"
BETA = {"LD-API-Version": "beta"}
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
EXPAND = "draftIteration,previousIterations,treatments,secondaryMetrics"
STATUSES = {"not_started": Status.DRAFT, "running": Status.RUNNING, "stopped": Status.STOPPED}
_NAMED_ITERATION = re.compile(r"\(iteration ([^)\s]+)\)")
Json = dict[str, Any]


@dataclass(frozen=True)
class ExperimentId:
    """Where an experiment lives: project, environment and its key; `project/environment/key` is its one id."""

    project: str
    environment: str
    key: str

    @property
    def canonical(self) -> str:
        return f"{self.project}/{self.environment}/{self.key}"

    @property
    def collection(self) -> str:
        return f"/api/v2/projects/{self.project}/environments/{self.environment}/experiments"

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.key}"


def parse_id(remote_id: str, project: str | None, environment: str | None) -> ExperimentId | None:
    """`key` (with the configured project and environment) or `project/environment/key`; None if incomplete."""
    parts = [p.strip() for p in remote_id.strip().strip("/").split("/")]
    if len(parts) == 3 and all(parts):
        return ExperimentId(*parts)
    if len(parts) == 1 and parts[0] and project and environment:
        return ExperimentId(project, environment, parts[0])
    return None


def flag_path(project: str, flag_key: str) -> str:
    return f"/api/v2/flags/{project}/{flag_key}"


def is_experiment_path(path: str) -> bool:
    return "/experiments" in path.split("?", 1)[0]


def iterations(exp: Json) -> tuple[Json | None, Json | None]:
    """The iteration the experiment is on (running, stopped or a first draft) and a separate draft waiting."""
    current, draft = exp.get("currentIteration"), exp.get("draftIteration")
    if not isinstance(draft, dict) or draft.get("status") != "not_started":
        draft = None
    if not isinstance(current, dict):
        current, draft = draft, None
    elif draft is not None and draft.get("_id") == current.get("_id"):
        draft = None
    return current, draft


def flag_key_of(iteration: Json) -> str | None:
    flags = iteration.get("flags")
    if isinstance(flags, dict) and flags:
        return str(next(iter(flags)))
    for treatment in iteration.get("treatments") or []:
        for param in treatment.get("parameters") or []:
            if param.get("flagKey"):
                return str(param["flagKey"])
    return None


def rule_of(iteration: Json, flag_key: str) -> str:
    """The flag rule the experiment runs on: "fallthrough" (the default rule) or a rule id."""
    found = (iteration.get("flags") or {}).get(flag_key) or {}
    return str(found.get("targetingRule") or "fallthrough")


def variation_name(variation: Json) -> str:
    name = variation.get("name")
    return str(name) if isinstance(name, str) and name else json.dumps(variation.get("value"))


def serving(flag: Json, environment: str, rule: str) -> str | None:
    """What the experiment's rule of the flag serves now: a variation's name, "a rollout", or None if unknown."""
    config = (flag.get("environments") or {}).get(environment) or {}
    if rule == "fallthrough":
        served = config.get("fallthrough") or {}
    else:
        served = next((r for r in config.get("rules") or [] if r.get("_id") == rule), {})
    variations = flag.get("variations") or []
    index = served.get("variation")
    if isinstance(index, int) and 0 <= index < len(variations):
        return variation_name(variations[index])
    return "a rollout" if served.get("rollout") else None


def variation_id(treatment: Json, flag_key: str) -> str:
    for param in treatment.get("parameters") or []:
        if param.get("flagKey") == flag_key and param.get("variationId"):
            return str(param["variationId"])
    return str(treatment.get("_id") or "")


def _percent(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def snapshot(eid: ExperimentId, exp: Json, flag: Json | None, console: str) -> Snapshot:
    """The experiment in expbot's terms; the guard holds iteration id and version, the draft, the flag's version."""
    current, draft = iterations(exp)
    iteration = current or {}
    treatments = [t for t in iteration.get("treatments") or [] if isinstance(t, dict)]
    allocs = {str(t.get("name")): _percent(t.get("allocationPercent")) for t in treatments}
    weights = normalize_weights(allocs)
    variants = tuple(
        Variant(
            key=str(t.get("name")),
            name=str(t.get("name")),
            weight=weights[str(t.get("name"))],
            is_control=bool(t.get("baseline")),
            remote_id=str(t.get("_id") or "") or None,
        )
        for t in treatments
    )
    raw_status = str(iteration.get("status") or "not_started")
    status = Status.ARCHIVED if exp.get("archivedDate") else STATUSES.get(raw_status, Status.DRAFT)
    flag_key = flag_key_of(iteration)
    winner = next((str(t.get("name")) for t in treatments if t.get("_id") == iteration.get("winningTreatmentId")), None)
    served = serving(flag, eid.environment, rule_of(iteration, flag_key)) if flag and flag_key else None
    guard: dict[str, str | int | float | bool | None] = {
        "iteration_id": iteration.get("_id"),
        "iteration_version": iteration.get("version"),
        "iteration_status": raw_status,
        "draft_id": draft.get("_id") if draft else None,
        "flag_key": flag_key,
        "flag_version": flag.get("_version") if flag else None,
        "winner": winner,
        "serving": served,
    }
    notes = []
    if draft is not None:
        notes.append("a new iteration is drafted in LaunchDarkly and not started yet")
    config = ((flag or {}).get("environments") or {}).get(eid.environment) or {}
    if flag and config.get("on") is False:
        notes.append(f"the flag {flag_key} is off in {eid.environment}: LaunchDarkly will not start an iteration")
    return Snapshot(
        remote_id=eid.canonical,
        name=str(exp.get("name") or eid.key),
        status=status,
        exposure=min(100.0, round(sum(allocs.values()), 4)) if treatments else None,
        variants=variants,
        url=f"{console}/projects/{eid.project}/experiments/{eid.key}?env={eid.environment}",
        version=None if iteration.get("version") is None else str(iteration.get("version")),
        guard=guard,
        note="; ".join(notes) or None,
    )


def allocations(exposure: float, weights: Sequence[float]) -> list[str]:
    """Each treatment's `allocationPercent` (a string, up to 4 decimals) so they add up to `exposure` exactly and
    keep the weights' ratio (largest remainder)."""
    units, total = round(exposure * 10_000), sum(weights)
    raw = [units * w / total if total else 0.0 for w in weights]
    got = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - got[i], reverse=True)[: units - sum(got)]:
        got[i] += 1
    return [f"{u / 10_000:.4f}".rstrip("0").rstrip(".") for u in got]


def metrics_input(iteration: Json) -> tuple[list[Json], dict[str, str]]:
    """The iteration's metrics as `MetricsInput` and its primary metric as `primarySingleMetricKey` or
    `primaryFunnelKey`."""
    metrics: list[Json] = [
        {"key": str(m["key"]), "isGroup": bool(m.get("isGroup", False))}
        for m in iteration.get("metrics") or []
        if isinstance(m, dict) and m.get("key")
    ]
    single, funnel = iteration.get("primarySingleMetric") or {}, iteration.get("primaryFunnel") or {}
    legacy = iteration.get("primaryMetric") or {}
    primary: dict[str, str]
    if single.get("key"):
        primary = {"primarySingleMetricKey": str(single["key"])}
    elif funnel.get("key"):
        primary = {"primaryFunnelKey": str(funnel["key"])}
    elif legacy.get("key"):
        primary = {("primaryFunnelKey" if legacy.get("isGroup") else "primarySingleMetricKey"): str(legacy["key"])}
    else:
        primary = {"primarySingleMetricKey": str(metrics[0]["key"])} if metrics else {}
    if not metrics and primary:
        metrics = [{"key": next(iter(primary.values())), "isGroup": "primaryFunnelKey" in primary}]
    return metrics, primary


def next_iteration(iteration: Json, flag: Json, flag_key: str, allocs: dict[str, str]) -> Json:
    """An `IterationInput` like `iteration` with new allocations, pinned to the flag's current version."""
    metrics, primary = metrics_input(iteration)
    pinned = (iteration.get("flags") or {}).get(flag_key) or {}
    flag_input: Json = {"ruleId": rule_of(iteration, flag_key), "flagConfigVersion": int(flag["_version"])}
    if pinned.get("notInExperimentVariationId"):
        flag_input["notInExperimentVariationId"] = str(pinned["notInExperimentVariationId"])
    body: Json = {
        "hypothesis": str(iteration.get("hypothesis") or ""),
        "metrics": metrics,
        **primary,
        "treatments": [
            {
                "name": str(t["name"]),
                "baseline": bool(t.get("baseline")),
                "allocationPercent": allocs[str(t["name"])],
                "parameters": [{"flagKey": flag_key, "variationId": variation_id(t, flag_key)}],
            }
            for t in iteration.get("treatments") or []
        ],
        "flags": {flag_key: flag_input},
        "randomizationUnit": str(iteration.get("randomizationUnit") or "user"),
    }
    if isinstance(iteration.get("canReshuffleTraffic"), bool):
        body["canReshuffleTraffic"] = iteration["canReshuffleTraffic"]
    if iteration.get("attributes"):
        body["attributes"] = [str(a) for a in iteration["attributes"]]
    return body


def comment(what: str, iteration_id: str) -> str:
    """The audit comment of a semantic patch: the expbot request, its approvers and the iteration it is about."""
    return (
        f"expbot request #{{{{request.id}}}} approved by {{{{request.approvers}}}}: {what} (iteration {iteration_id})"
    )


def iteration_named(text: Any) -> str | None:
    """The iteration id a `comment` names (how `confirm` knows which iteration a lost patch was about)."""
    found = _NAMED_ITERATION.search(text) if isinstance(text, str) else None
    return found.group(1) if found else None


def allocations_of(iteration: Json) -> dict[str, float]:
    return {str(t.get("name")): _percent(t.get("allocationPercent")) for t in iteration.get("treatments") or []}
