"""LaunchDarkly changes as steps: semantic patches on the experiment, new iterations, and the flag patch of a ship."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from providers.errors import InvalidChange
from providers.launchdarkly_mapping import (
    NAME,
    ExperimentId,
    Json,
    allocations,
    allocations_of,
    comment,
    flag_key_of,
    flag_path,
    iteration_named,
    iterations,
    next_iteration,
    rule_of,
    variation_id,
)
from providers.models import Change, ChangeKind, Snapshot, Status, pct
from providers.plan import Answer, Plan, Step

REITERATE = (
    "LaunchDarkly changes traffic with a new iteration: starting it ends the running iteration (its results stay in "
    "LaunchDarkly) and re-randomizes users into the treatments; the new iteration's results start from zero."
)
BETA_NOTE = "LaunchDarkly's experiment endpoints are in beta (sent with `LD-API-Version: beta`)."


@dataclass(frozen=True)
class Read:
    """One read of an experiment: its JSON, its flag's JSON and where it lives."""

    eid: ExperimentId
    experiment: Json
    flag: Json | None

    @property
    def iteration(self) -> Json:
        current, _ = iterations(self.experiment)
        return current or {}

    @property
    def flag_key(self) -> str:
        key = flag_key_of(self.iteration)
        if key is None:
            raise InvalidChange(NAME, "the experiment's iteration names no flag", code="no_flag")
        return key

    def treatment(self, name: str) -> Json:
        found = next((t for t in self.iteration.get("treatments") or [] if t.get("name") == name), None)
        if found is None:
            raise InvalidChange(NAME, f"there is no treatment {name!r}", code="invalid_change")
        return dict(found)

    def baseline(self) -> str:
        treatments = self.iteration.get("treatments") or []
        chosen = next((t for t in treatments if t.get("baseline")), treatments[0] if treatments else {})
        return str(chosen.get("name") or "")


def _patch(read: Read, instruction: Json, what: str, *, repeatable: bool, iteration: str | None = None) -> Step:
    body = {"comment": comment(what, iteration or str(read.iteration.get("_id"))), "instructions": [instruction]}
    return Step(method="PATCH", path=read.eid.path, body=body, repeatable=repeatable, label=what)


def flag_patch_body(read: Read, winner: str, note: str) -> Json:
    """A flag semantic patch that serves `winner` on the experiment's rule, in the experiment's environment."""
    key = read.flag_key
    rule, variation = rule_of(read.iteration, key), variation_id(read.treatment(winner), key)
    instruction: Json = (
        {"kind": "updateFallthroughVariationOrRollout", "variationId": variation}
        if rule == "fallthrough"
        else {"kind": "updateRuleVariationOrRollout", "ruleId": rule, "variationId": variation}
    )
    return {"environmentKey": read.eid.environment, "instructions": [instruction], "comment": note}


def _ship(read: Read, snap: Snapshot, winner: str) -> list[Step]:
    steps: list[Step] = []
    if snap.status is Status.RUNNING:
        stop = {
            "kind": "stopIteration",
            "winningTreatmentId": str(read.treatment(winner).get("_id")),
            "winningReason": f"{winner} shipped from Slack (expbot request #{{{{request.id}}}})",
        }
        steps.append(_patch(read, stop, f"stop the iteration with {winner} as the winner", repeatable=False))
    if snap.guard.get("serving") != winner:
        note = f"expbot request #{{{{request.id}}}} approved by {{{{request.approvers}}}}: ship {winner}"
        body = flag_patch_body(read, winner, note)
        path = flag_path(read.eid.project, read.flag_key)
        steps.append(
            Step(method="PATCH", path=path, body=body, repeatable=True, label=f"serve {winner} on the flag's rule")
        )
    return steps


def _reiterate(read: Read, snap: Snapshot, change: Change) -> list[Step]:
    if read.flag is None:
        raise InvalidChange(NAME, "the experiment's flag could not be read", code="no_flag")
    names = [v.key for v in snap.variants]
    if change.kind is ChangeKind.EXPOSURE:
        exposure, weights = float(change.exposure or 0), [v.weight for v in snap.variants]
    else:
        exposure, weights = float(snap.exposure or 0), [(change.weights or {})[n] for n in names]
    allocs = dict(zip(names, allocations(exposure, weights), strict=True))
    body = next_iteration(read.iteration, read.flag, read.flag_key, allocs)
    shares = ", ".join(f"{n} {allocs[n]}%" for n in names)
    create = Step(
        method="POST",
        path=f"{read.eid.path}/iterations",
        body=body,
        label=f"create a new iteration: {shares} of traffic",
    )
    what = change.describe()
    justification = f"expbot request #{{{{request.id}}}}: {what}, approved by {{{{request.approvers}}}}"
    start = {"kind": "startIteration", "changeJustification": justification}
    return [create, _patch(read, start, "start the new iteration", repeatable=False, iteration="{{steps.0._id}}")]


