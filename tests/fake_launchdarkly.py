"""A fake LaunchDarkly REST API v2 on loopback: checks the token, `LD-API-Version: beta` on experiment endpoints
and the media types, validates every request body against the official spec (tests/specs/launchdarkly), keeps
flags, experiments and iterations (tests/fake_launchdarkly_state.py), answers spec-shaped bodies and
`{code, message, id}` errors with rate-limit headers, and fails writes on demand."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.fake_launchdarkly_state import Experiment, Json, Refused, State
from tests.httpfake import FakeServer, Reply, Seen

SPEC = Path(__file__).parent / "specs" / "launchdarkly" / "schemas.json"
SEMANTIC = "domain-model=launchdarkly.semanticpatch"
_EXP = re.compile(r"^/api/v2/projects/([^/]+)/environments/([^/]+)/experiments(?:/([^/]+))?(/iterations)?$")
_FLAG = re.compile(r"^/api/v2/flags/([^/]+)(?:/([^/]+))?$")
FAULTS = ("conflict", "stale", "server_error", "bad_request", "unauthorized", "forbidden", "rate_limited")
FAULTS += ("timeout_after_write", "dropped")


@cache
def _components() -> Json:
    components: Json = json.loads(SPEC.read_text())["components"]
    return components


def spec_errors(schema: str, body: Any) -> list[str]:
    """What is wrong with `body` as the spec's `schema` (an empty list when it validates)."""
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": _components()})
    return [f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}" for e in validator.iter_errors(body)]


@dataclass
class Fault:
    kind: str
    skip: int
    message: str


