"""The fake LaunchDarkly's state: flags with `_version`, experiments and their iterations with versions, and what
each documented write does to them (create, new iteration, semantic patches). Answers are spec-shaped JSON."""

from __future__ import annotations

import copy
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


class Refused(Exception):
    """A write LaunchDarkly would refuse: HTTP status, `code`, `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> int:
    return int(time.time() * 1000)


def _links(href: str) -> Json:
    return {"self": {"href": href, "type": "application/json"}}


def metric(key: str, name: str) -> Json:
    return {
        "_id": uuid.uuid4().hex[:24],
        "_versionId": "v1",
        "key": key,
        "name": name,
        "kind": "custom",
        "_links": _links(f"/api/v2/metrics/web/{key}"),
        "tags": [],
        "_creationDate": 1_700_000_000_000,
        "dataSource": {"key": "launchdarkly"},
    }


def flag(key: str, names: list[str], environments: list[str]) -> Json:
    variations = [{"_id": str(uuid.uuid4()), "value": name.lower(), "name": name} for name in names]
    configs = {
        env: {
            "on": True,
            "archived": False,
            "salt": "salt",
            "sel": "sel",
            "lastModified": 1_700_000_000_000,
            "version": 1,
            "_site": {"href": f"/web/{env}/features/{key}", "type": "text/html"},
            "_environmentName": env,
            "trackEvents": False,
            "trackEventsFallthrough": False,
            "fallthrough": {"variation": 0},
            "rules": [],
        }
        for env in environments
    }
    return {
        "name": key.replace("-", " ").capitalize(),
        "kind": "multivariate",
        "key": key,
        "_version": 1,
        "creationDate": 1_700_000_000_000,
        "variations": variations,
        "temporary": False,
        "tags": [],
        "_links": _links(f"/api/v2/flags/web/{key}"),
        "experiments": {"baselineIdx": 0, "items": []},
        "customProperties": {},
        "archived": False,
        "environments": configs,
    }


@dataclass
class Experiment:
    """One experiment: its fields, its iterations (oldest first), the started one and a draft waiting."""

    project: str
    env: str
    rep: Json
    iterations: list[Json] = field(default_factory=list)
    current: str | None = None
    draft: str | None = None
    served_before: Json | None = None

    def iteration(self, iteration_id: str | None) -> Json | None:
        return next((i for i in self.iterations if i["_id"] == iteration_id), None)


class State:
    """Flags, metrics, context kinds and experiments of one fake account."""

    def __init__(self, project: str, environments: list[str]) -> None:
        self.project, self.environments = project, environments
        self.flags: dict[str, Json] = {}
        self.metrics = [metric("purchases", "Purchases"), metric("signups", "Sign-ups")]
        self.context_kinds = [
            {"key": k, "name": k.title(), "description": "", "version": 1, "creationDate": 1, "lastModified": 1}
            | {"createdFrom": "default", "archived": False}
            for k in ("user", "organization", "device")
        ]
        self.experiments: dict[tuple[str, str], Experiment] = {}
        self._ids = itertools.count(1)
        self.add_flag("checkout-button", ["Control", "Treatment"])

    def add_flag(self, key: str, names: list[str]) -> Json:
        self.flags[key] = flag(key, names, self.environments)
        return self.flags[key]

    # -- reading -------------------------------------------------------------------------------
    def flag_rep(self, key: str, env: str | None) -> Json:
        found = self._flag(key)
        rep = copy.deepcopy(found)
        if env:
            rep["environments"] = {k: v for k, v in rep["environments"].items() if k == env}
        return rep

    def _flag(self, key: str) -> Json:
        if key not in self.flags:
            raise Refused(404, "not_found", f"Unknown flag: {key}")
        return self.flags[key]

    def experiment(self, env: str, key: str) -> Experiment:
        if (env, key) not in self.experiments:
            raise Refused(404, "not_found", "Experiment not found")
        return self.experiments[(env, key)]

    def rep(self, exp: Experiment, expand: set[str]) -> Json:
        out = copy.deepcopy(exp.rep)
        started = [i for i in exp.iterations if i["status"] != "not_started"]
        current = exp.iteration(exp.current) or exp.iteration(exp.draft)
        if current is not None:
            out["currentIteration"] = self._iteration(current, expand)
        if "draftIteration" in expand and exp.draft:
            out["draftIteration"] = self._iteration(exp.iteration(exp.draft) or {}, expand)
        if "previousIterations" in expand:
            out["previousIterations"] = [self._iteration(i, expand) for i in started if i["_id"] != exp.current]
        return out

    @staticmethod
    def _iteration(it: Json, expand: set[str]) -> Json:
        out = copy.deepcopy(it)
        if "treatments" not in expand:
            out.pop("treatments", None)
        return out

    # -- writing -------------------------------------------------------------------------------
    def create(self, env: str, body: Json) -> Experiment:
        if (env, body["key"]) in self.experiments:
            raise Refused(400, "invalid_request", f"An experiment with key {body['key']} already exists")
        path = f"/api/v2/projects/{self.project}/environments/{env}/experiments/{body['key']}"
        rep = {"key": body["key"], "name": body["name"], "_id": uuid.uuid4().hex[:24], "_maintainerId": "m1"}
        rep |= {"_creationDate": _now(), "environmentKey": env, "_links": _links(path), "type": "experiment"}
        exp = Experiment(self.project, env, rep)
        self.new_iteration(exp, body["iteration"])
        self.experiments[(env, body["key"])] = exp
        return exp

    def new_iteration(self, exp: Experiment, body: Json) -> Json:
        if exp.rep.get("archivedDate"):
            raise Refused(400, "invalid_request", "Archived experiments cannot have new iterations")
        ((flag_key, pinned),) = body["flags"].items()
        found = self._flag(flag_key)
        if pinned["flagConfigVersion"] != found["_version"]:
            raise Refused(409, "optimistic_locking_error", "Conflict. Optimistic lock error. Try again later.")
        known = {v["_id"] for v in found["variations"]}
        treatments = []
        for t in body["treatments"]:
            variation = t["parameters"][0]["variationId"]
            if variation not in known:
                raise Refused(400, "invalid_request", f"Unknown variation {variation} for flag {flag_key}")
            treatments.append({"_id": variation, **{k: t[k] for k in ("name", "allocationPercent", "baseline")}})
            treatments[-1]["parameters"] = [{"flagKey": flag_key, "variationId": variation}]
        primary = body.get("primarySingleMetricKey") or body["metrics"][0]["key"]
        it: Json = {
            "_id": f"it-{next(self._ids)}",
            "hypothesis": body["hypothesis"],
            "status": "not_started",
            "createdAt": _now(),
            "version": 0,
            "treatments": treatments,
            "flags": {flag_key: {"targetingRule": pinned["ruleId"], "flagConfigVersion": found["_version"]}},
            "randomizationUnit": body.get("randomizationUnit", "user"),
            "canReshuffleTraffic": body.get("canReshuffleTraffic", True),
            "metrics": [self._metric_rep(m["key"], m.get("isGroup", False)) for m in body["metrics"]],
            "primarySingleMetric": {k: v for k, v in self._metric_rep(primary, False).items() if k != "isGroup"},
        }
        it["flags"][flag_key]["_links"] = _links(f"/api/v2/flags/{self.project}/{flag_key}")
        exp.iterations = [i for i in exp.iterations if i["_id"] != exp.draft]
        exp.iterations.append(it)
        exp.draft = it["_id"]
        return it

    def _metric_rep(self, key: str, group: bool) -> Json:
        found = next((m for m in self.metrics if m["key"] == key), None)
        if found is None:
            raise Refused(400, "invalid_request", f"Unknown metric {key}")
        return {"key": key, "_versionId": "v1", "name": found["name"], "kind": "custom", "isGroup": group} | {
            "_links": found["_links"]
        }

    def patch_experiment(self, exp: Experiment, instruction: Json) -> None:
        kind = instruction.get("kind")
        if kind == "startIteration":
            self._start(exp, instruction)
        elif kind == "stopIteration":
            self._stop(exp, instruction)
        elif kind == "archiveExperiment":
            exp.rep["archivedDate"] = _now()
        elif kind == "restoreExperiment":
            exp.rep.pop("archivedDate", None)
        elif kind == "updateName":
            exp.rep["name"] = str(instruction.get("value"))
        else:
            raise Refused(400, "invalid_request", f"Unknown instruction kind {kind!r}")

    def _rule(self, exp: Experiment, it: Json) -> tuple[Json, Json]:
        ((flag_key, _),) = it["flags"].items()
        found = self._flag(flag_key)
        return found, found["environments"][exp.env]

    def _start(self, exp: Experiment, instruction: Json) -> None:
        draft, running = exp.iteration(exp.draft), exp.iteration(exp.current)
        if exp.rep.get("archivedDate") or draft is None:
            raise Refused(400, "invalid_request", "There is no draft iteration to start")
        running = running if running and running["status"] == "running" else None
        if running and not instruction.get("changeJustification"):
            raise Refused(400, "invalid_request", "changeJustification is required to restart a running experiment")
        found, config = self._rule(exp, draft)
        if not config["on"]:
            raise Refused(400, "invalid_request", "The flag must be on to start an iteration")
        if running:
            running |= {"status": "stopped", "endedAt": _now(), "version": running["version"] + 1}
        else:
            exp.served_before = copy.deepcopy(config["fallthrough"])
        draft |= {"status": "running", "startedAt": _now(), "version": draft["version"] + 1}
        exp.current, exp.draft = draft["_id"], None
        index = {v["_id"]: n for n, v in enumerate(found["variations"])}
        weights = [
            {"variation": index[t["_id"]], "weight": int(float(t["allocationPercent"]) * 1000)}
            for t in draft["treatments"]
        ]
        config["fallthrough"] = {
            "rollout": {"variations": weights, "experimentAllocation": {"defaultVariation": 0, "canReshuffle": True}}
        }
        found["_version"] += 1

    def _stop(self, exp: Experiment, instruction: Json) -> None:
        running = exp.iteration(exp.current)
        if running is None or running["status"] != "running":
            raise Refused(400, "invalid_request", "The experiment has no running iteration")
        winner = instruction.get("winningTreatmentId")
        if winner is not None and winner not in {t["_id"] for t in running["treatments"]}:
            raise Refused(400, "invalid_request", f"Unknown winningTreatmentId {winner}")
        running |= {"status": "stopped", "endedAt": _now(), "version": running["version"] + 1}
        running |= {k: instruction[k] for k in ("winningTreatmentId", "winningReason") if k in instruction}
        found, config = self._rule(exp, running)
        config["fallthrough"] = exp.served_before or {"variation": 0}
        found["_version"] += 1

    def patch_flag(self, key: str, body: Json, dry_run: bool) -> Json:
        found = copy.deepcopy(self._flag(key))
        env = body.get("environmentKey")
        if env not in found["environments"]:
            raise Refused(400, "invalid_request", "environmentKey is required for this instruction")
        index = {v["_id"]: n for n, v in enumerate(found["variations"])}
        config = found["environments"][env]
        for instruction in body["instructions"]:
            if instruction.get("variationId") not in index:
                raise Refused(400, "invalid_request", "Unknown variationId")
            served = {"variation": index[instruction["variationId"]]}
            if instruction.get("kind") == "updateFallthroughVariationOrRollout":
                config["fallthrough"] = served
            elif instruction.get("kind") == "updateRuleVariationOrRollout":
                rule = next((r for r in config["rules"] if r.get("_id") == instruction.get("ruleId")), None)
                if rule is None:
                    raise Refused(400, "invalid_request", "Unknown ruleId")
                rule.pop("rollout", None)
                rule |= served
            else:
                raise Refused(400, "invalid_request", f"Unsupported instruction {instruction.get('kind')!r}")
        found["_version"] += 1
        if not dry_run:
            self.flags[key] = found
        return found