def build(read: Read, snap: Snapshot, change: Change) -> Plan:
    """The steps and the approvers' notes of a change the experiment can take (checked before)."""
    kind, notes = change.kind, [BETA_NOTE]
    if kind is ChangeKind.START:
        steps = [_patch(read, {"kind": "startIteration"}, "start the iteration", repeatable=False)]
        if snap.note:
            notes.append(f"LaunchDarkly: {snap.note}.")
    elif kind is ChangeKind.STOP:
        winner = change.variant or read.baseline()
        stop = {
            "kind": "stopIteration",
            "winningTreatmentId": str(read.treatment(winner).get("_id")),
            "winningReason": "stopped from Slack (expbot request #{{request.id}})",
        }
        steps = [_patch(read, stop, f"stop the iteration ({winner} recorded as the winner)", repeatable=False)]
        notes.append("Stopping ends the iteration; LaunchDarkly has no pause, and a new iteration starts afresh.")
    elif kind in (ChangeKind.EXPOSURE, ChangeKind.WEIGHTS):
        steps = _reiterate(read, snap, change)
        notes.insert(0, REITERATE)
        if kind is ChangeKind.EXPOSURE:
            notes.append(f"The treatments keep their ratio; {pct(change.exposure)} of the flag's traffic takes part.")
    elif kind is ChangeKind.SHIP:
        steps = _ship(read, snap, str(change.variant))
    elif kind is ChangeKind.ARCHIVE:
        steps = [_patch(read, {"kind": "archiveExperiment"}, "archive the experiment", repeatable=True)]
    elif kind is ChangeKind.RESTORE:
        steps = [_patch(read, {"kind": "restoreExperiment"}, "restore the experiment", repeatable=True)]
    else:
        raise InvalidChange(NAME, f"LaunchDarkly cannot {change.describe()}", code="invalid_change")
    return Plan(steps=steps, notes=notes)


def winner_of(change: Change, snap: Snapshot) -> str:
    if change.variant:
        return change.variant
    return next((v.key for v in snap.variants if v.is_control), snap.variants[0].key if snap.variants else "")


def guard_after(snap: Snapshot, change: Change) -> dict[str, Any]:
    """The guard fields a change sets: the winner recorded and what the flag's rule serves."""
    if change.kind is ChangeKind.STOP:
        return {"winner": winner_of(change, snap)}
    if change.kind is ChangeKind.SHIP:
        winner = change.variant if snap.status is Status.RUNNING else snap.guard.get("winner")
        return {"winner": winner, "serving": change.variant}
    return {}


_EXPERIMENT_PATH = re.compile(r"^/api/v2/projects/([^/]+)/environments/([^/]+)/experiments/([^/?]+)(/iterations)?$")


def step_experiment(step: Step) -> ExperimentId | None:
    """The experiment a step writes to (None for a flag patch)."""
    found = _EXPERIMENT_PATH.match(step.path.split("?", 1)[0])
    return ExperimentId(found.group(1), found.group(2), found.group(3)) if found else None


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-6) for k in a)


def confirmed(step: Step, experiment: Json, before: Snapshot) -> Answer | None:
    """Whether a step whose answer was lost was carried out, from the experiment read afterwards: a new iteration
    with exactly these allocations (other than the one `before` was on), or the iteration the patch's comment
    names started or stopped, or the experiment archived or restored."""
    body = step.body if isinstance(step.body, dict) else {}
    current, draft = iterations(experiment)
    if step.method == "POST" and step.path.endswith("/iterations"):
        want = {str(t.get("name")): float(t.get("allocationPercent", 0)) for t in body.get("treatments") or []}
        for found in (draft, current):
            if found and found.get("_id") != before.guard.get("iteration_id") and _same(allocations_of(found), want):
                return Answer(status=200, data=found)
        return None
    kind = str(((body.get("instructions") or [{}])[0]).get("kind"))
    named = iteration_named(body.get("comment"))
    every = [current, draft, *(experiment.get("previousIterations") or [])]
    it = next((i for i in every if i and named and i.get("_id") == named), None)
    done = {
        "startIteration": it is not None and it.get("status") in ("running", "stopped"),
        "stopIteration": it is not None and it.get("status") == "stopped",
        "archiveExperiment": bool(experiment.get("archivedDate")),
        "restoreExperiment": not experiment.get("archivedDate"),
    }
    return Answer(status=200, data=experiment) if done.get(kind) else None