class FakeLaunchDarkly(FakeServer):
    """LaunchDarkly for one project with `production` and `test` environments."""

    def __init__(self, token: str = "api-0123-test-token", project: str = "web") -> None:
        super().__init__()
        self.token, self.project = token, project
        self.state = State(project, ["production", "test"])
        self.invalid: list[str] = []
        self.writes = 0
        self.latency = 0.0
        self.hang = 5.0
        self.reset_in_ms = 1500
        self.retry_after: str | None = None  # a Retry-After header on 429s (LaunchDarkly's IP-based limit)
        self.reset_at_ms: int | None = None  # a fixed X-Ratelimit-Reset (epoch ms) instead of now + reset_in_ms
        self.remaining = {"global": 500, "route": 100}
        self._faults: list[Fault] = []
        self._mutex = threading.RLock()

    # -- levers for the tests ------------------------------------------------------------------
    def fail(self, kind: str, skip: int = 0, message: str = "") -> None:
        """Let `skip` writes through, then fail the next one with `kind` (one of FAULTS)."""
        assert kind in FAULTS, kind
        self._faults.append(Fault(kind, skip, message))

    def edit(self, change: Callable[[State], Any]) -> Any:
        """Change the account as a user of the LaunchDarkly UI would, under the fake's lock."""
        with self._mutex:
            return change(self.state)

    def bodies(self, method: str, suffix: str = "") -> list[Any]:
        return [s.json() for s in self.requests(method) if s.path.endswith(suffix) and s.body]

    # -- serving -------------------------------------------------------------------------------
    def _answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        with self._mutex:
            try:
                reply = self._serve(seen)
            except Refused as err:
                reply = self.error(err.status, err.code, err.message)
        reply.delay = max(reply.delay, self.latency)
        self.remaining["global"] -= 1
        self.remaining["route"] = max(0, self.remaining["route"] - 1)
        reply.headers.setdefault("X-Ratelimit-Global-Remaining", str(self.remaining["global"]))
        reply.headers.setdefault("X-Ratelimit-Route-Remaining", str(self.remaining["route"]))
        reset = self.reset_at_ms or int(time.time() * 1000) + self.reset_in_ms
        reply.headers.setdefault("X-Ratelimit-Reset", str(reset))
        return reply

    @staticmethod
    def error(status: int, code: str, message: str) -> Reply:
        return Reply(status, {"code": code, "message": message, "id": uuid.uuid4().hex})

    def _serve(self, seen: Seen) -> Reply:
        if seen.headers.get("authorization") != self.token:
            return self.error(401, "unauthorized", "Invalid access token")
        experiments = _EXP.match(seen.path)
        if experiments and seen.headers.get("ld-api-version") != "beta":
            return self.error(403, "forbidden", "Forbidden. Access to the requested resource was denied.")
        if seen.method in ("POST", "PATCH"):
            problem = self._media(seen)
            if problem:
                return problem
            if not (seen.method == "PATCH" and seen.query.get("dryRun") == "true"):
                fault = self._fault()
                if fault is not None and fault.kind != "timeout_after_write":
                    return self._failed(fault)
                reply = self._route(seen, experiments)
                if 200 <= reply.status < 300:
                    self.writes += 1
                if fault is not None:  # carried out, then answered too late
                    reply.delay = self.hang
                return reply
        return self._route(seen, experiments)

    def _media(self, seen: Seen) -> Reply | None:
        kind = seen.headers.get("content-type", "")
        if not kind.startswith("application/json"):
            return self.error(415, "unsupported_media_type", f"Unsupported content type {kind!r}")
        if seen.method == "PATCH" and _EXP.match(seen.path) and SEMANTIC not in kind:
            return self.error(400, "invalid_request", "Experiments are updated with a semantic patch")
        return None

    def _fault(self) -> Fault | None:
        if not self._faults:
            return None
        head = self._faults[0]
        if head.skip > 0:
            head.skip -= 1
            return None
        return self._faults.pop(0)

    def _failed(self, fault: Fault) -> Reply:
        said = fault.message
        if fault.kind == "dropped":
            return Reply(drop=True)
        if fault.kind == "rate_limited":
            reply = self.error(429, "rate_limited", said or "You've exceeded the API rate limit. Try again later.")
            reply.headers = {"X-Ratelimit-Route-Remaining": "0"}
            if self.retry_after is not None:
                reply.headers["Retry-After"] = self.retry_after
            return reply
        status, code, default = {
            "conflict": (409, "conflict", "Conflict. The resource was changed."),
            "stale": (409, "optimistic_locking_error", "Conflict. Optimistic lock error. Try again later."),
            "server_error": (500, "internal_server_error", "Internal server error"),
            "bad_request": (400, "invalid_request", "Invalid request body"),
            "unauthorized": (401, "unauthorized", "Invalid access token"),
            "forbidden": (403, "forbidden", "Forbidden. Access to the requested resource was denied."),
        }[fault.kind]
        return self.error(status, code, said or default)

    def _valid(self, schema: str, body: Any) -> None:
        problems = spec_errors(schema, body)
        if problems:
            self.invalid.append(f"{schema}: {problems}")
            raise Refused(400, "invalid_request", f"Invalid request body: {problems[0]}")

    def _route(self, seen: Seen, experiments: re.Match[str] | None) -> Reply:
        body = seen.json() if seen.body else None
        if experiments:
            project, env, key, iterations = experiments.groups()
            self._project(project)
            return self._experiments(seen, env, key, bool(iterations), body)
        flags = _FLAG.match(seen.path)
        if flags:
            self._project(flags.group(1))
            return self._flags(seen, flags.group(2), body)
        if seen.method == "GET" and seen.path == f"/api/v2/metrics/{self.project}":
            return Reply(200, self._page(self.state.metrics, seen, "totalCount"))
        if seen.method == "GET" and seen.path == f"/api/v2/projects/{self.project}/context-kinds":
            return Reply(200, {"items": self.state.context_kinds, "_links": {}})
        if seen.method == "GET" and seen.path == "/api/v2/projects":
            return Reply(200, {"items": [{"key": self.project, "name": self.project}], "totalCount": 1})
        return self.error(404, "not_found", f"Unknown resource {seen.path}")

    def _project(self, project: str) -> None:
        if project != self.project:
            raise Refused(404, "not_found", f"Unknown project {project}")

    @staticmethod
    def _page(items: list[Json], seen: Seen, total_key: str) -> Json:
        offset, limit = int(seen.query.get("offset", 0)), int(seen.query.get("limit", 20))
        return {"items": items[offset : offset + limit], total_key: len(items), "_links": {}}

    def _flags(self, seen: Seen, key: str | None, body: Any) -> Reply:
        if key is None and seen.method == "GET":
            env = seen.query.get("env")
            return Reply(200, self._page([self.state.flag_rep(k, env) for k in self.state.flags], seen, "totalCount"))
        if key is not None and seen.method == "GET":
            return Reply(200, self.state.flag_rep(key, seen.query.get("env")))
        if key is not None and seen.method == "PATCH":
            semantic = SEMANTIC in seen.headers.get("content-type", "")
            self._valid("flagSempatch" if semantic else "PatchWithComment", body)
            if not semantic:
                raise Refused(400, "invalid_request", "the fake supports semantic patches only")
            return Reply(200, self.state.patch_flag(key, body, seen.query.get("dryRun") == "true"))
        return self.error(405, "method_not_allowed", "Method not allowed")

    def _experiments(self, seen: Seen, env: str, key: str | None, iterations: bool, body: Any) -> Reply:
        if env not in self.state.environments:
            raise Refused(404, "not_found", f"Unknown environment {env}")
        expand = set(seen.query.get("expand", "").split(","))
        if key is None and seen.method == "GET":
            wanted = seen.query.get("lifecycleState", "active").split(",")
            found = [
                self.state.rep(e, expand)
                for (e_env, _), e in self.state.experiments.items()
                if e_env == env and ("archived" if e.rep.get("archivedDate") else "active") in wanted
            ]
            return Reply(200, self._page(found, seen, "total_count"))
        if key is None and seen.method == "POST":
            self._valid("ExperimentPost", body)
            return Reply(201, self.state.rep(self.state.create(env, body), expand | {"treatments"}))
        assert key is not None
        exp: Experiment = self.state.experiment(env, key)
        if iterations and seen.method == "POST":
            self._valid("IterationInput", body)
            return Reply(200, self.state.new_iteration(exp, body))
        if seen.method == "GET" and not iterations:
            return Reply(200, self.state.rep(exp, expand))
        if seen.method == "PATCH" and not iterations:
            self._valid("ExperimentPatchInput", body)
            for instruction in body["instructions"]:
                self.state.patch_experiment(exp, instruction)
            return Reply(200, self.state.rep(exp, expand))
        return self.error(405, "method_not_allowed", "Method not allowed")
