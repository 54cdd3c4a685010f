"""A fake Auth0 tenant on loopback: token endpoint, experimentation API, its state machine, rate limit and faults."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fake_auth0_tenant import Refused, Reply, Tenant

ALL_SCOPES = frozenset(f"{a}:experimentation" for a in ("read", "create", "update", "delete"))
EXP = "/api/v2/experimentation/experiments"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a late answer is what the fault is for


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
        self._server: _Server | None = None
        self._release = threading.Event()

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
        for fault in self.faults:
            if (fault.method or seen.method) != seen.method or (fault.path or "") not in seen.path:
                continue
            if (fault.writes_only and not write) or (seen.path == "/oauth/token" and fault.path != "/oauth/token"):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            return fault
        return None

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

    def start(self) -> FakeAuth0:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                body = json.loads(raw) if raw.strip() else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply, delay = fake.answer(Seen(self.command, parts.path, dict(parse_qsl(parts.query)), headers, body))
                if delay:
                    fake._release.wait(delay)
                if reply is None:
                    self.close_connection = True
                    return
                status, payload, extra = reply
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in ({"Content-Type": "application/json"} | extra).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._release.set()  # wake any late answer still waiting
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
