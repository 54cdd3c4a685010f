"""The shared HTTP client of the provider adapters: error mapping, bounded retries and rate-limit quota."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any, Self

import httpx

from providers import errors
from providers.errors import ProviderError

log = logging.getLogger("expbot.http")

ErrorParser = Callable[[httpx.Response], tuple[str | None, str]]
Sleep = Callable[[float], Awaitable[None]]

try:
    USER_AGENT = f"expbot/{metadata.version('expbot')}"
except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
    USER_AGENT = "expbot/0.0.0"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BACKOFF_BASE, BACKOFF_CAP = 0.5, 8.0
# Failures where the request certainly did not reach the server: even a non-repeatable write may be sent again.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _body(response: httpx.Response) -> Any:
    with contextlib.suppress(ValueError):
        return response.json()
    return None


def _text(response: httpx.Response) -> str:
    """The body as a message when it is short plain text, else the reason phrase (never an HTML page)."""
    text = response.text.strip()
    if not text or text.startswith("<"):
        return response.reason_phrase or f"HTTP {response.status_code}"
    return text if len(text) <= 500 else text[:499] + "…"


def _s(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def parse_generic_error(response: httpx.Response) -> tuple[str | None, str]:
    body = _body(response)
    if isinstance(body, dict):
        message = _s(body.get("message")) or _s(body.get("error_description")) or _s(body.get("detail"))
        code = _s(body.get("code")) or _s(body.get("errorCode")) or _s(body.get("error"))
        if message or code:
            return code, message or code or _text(response)
    return None, _text(response)


def parse_apple_error(response: httpx.Response) -> tuple[str | None, str]:
    """App Store Connect: `{"errors": [{"status", "code", "title", "detail", ...}]}`."""
    body = _body(response)
    listed = body.get("errors") if isinstance(body, dict) else None
    items = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
    if not items:
        return parse_generic_error(response)
    details = [_s(e.get("detail")) or _s(e.get("title")) for e in items]
    return _s(items[0].get("code")), "; ".join(d for d in details if d) or _text(response)


def parse_launchdarkly_error(response: httpx.Response) -> tuple[str | None, str]:
    """LaunchDarkly: `{"code", "message", "id"}`."""
    return parse_generic_error(response)  # `message` word for word, `code` such as optimistic_locking_error


def parse_auth0_error(response: httpx.Response) -> tuple[str | None, str]:
    """Auth0: `{"statusCode", "error", "message", "errorCode"?}`; its /oauth/token: `{"error", "error_description"}`."""
    body = _body(response)
    if isinstance(body, dict):
        code = _s(body.get("errorCode")) or _s(body.get("error"))
        message = _s(body.get("message")) or _s(body.get("error_description")) or code
        if message:
            return code, message
    return None, _text(response)


parse_amplitude_error: ErrorParser = parse_generic_error  # undocumented body: JSON error/message, else the text


_BY_STATUS: dict[int, type[ProviderError]] = {404: errors.NotFound, 409: errors.Conflict, 429: errors.RateLimited}
_BY_STATUS |= dict.fromkeys((400, 422), errors.BadRequest) | dict.fromkeys((401, 403), errors.Unauthorized)


def _number(value: str | None) -> float | None:
    with contextlib.suppress(ValueError):
        return number if math.isfinite(number := float(value or "nan")) else None
    return None


def _epoch(value: str | None) -> float | None:
    """A reset header as epoch seconds: LaunchDarkly sends milliseconds, Auth0 seconds (1e11 s is in year 5138)."""
    number = _number(value)
    return None if number is None else number / 1000 if number > 1e11 else number


def retry_delay(headers: httpx.Headers, now: float, *, use_reset: bool = True) -> float | None:
    """Seconds the provider asked us to wait: `Retry-After` (seconds or HTTP date), else a reset header."""
    if value := headers.get("Retry-After"):
        if (seconds := _number(value)) is not None:
            return max(0.0, seconds)
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = parsedate_to_datetime(value)
            return max(0.0, (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now)
    reset = _epoch(headers.get("X-RateLimit-Reset")) if use_reset else None
    return None if reset is None else max(0.0, reset - now)


@dataclass(frozen=True, slots=True)
class Quota:
    """What the provider said about our rate-limit budget on its last answer (for `expbot check`)."""

    provider: str
    limit: int | None
    remaining: int | None
    reset_at: datetime | None
    raw: str


_QUOTA_HEADERS = "X-Rate-Limit X-RateLimit-Limit X-RateLimit-Remaining X-Ratelimit-Global-Remaining".split()
_QUOTA_HEADERS += ["X-Ratelimit-Route-Remaining", "X-RateLimit-Reset"]


def _ints(values: list[str | None]) -> list[int]:
    return [int(n) for n in map(_number, values) if n is not None]


def parse_quota(provider: str, headers: httpx.Headers) -> Quota | None:
    present = {name: headers[name] for name in _QUOTA_HEADERS if name in headers}
    if not present:
        return None
    apple = [part.split(":", 1) for part in headers.get("X-Rate-Limit", "").split(";") if ":" in part]
    limits = _ints([headers.get("X-RateLimit-Limit")] + [v for k, v in apple if k.strip().endswith("-lim")])
    rems = [headers.get(f"X-RateLimit-{part}Remaining") for part in ("", "Global-", "Route-")]  # case-insensitive
    remaining = _ints(rems + [v for k, v in apple if k.strip().endswith("-rem")])
    reset = _epoch(headers.get("X-RateLimit-Reset"))
    reset_at = datetime.fromtimestamp(reset, UTC) if reset is not None else None
    raw = "; ".join(f"{name}: {value}" for name, value in present.items())
    return Quota(provider, min(limits, default=None), min(remaining, default=None), reset_at, raw)


class HttpClient:
    """One provider's HTTP client: maps answers into the error tree, retries what is safe to retry."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        parse_error: ErrorParser = parse_generic_error,
        stale_codes: frozenset[str] = frozenset(),
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider, self.parse_error, self.stale_codes, self.max_wait = provider, parse_error, stale_codes, max_wait
        self.max_retries, self._sleep, self._rng, self._clock = max(0, max_retries), sleep, rng, clock
        self.last_quota: Quota | None = None
        fixed = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._client = httpx.AsyncClient(
            base_url=base_url, auth=auth, headers=fixed, timeout=timeout, transport=transport
        )

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
    ) -> httpx.Response:
        """Send one call (retried within bounds); a 2xx answer is returned, anything else raised."""
        method = method.upper()
        safe = method in REPEATABLE_METHODS if repeatable is None else repeatable
        attempt = 0
        while True:
            request = self._client.build_request(method, path, json=json, params=params, headers=headers)
            started = time.perf_counter()
            try:
                response = await self._client.send(request)
            except httpx.TransportError as exc:
                self._log(request, type(exc).__name__, started)
                delay, reason = self._after_failure(request, exc, safe, attempt), type(exc).__name__
            else:
                self._log(request, response.status_code, started)
                self.last_quota = parse_quota(self.provider, response.headers) or self.last_quota
                if response.is_success:
                    return response
                delay, reason = self._after_answer(response, safe, attempt), str(response.status_code)
            attempt += 1
            log.warning(
                "%s %s: %s, retry %d/%d in %.2f s", method, request.url.path, reason, attempt, self.max_retries, delay
            )
            await self._sleep(delay)

    def _after_failure(self, request: httpx.Request, exc: httpx.TransportError, safe: bool, attempt: int) -> float:
        what = f"{request.method} {request.url.path}"
        kind = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not safe and not isinstance(exc, _NEVER_SENT):
            detail = f"{what} was sent but no answer came back ({kind}); it may have been carried out"
            raise errors.OutcomeUnknown(self.provider, detail) from exc
        if attempt >= self.max_retries:
            raise errors.Unavailable(self.provider, f"{what} failed after {attempt + 1} attempts ({kind})") from exc
        return self._backoff(attempt)

    def _after_answer(self, response: httpx.Response, safe: bool, attempt: int) -> float:
        status = response.status_code
        hinted = retry_delay(response.headers, self._clock(), use_reset=status == 429) if status in (429, 503) else None
        retryable = status in (429, 503) or (safe and status in (502, 504))
        if not retryable or attempt >= self.max_retries:
            raise self.error_for(response, hinted, repeatable=safe)
        delay = hinted if hinted else self._backoff(attempt)
        if delay > self.max_wait:  # do not hold the caller: tell the user when to try again
            raise self.error_for(response, delay, repeatable=safe)
        return delay

    def error_for(
        self, response: httpx.Response, retry_after: float | None = None, repeatable: bool = True
    ) -> ProviderError:
        """The error-tree member for a non-2xx answer, carrying the provider's own code and message."""
        try:
            code, message = self.parse_error(response)
        except Exception:  # a parser bug must not hide the provider's answer
            code, message = None, _text(response)
        status = response.status_code
        cls = _BY_STATUS.get(status, errors.Unavailable if status >= 500 else ProviderError)
        if status == 409 and code in self.stale_codes:
            cls = errors.Stale
        elif status in (502, 504) and not repeatable:  # a gateway answered for a server that may have acted
            cls = errors.OutcomeUnknown
        return cls(self.provider, message, status=status, code=code, retry_after=retry_after)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base·2^attempt (capped)."""
        return min(self.max_wait, BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt) * (0.5 + self._rng() / 2)

    def _log(self, request: httpx.Request, outcome: int | str, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        level = logging.DEBUG if isinstance(outcome, int) and outcome < 400 else logging.INFO
        log.log(level, "%s %s %s -> %s (%.0f ms)", self.provider, request.method, request.url.path, outcome, elapsed)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return decode(await self.request("GET", path, params=params))

    async def send_json(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        repeatable: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        return decode(await self.request(method, path, json=body, headers=headers, repeatable=repeatable))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def decode(response: httpx.Response) -> Any:
    """A success body: parsed JSON, None when empty (204), else the text (Amplitude answers "OK")."""
    if response.status_code == 204 or not response.content.strip():
        return None
    with contextlib.suppress(ValueError):
        return response.json()
    return response.text
