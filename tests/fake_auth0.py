"""A fake Auth0 tenant on loopback: token endpoint, experimentation API, its state machine, rate limit and faults."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fake_auth0_tenant import Refused, Reply, Tenant
from tests.httpfake import Loopback, take_fault
from tests.httpfake import Reply as LoopReply
from tests.httpfake import Seen as LoopSeen

ALL_SCOPES = frozenset(f"{a}:experimentation" for a in ("read", "create", "update", "delete"))
EXP = "/api/v2/experimentation/experiments"


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """What to do to the next matching request: answer an error, wait, drop it, or act and answer too late."""

    kind: str  # status, latency, drop, late
    status: int = 500
    code: str | None = None
    message: str = "Internal Server Error"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    method: str | None = None
    path: str | None = None
    writes_only: bool = False
    skip: int = 0
    times: int = 1


class FakeAuth0:
    """One tenant (flags, experiments, tokens, rate limit) behind a real HTTP server on 127.0.0.1."""

    def __init__(self, *, domain: str = "tenant.test.auth0.com", rate: float = 1000, burst: float = 1000) -> None:
        self.domain, self.client_id, self.client_secret = domain, "expbot-client", "sup3r-s3cret-value"
        self.scopes, self.token_ttl, self.late = set(ALL_SCOPES), 86400, 3.0
        self.rate, self.burst, self._bucket, self._filled = rate, burst, burst, time.monotonic()
        self.tenant = Tenant()
        self.tokens: dict[str, float] = {}
        self.revoked: set[str] = set()
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.writes = self.rejected = self.token_requests = 0
        self._lock = threading.RLock()
        self._loopback = Loopback(self._serve)

    # -- levers for tests ----------------------------------------------------------------------
    @property
    def experiments(self) -> dict[str, dict[str, Any]]:
        return self.tenant.experiments

    def add_flag(
        self, name: str, variations: tuple[str, ...] = ("control", "treatment"), status: str = "active"
    ) -> str:
        with self._lock:
            return self.tenant.add_flag(name, variations, status)

    def fail(self, kind: str, **how: Any) -> None:
        """Fault the next matching request (kind: status, latency, drop, late; match by method, path, writes_only)."""
        with self._lock:
            self.faults.append(Fault(kind, **how))

    def fail_write(self, kind: str, skip: int = 0) -> None:
        """The contract's fault kinds, on the next write after `skip` good ones."""
        faults = {
            "conflict": Fault("status", 409, "experiment_conflict", "The experiment was modified concurrently."),
            "stale": Fault("status", 409, "experiment_conflict", "The experiment was modified concurrently."),
            "server_error": Fault("status", 500, None, "Internal Server Error"),
            "timeout_after_write": Fault("late"),
            "dropped": Fault("drop"),
        }
        fault = faults[kind]
        fault.writes_only, fault.skip = True, skip
        self.fail(fault.kind, **{k: v for k, v in vars(fault).items() if k != "kind"})

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def revoke_tokens(self) -> None:
        with self._lock:
            self.revoked |= self.tokens.keys()

    def tamper(self, exp_id: str, **fields: Any) -> None:
        """A change made in the Auth0 dashboard, behind expbot's back."""
        with self._lock:
            self.tenant.experiments[exp_id].update(fields)
            self.tenant.touch(self.tenant.experiments[exp_id])

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if method in (None, s.method) and (path is None or path in s.path)]

    # -- HTTP ----------------------------------------------------------------------------------
    def _token(self, body: Any) -> Reply:
        body = body if isinstance(body, dict) else {}
        self.token_requests += 1
        if body.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}, {}
        if (body.get("client_id"), body.get("client_secret")) != (self.client_id, self.client_secret):
            return 401, {"error": "access_denied", "error_description": "Unauthorized"}, {}
        if body.get("audience") != f"https://{self.domain}/api/v2/":
            return 403, {"error": "access_denied", "error_description": "Service not enabled within domain"}, {}
        token = self.tenant.new_id("tok_", 24)
        self.tokens[token] = time.monotonic() + self.token_ttl
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}
        return 200, answer | {"scope": " ".join(sorted(self.scopes))}, {}

    def _limit_headers(self) -> dict[str, str]:
        reset = int(time.time() + math.ceil(max(0.0, 1 - self._bucket) / self.rate))
        remaining = str(max(0, int(self._bucket)))
        return {
            "X-RateLimit-Limit": f"{self.burst:g}",
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset": str(reset),
        }

    def _scope(self, method: str, path: str) -> str:
        if method == "GET" or path.endswith("/validate"):
            return "read:experimentation"
        if method == "DELETE":
            return "delete:experimentation"
        return "create:experimentation" if (method, path) == ("POST", EXP) else "update:experimentation"

    def _gate(self, seen: Seen) -> Reply | None:
        """Rate limit, token and scope, as the Management API checks them before the route."""
        now = time.monotonic()
        self._bucket, self._filled = min(self.burst, self._bucket + (now - self._filled) * self.rate), now
        if self._bucket < 1:
            self.rejected += 1
            limited = {"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached"}
            return 429, limited | {"errorCode": "too_many_requests"}, {}
        self._bucket -= 1
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens or token in self.revoked:
            return Refused(401, "Invalid token").reply()
        if self.tokens[token] <= now:
            return Refused(401, "Expired token received for JSON Web Token validation").reply()
        if (scope := self._scope(seen.method, seen.path)) not in self.scopes:
            message = f"Insufficient scope, expected any of: {scope}"
            return (
                403,
                {"statusCode": 403, "error": "Forbidden", "message": message, "errorCode": "insufficient_scope"},
                {},
            )
        return None

    def _fault(self, seen: Seen) -> Fault | None:
        write = seen.method != "GET" and seen.path.startswith(EXP) and not seen.path.endswith("/validate")

        def matches(fault: Fault) -> bool:
            if (fault.method or seen.method) != seen.method or (fault.path or "") not in seen.path:
                return False
            return not (fault.writes_only and not write) and (seen.path != "/oauth/token" or fault.path == seen.path)

        return take_fault(self.faults, matches)

    def answer(self, seen: Seen) -> tuple[Reply | None, float]:
        """The reply (None: hang up) and how long to wait before sending it."""
        with self._lock:
            self.seen.append(seen)
            fault = self._fault(seen)
            if fault and fault.kind == "drop":
                return None, 0.0
            if fault and fault.kind == "status":
                status, body, _ = Refused(fault.status, fault.message, fault.code).reply()
                return (status, body, fault.headers), 0.0
            delay = fault.delay if fault and fault.kind == "latency" else 0.0
            if seen.path == "/oauth/token":
                return self._token(seen.body), delay
            reply = self._gate(seen)
            if reply is None:
                before = json.dumps(self.experiments, sort_keys=True)
                try:
                    reply = self.tenant.route(seen.method, seen.path, seen.query, seen.body)
                except Refused as err:
                    reply = err.reply()
                self.writes += before != json.dumps(self.experiments, sort_keys=True)
            status, body, headers = reply
            reply = (status, body, self._limit_headers() | headers)
            return reply, self.late if fault and fault.kind == "late" else delay

    def _serve(self, raw: LoopSeen) -> LoopReply:
        """The loopback server's view of a request (raw body) to this fake's (JSON body), and back."""
        body = json.loads(raw.body) if raw.body.strip() else None
        reply, delay = self.answer(Seen(raw.method, raw.path, raw.query, raw.headers, body))
        if reply is None:
            return LoopReply(delay=delay, drop=True)
        status, payload, extra = reply
        return LoopReply(status, payload, {"Content-Type": "application/json"} | extra, delay)

    def start(self) -> FakeAuth0:
        self._loopback.start()
        return self

    @property
    def url(self) -> str:
        return self._loopback.url

    def stop(self) -> None:
        self._loopback.stop()
