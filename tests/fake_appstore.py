"""A fake App Store Connect API on loopback: verifies JWTs, validates against the spec, keeps state, fails on demand."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fake_appstore_routes import Routes
from tests.fake_appstore_spec import body_errors, query_errors
from tests.fake_appstore_store import ApiError, Store
from tests.httpfake import Loopback, Reply, Seen, take_fault

LATE = 30.0  # an answer this late is never waited for: the client has timed out (the server is released on stop)
UNAUTHORIZED = ApiError(
    401, "NOT_AUTHORIZED", "Authentication credentials are missing or invalid.",
    "Provide a properly configured and signed bearer token, and make sure that it has not expired.",
)  # fmt: skip
_STATE = "The request cannot be fulfilled because of the state of another resource."
_TOO_MANY = "We've received too many requests for this API. Please wait and try again or slow down your request rate."
FAULTS: dict[str, ApiError] = {
    "conflict": ApiError(409, "STATE_ERROR", _STATE, "The experiment is not in a state that allows this."),
    "stale": ApiError(409, "STATE_ERROR", _STATE, "The experiment was changed by another request."),
    "server_error": ApiError(500, "UNEXPECTED_ERROR", "An unexpected error occurred.", "An unexpected error."),
    "unavailable": ApiError(503, "SERVICE_UNAVAILABLE", "Service Unavailable", "Temporarily unavailable."),
    "rate_limited": ApiError(429, "RATE_LIMIT_EXCEEDED", "The request rate limit has been reached.", _TOO_MANY),
    "unauthorized": UNAUTHORIZED,
    "forbidden": ApiError(403, "FORBIDDEN_ERROR", "This request is forbidden for security reasons", "Not allowed."),
    "unprocessable": ApiError(422, "ENTITY_UNPROCESSABLE", "The request entity is not processable.", "Not valid."),
}
WRITES = {"POST", "PATCH", "DELETE"}


@dataclass
class Fault:
    kind: str
    times: int
    skip: int
    where: str  # "write", "read" or "any"
    path: str | None


class FakeAppStore(Routes):
    """State, routes and levers. Every request is in `seen`; spec violations are answered and kept in `invalid`."""

    def __init__(self, issuer: str, key_id: str, public_key: ec.EllipticCurvePublicKey, page_size: int = 200) -> None:
        self.issuer, self.key_id, self.public_key, self.page_size = issuer, key_id, public_key, page_size
        self.state = Store()
        self.seen: list[Seen] = []
        self.invalid: list[str] = []
        self.tokens: list[str] = []
        self.latency = 0.0
        self.writes = 0
        self.quota_limit, self.quota_used = 3500, 0
        self.reject_tokens = 0
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._loopback = Loopback(self.answer)
        self._routes: list[tuple[str, re.Pattern[str], str, Callable[..., tuple[int, Any]]]] = []
        for method, template, handler in self._table():
            pattern = re.compile("^" + re.sub(r"\{id\}", r"([^/]+)", template) + "$")
            self._routes.append((method, pattern, template, handler))

    # -- levers --------------------------------------------------------------------------------
    def fail(self, kind: str, times: int = 1, skip: int = 0, where: str = "write", path: str | None = None) -> None:
        """Let `skip` matching requests through, then fail `times` of them (`kind` in FAULTS, or
        `timeout_after_write`: carried out, answered too late; `dropped`: hung up on before acting)."""
        with self._lock:
            self._faults.append(Fault(kind, times, skip, where, path))

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if method in (None, s.method) and (path is None or s.path.startswith(path))]

    # -- serving -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._loopback.url

    def start(self) -> FakeAppStore:
        self._loopback.start()
        return self

    def stop(self) -> None:
        self._loopback.stop()

    # -- answering -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        left = max(0, self.quota_limit - self.quota_used)
        return {"X-Rate-Limit": f"user-hour-lim:{self.quota_limit};user-hour-rem:{left};"}

    def _error(self, err: ApiError) -> Reply:
        return Reply(err.status, err.body(), self._headers())

    def _fault(self, seen: Seen) -> Fault | None:
        kind = "write" if seen.method in WRITES else "read"
        return take_fault(
            self._faults,
            lambda fault: fault.where in (kind, "any") and (fault.path is None or seen.path.startswith(fault.path)),
        )

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        if self.latency:  # received now, acted on later
            self._loopback.wait(self.latency)
        with self._lock:
            self.quota_used += 1
            if (problem := self._check_token(seen.headers.get("authorization", ""))) is not None:
                return self._error(problem)
            fault = self._fault(seen)
            if fault is not None and fault.kind == "dropped":
                return Reply(drop=True)
            if fault is not None and fault.kind in FAULTS:
                return self._error(FAULTS[fault.kind])
            try:
                status, body = self._route(seen)
            except ApiError as err:
                return self._error(err)
            if seen.method in WRITES:
                self.writes += 1
            return Reply(status, body, self._headers(), delay=LATE if fault is not None else 0.0)

    def _check_token(self, header: str) -> ApiError | None:
        if self.reject_tokens > 0:
            self.reject_tokens -= 1
            return UNAUTHORIZED
        token = header.removeprefix("Bearer ")
        try:
            head = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], audience="appstoreconnect-v1", issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWTError:
            return UNAUTHORIZED
        if head.get("kid") != self.key_id or head.get("typ") != "JWT" or claims["exp"] - claims["iat"] > 20 * 60:
            return UNAUTHORIZED
        if token not in self.tokens:
            self.tokens.append(token)
        return None

    def _route(self, seen: Seen) -> tuple[int, Any]:
        for method, pattern, template, handler in self._routes:
            match = pattern.match(seen.path)
            if match and method == seen.method:
                problems = query_errors(template, method.lower(), seen.query)
                body = None
                if method in ("POST", "PATCH"):
                    if not seen.headers.get("content-type", "").startswith("application/json"):
                        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type", "Use application/json")
                    body = json.loads(seen.body or b"null")
                    problems += body_errors(template, method.lower(), body)
                if problems:
                    self.invalid += [f"{method} {seen.path}: {p}" for p in problems]
                    status, code = (
                        (422, "ENTITY_UNPROCESSABLE") if body is not None else (400, "PARAMETER_ERROR.INVALID")
                    )
                    raise ApiError(status, code, "The request is not valid.", "; ".join(problems))
                args = [*match.groups(), body] if body is not None else list(match.groups())
                return handler(seen.query, *args)  # type: ignore[no-any-return]
        raise ApiError(404, "NOT_FOUND", "The specified resource does not exist", f"No route {seen.method} {seen.path}")
