"""A fake Amplitude Experiment management API on loopback: experiments, variants, versions, deployments, faults."""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.httpfake import FakeServer, Reply, Seen, take_fault

EXPERIMENT_FIELDS = frozenset(
    "name description bucketingKey bucketingSalt bucketingUnit evaluationMode rolloutPercentage targetSegments enabled "
    "archive experimentType stickyBucketing startDate endDate exposureEvent tags decision decisionReason "
    "rolledOutVariant".split()
)
CREATE_FIELDS = frozenset(
    "projectId key name description variants bucketingKey rolloutWeights targetSegments deployments evaluationMode "
    "experimentType".split()
)
VARIANT_FIELDS = frozenset({"key", "name", "description", "payload", "rolloutWeight"})
_EXP = re.compile(r"^/api/1/experiments/([^/]+)(/versions|/variants(?:/([^/]+))?)?$")
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class Fault:
    """Fail matching requests: `status` answers (status, body, headers), `drop` hangs up before acting,
    `timeout_after_write` acts and then holds the answer until the client gives up."""

    kind: str
    method: str | None
    path: re.Pattern[str] | None
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    skip: int

    def matches(self, seen: Seen) -> bool:
        writing = seen.method in ("POST", "PATCH", "PUT", "DELETE")
        method_ok = self.method in (None, seen.method) or (self.method == "WRITE" and writing)
        return method_ok and (self.path is None or bool(self.path.search(seen.path)))


class FakeAmplitude(FakeServer):
    """Keeps state like Amplitude does (every PATCH adds a version) and records every request it receives."""

    def __init__(self, key: str = "amp-test-key", projects: tuple[str, ...] = ("100",), actor: str = "api") -> None:
        super().__init__()
        self.key, self.projects, self.actor = key, set(projects), actor
        self.experiments: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.deployments: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.hold = 10.0  # how long a `timeout_after_write` answer is held back (released by stop())
        self.writes = 0
        self._next = 40001
        self._clock = 0
        self._state = threading.RLock()

    # -- levers for tests -----------------------------------------------------------------------
    def inject(
        self,
        kind: str = "status",
        *,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        body: Any = "Internal Server Error",
        headers: dict[str, str] | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        """Fail the next `times` matching requests after letting `skip` through (method "WRITE": any write)."""
        pattern = re.compile(path) if path else None
        with self._state:
            self.faults.append(Fault(kind, method, pattern, status, body, headers or {}, times, skip))

    def add_deployment(self, dep_id: str, label: str, project: str = "100", deleted: bool = False) -> None:
        item = {
            "id": dep_id,
            "projectId": project,
            "label": label,
            "key": f"server-{dep_id}-secretish",
            "deleted": deleted,
        }
        self.deployments.append(item)

    def add_experiment(self, key: str, project: str = "100", web: bool = False, **fields: Any) -> str:
        """An experiment made elsewhere (e.g. in the console), with its first version."""
        with self._state:
            body = {"projectId": project, "key": key, "variants": [{"key": "control"}, {"key": "treatment"}]}
            rid = self._create(body | {k: v for k, v in fields.items() if k in CREATE_FIELDS}, "console@example.com")
            exp = self.experiments[rid]
            exp.update({k: v for k, v in fields.items() if k not in CREATE_FIELDS})
            exp["_web"] = web
            self.history[rid][0]["flagConfig"] = self.public(exp)
            return rid

    def edit(self, rid: str, by: str = "carol@example.com", **fields: Any) -> None:
        """A change made in Amplitude's console behind expbot's back (it adds a version)."""
        with self._state:
            self.experiments[rid].update(fields)
            self._version(rid, by)

    def calls(self, method: str | None = None, path: str = "") -> list[Seen]:
        return [s for s in self.requests(method) if re.search(path, s.path)]

    # -- the server ---------------------------------------------------------------------------
    def _answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        with self._state:
            if seen.headers.get("authorization") != f"Bearer {self.key}":
                return Reply(401, "Invalid management API key")
            fault = self._fault(seen)
            if fault is not None and fault.kind == "drop":
                return Reply(drop=True)
            if fault is not None and fault.kind == "status":
                return Reply(fault.status, fault.body, dict(fault.headers), delay=self.latency)
            reply = self._route(seen)
            if fault is not None and fault.kind == "timeout_after_write":
                reply.delay = self.hold
            elif self.latency:
                reply.delay = self.latency
            return reply

    def _fault(self, seen: Seen) -> Fault | None:
        return take_fault(self.faults, lambda fault: fault.matches(seen))

    def _route(self, seen: Seen) -> Reply:
        body: Any = None
        if seen.body:
            try:
                body = json.loads(seen.body)
            except ValueError:
                return Reply(400, "Request body is not valid JSON")
        if seen.path == "/api/1/deployments" and seen.method == "GET":
            return self._page(self.deployments, "deployments", seen.query)
        if seen.path == "/api/1/experiments":
            if seen.method == "GET":
                return self._list(seen.query)
            if seen.method == "POST":
                return self._post(body)
        match = _EXP.match(seen.path)
        if match is None:
            return Reply(404, "Not Found")
        rid, tail, variant = match.group(1), match.group(2), match.group(3)
        exp = self.experiments.get(rid)
        if exp is None:
            return Reply(404, f"Experiment {rid} not found")
        if exp["projectId"] not in self.projects:
            return Reply(403, {"error": f"No access to project {exp['projectId']}"})
        if seen.method == "GET" and tail is None:
            return Reply(200, self.public(exp))
        if seen.method == "GET" and tail == "/versions":
            return Reply(200, list(reversed(self.history[rid])))
        if seen.method == "PATCH" and exp.get("_web"):
            return Reply(405, "Method Not Allowed: this experiment type cannot be edited with the management API")
        if seen.method == "PATCH" and tail is None:
            return self._patch(rid, exp, body)
        if seen.method == "PATCH" and variant is not None:
            return self._patch_variant(rid, exp, variant, body)
        return Reply(404, "Not Found")

    def _page(self, items: list[dict[str, Any]], name: str, query: dict[str, str]) -> Reply:
        start = int(query.get("cursor") or 0)
        limit = min(int(query.get("limit") or 1000), 1000)
        page: dict[str, Any] = {name: copy.deepcopy(items[start : start + limit])}
        if start + limit < len(items):
            page["nextCursor"] = str(start + limit)
        return Reply(200, page)

    def _list(self, query: dict[str, str]) -> Reply:
        project = query.get("projectId")
        if project is not None and project not in self.projects:
            return Reply(403, {"error": f"No access to project {project}"})
        found = [
            self.public(e)
            for rid, e in sorted(self.experiments.items(), key=lambda kv: -int(kv[0]))
            if e["projectId"] in self.projects
            and (project is None or e["projectId"] == project)
            and (query.get("key") is None or e["key"] == query["key"])
            and (query.get("includeArchived") == "true" or not e.get("archived"))
        ]
        return self._page(found, "experiments", query)

    def _post(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not body.get("projectId") or not body.get("key"):
            return Reply(400, "projectId and key are required")
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            return Reply(400, f"Unrecognized field(s): {', '.join(sorted(unknown))}")
        if str(body["projectId"]) not in self.projects:
            return Reply(403, {"error": f"No access to project {body['projectId']}"})
        if any(e["key"] == body["key"] and e["projectId"] == body["projectId"] for e in self.experiments.values()):
            return Reply(400, f"Flag with key {body['key']} already exists")
        rid = self._create(body, self.actor)
        return Reply(
            200, {"id": rid, "url": f"http://experiment.amplitude.com/amplitude/{body['projectId']}/config/{rid}"}
        )

    def _create(self, body: dict[str, Any], by: str) -> str:
        rid, self._next = str(self._next), self._next + 1
        variants = body.get("variants") or [{"key": "control"}, {"key": "treatment"}]
        self.experiments[rid] = {
            "id": rid, "projectId": str(body["projectId"]), "deployments": body.get("deployments") or [],
            "key": body["key"], "name": body.get("name") or body["key"], "description": body.get("description") or "",
            "decision": None, "decisionReason": None, "enabled": False,
            "evaluationMode": body.get("evaluationMode") or "remote",
            "bucketingKey": body.get("bucketingKey") or "amplitude_id",
            "bucketingSalt": f"salt{rid}", "bucketingUnit": "User", "variants": copy.deepcopy(variants),
            "rolledOutVariant": None, "rolloutPercentage": 0,
            "rolloutWeights": body.get("rolloutWeights") or {v["key"]: 1 for v in variants},
            "targetSegments": body.get("targetSegments") or [], "stickyBucketing": False,
            "startDate": None, "endDate": None,
            "experimentType": body.get("experimentType") or "hypothesis-testing", "deleted": False, "archived": False,
            "tags": [], "createdBy": by,
        }  # fmt: skip
        self.history[rid] = []
        self._version(rid, by)
        return rid

    def _patch(self, rid: str, exp: dict[str, Any], body: Any) -> Reply:
        if not isinstance(body, dict):
            return Reply(400, "Request body must be a JSON object")
        unknown = set(body) - EXPERIMENT_FIELDS
        if unknown:
            return Reply(400, f"Unrecognized field(s): {', '.join(sorted(unknown))}")
        rollout = body.get("rolloutPercentage", 0)
        if not isinstance(rollout, int | float) or not 0 <= rollout <= 100:
            return Reply(400, "rolloutPercentage must be a number from 0 to 100")
        if body.get("decision") not in (None, "rollout", "rollback", "continue-running"):
            return Reply(400, f"Invalid decision {body.get('decision')!r}")
        keys = {v["key"] for v in exp["variants"]}
        if body.get("rolledOutVariant") is not None and body["rolledOutVariant"] not in keys:
            return Reply(400, f"Unknown variant {body['rolledOutVariant']!r}")
        for field, value in body.items():
            exp["archived" if field == "archive" else field] = value
        self._version(rid, self.actor)
        return Reply(200, "OK")

    def _patch_variant(self, rid: str, exp: dict[str, Any], key: str, body: Any) -> Reply:
        if key not in {v["key"] for v in exp["variants"]}:
            return Reply(404, f"Variant {key} not found")
        if not isinstance(body, dict) or set(body) - VARIANT_FIELDS:
            return Reply(400, "Invalid variant fields")
        weight = body.get("rolloutWeight", 0)
        if not isinstance(weight, int | float) or weight < 0:
            return Reply(400, "rolloutWeight must be a number ≥ 0")
        if "rolloutWeight" in body:
            exp["rolloutWeights"] = {**exp["rolloutWeights"], key: body["rolloutWeight"]}
        for variant in exp["variants"]:
            if variant["key"] == key:
                variant.update({k: v for k, v in body.items() if k in ("name", "description", "payload")})
        self._version(rid, self.actor)
        return Reply(200, "OK")

    def _version(self, rid: str, by: str) -> None:
        self.writes += 1
        self._clock += 1
        exp = self.experiments[rid]
        when = (EPOCH + timedelta(minutes=self._clock)).isoformat().replace("+00:00", ".000Z")
        exp.update({"lastModifiedBy": by, "lastModifiedAt": when})
        number = len(self.history[rid]) + 1
        self.history[rid].append(
            {"createdAt": when, "createdBy": by, "version": number, "flagConfig": self.public(exp)}
        )

    @staticmethod
    def public(exp: dict[str, Any]) -> dict[str, Any]:
        shown = {k: copy.deepcopy(v) for k, v in exp.items() if not k.startswith("_")}
        decided = shown.get("decision") in ("rollout", "rollback")
        shown["state"] = "decision-made" if decided else "running" if shown.get("startDate") else "planning"
        return shown
