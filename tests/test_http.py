"""The shared provider HTTP client against a real loopback server: faults, retries, errors, paging, quota, auth."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from providers.auth import AppStoreJwt, BearerKey, ClientCredentials, RawToken
from providers.errors import (
    BadRequest,
    Conflict,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Stale,
    Unauthorized,
    Unavailable,
)
from providers.http import (
    USER_AGENT,
    ErrorParser,
    HttpClient,
    parse_amplitude_error,
    parse_apple_error,
    parse_auth0_error,
    parse_generic_error,
    parse_launchdarkly_error,
)
from providers.paging import pages_checkpoint, pages_cursor, pages_links_next, pages_offset
from tests.httpfake import FakeServer, Reply, Seen

NOW = 1_900_000_000.0  # the injected clock: 2030-03-17, far from the test machine's own


class Sleeps:
    """Stands in for asyncio.sleep: records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client_for(server: FakeServer, sleeps: Sleeps, provider: str = "test", **options: Any) -> HttpClient:
    options.setdefault("clock", lambda: NOW)
    return HttpClient(provider, server.url, sleep=sleeps, rng=lambda: 0.5, **options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- retries and waiting ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"X-Ratelimit-Reset": str(int((NOW + 2.5) * 1000)), "X-Ratelimit-Route-Remaining": "0"}, 2.5),
        ({"x-ratelimit-reset": str(int(NOW + 4)), "x-ratelimit-remaining": "0", "x-ratelimit-limit": "2"}, 4.0),
    ],
    ids=["retry-after-seconds", "retry-after-http-date", "launchdarkly-reset-ms", "auth0-reset-seconds"],
)
async def test_429_waits_as_long_as_the_provider_asks_then_retries(
    server: FakeServer, sleeps: Sleeps, headers: dict[str, str], expected: float
) -> None:
    server.script("GET", "/things", Reply(429, {"message": "slow down"}, headers), Reply(200, {"ok": True}))
    async with client_for(server, sleeps) as client:
        assert await client.get_json("/things") == {"ok": True}
    assert sleeps.delays == [pytest.approx(expected)]
    assert len(server.requests("GET", "/things")) == 2


async def test_503_then_200_succeeds_after_a_backoff(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(503, "Service Unavailable"), Reply(200, {"ok": 1}))
    async with client_for(server, sleeps) as client:
        assert await client.get_json("/x") == {"ok": 1}
    assert sleeps.delays == [pytest.approx(0.375)]  # 0.5 s base, jitter 0.5 → 75 %


async def test_backoff_grows_and_ends_in_unavailable(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(503, "down for maintenance"))
    async with client_for(server, sleeps) as client:
        with pytest.raises(Unavailable) as info:
            await client.get_json("/x")
    assert type(info.value) is Unavailable and info.value.status == 503
    assert info.value.detail == "down for maintenance"
    assert sleeps.delays == [pytest.approx(0.375), pytest.approx(0.75), pytest.approx(1.5)]
    assert len(server.requests()) == 4


@pytest.mark.parametrize(("status", "error"), [(429, RateLimited), (503, Unavailable)])
async def test_a_wait_over_max_wait_is_not_waited_but_reported(
    server: FakeServer, sleeps: Sleeps, status: int, error: type[ProviderError]
) -> None:
    body = {"code": "rate_limited", "message": "You have exceeded the rate limit"}
    server.script("POST", "/x", Reply(status, body, {"Retry-After": "120"}))
    async with client_for(server, sleeps, max_wait=30.0) as client:
        with pytest.raises(error) as info:
            await client.send_json("POST", "/x", {"a": 1})
    assert type(info.value) is error
    assert info.value.retry_after == 120.0 and info.value.status == status
    assert sleeps.delays == []
    assert len(server.requests()) == 1


async def test_429_until_the_retries_run_out_is_rate_limited(server: FakeServer, sleeps: Sleeps) -> None:
    body = {"errors": [{"status": "429", "code": "RATE_LIMIT_EXCEEDED", "title": "Rate limit", "detail": "Too many"}]}
    server.script("GET", "/v1/apps", Reply(429, body, {"Retry-After": "1"}))
    async with client_for(server, sleeps, parse_error=parse_apple_error, max_retries=3) as client:
        with pytest.raises(RateLimited) as info:
            await client.get_json("/v1/apps")
    assert (info.value.code, info.value.detail, info.value.retry_after) == ("RATE_LIMIT_EXCEEDED", "Too many", 1.0)
    assert sleeps.delays == [1.0, 1.0, 1.0]
    assert len(server.requests()) == 4


async def test_a_get_whose_connection_is_dropped_is_retried(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(drop=True), Reply(200, {"ok": 1}))
    async with client_for(server, sleeps) as client:
        assert await client.get_json("/x") == {"ok": 1}
    assert len(server.requests("GET", "/x")) == 2 and len(sleeps.delays) == 1


async def test_a_post_whose_connection_is_dropped_is_outcome_unknown_and_sent_once(
    server: FakeServer, sleeps: Sleeps
) -> None:
    server.script("POST", "/x", Reply(drop=True), Reply(201, {"id": "twice"}))
    async with client_for(server, sleeps) as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.send_json("POST", "/x", {"name": "exp"})
    assert "may have been carried out" in info.value.detail
    assert len(server.requests("POST", "/x")) == 1 and sleeps.delays == []


async def test_a_post_slower_than_the_read_timeout_is_outcome_unknown_and_not_repeated(
    server: FakeServer, sleeps: Sleeps
) -> None:
    server.script("POST", "/x", Reply(201, {"id": "late"}, delay=10), Reply(201, {"id": "again"}))
    async with client_for(server, sleeps, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.send_json("POST", "/x", {"name": "exp"})
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(server.requests("POST", "/x")) == 1 and sleeps.delays == []


async def test_a_slow_get_is_retried(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(200, {"n": 1}, delay=10), Reply(200, {"n": 2}))
    async with client_for(server, sleeps, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        assert await client.get_json("/x") == {"n": 2}
    assert len(server.requests("GET", "/x")) == 2


@pytest.mark.parametrize("status", [429, 503])
async def test_a_post_refused_with_429_or_503_was_not_acted_on_and_is_retried(
    server: FakeServer, sleeps: Sleeps, status: int
) -> None:
    server.script("POST", "/x", Reply(status, {"message": "busy"}, {"Retry-After": "2"}), Reply(201, {"id": "e1"}))
    async with client_for(server, sleeps) as client:
        assert await client.send_json("POST", "/x", {"name": "exp"}) == {"id": "e1"}
    assert sleeps.delays == [2.0]
    assert [s.json() for s in server.requests("POST", "/x")] == [{"name": "exp"}] * 2


async def test_a_gateway_error_repeats_a_get_but_not_a_post(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(502, "<html>Bad Gateway</html>"), Reply(200, {"ok": 1}))
    server.script("POST", "/x", Reply(504, "<html>Gateway Timeout</html>"), Reply(201, {"id": "twice"}))
    async with client_for(server, sleeps) as client:
        assert await client.get_json("/x") == {"ok": 1}
        with pytest.raises(OutcomeUnknown) as info:
            await client.send_json("POST", "/x", {})
    assert info.value.status == 504 and info.value.detail == "Gateway Timeout"
    assert len(server.requests("POST", "/x")) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_closed_port_is_retried_then_unavailable(sleeps: Sleeps, method: str) -> None:
    client = HttpClient("test", f"http://127.0.0.1:{closed_port()}", sleep=sleeps, rng=lambda: 0.5)
    async with client:
        with pytest.raises(Unavailable) as info:
            await client.request(method, "/x", json={} if method == "POST" else None)
    assert type(info.value) is Unavailable and "ConnectError" in info.value.detail
    assert len(sleeps.delays) == 3


# -- error bodies into the error tree ---------------------------------------------------------------------
APPLE_TWO = {
    "errors": [
        {
            "id": "1",
            "status": "409",
            "code": "ENTITY_ERROR.ATTRIBUTE.INVALID",
            "title": "An attribute value is invalid.",
            "detail": "The trafficProportion must be between 1 and 100.",
            "source": {"pointer": "/data/attributes/trafficProportion"},
        },
        {"status": "409", "code": "STATE_ERROR", "title": "State", "detail": "The experiment has already started."},
    ]
}
APPLE_403 = {"errors": [{"status": "403", "code": "FORBIDDEN_ERROR", "title": "Forbidden", "detail": "Role lacks it."}]}
LD_404 = {"code": "not_found", "message": "Unknown experiment key checkout", "id": "req-1"}
LD_400 = {"code": "invalid_request", "message": "Invalid semantic patch instruction", "id": "req-2"}
AUTH0_403 = {
    "statusCode": 403,
    "error": "Forbidden",
    "message": "Insufficient scope, expected any of: update:experimentation",
    "errorCode": "insufficient_scope",
}
AUTH0_409 = {"statusCode": 409, "error": "Conflict", "message": "One active experiment", "errorCode": "active_limit"}
AUTH0_400 = {"statusCode": 400, "error": "Bad Request", "message": "Payload validation error: 'name' is required"}
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


AMPLITUDE_TEXT = "  Invalid request: flag key missing\n"
AMPLITUDE_JSON = {"error": "Invalid management API key"}


@pytest.mark.parametrize(
    ("parser", "status", "body", "error", "code", "detail"),
    [
        pytest.param(
            parse_apple_error,
            409,
            APPLE_TWO,
            Conflict,
            "ENTITY_ERROR.ATTRIBUTE.INVALID",
            "The trafficProportion must be between 1 and 100.; The experiment has already started.",
            id="apple-errors-array",
        ),
        pytest.param(
            parse_apple_error, 403, APPLE_403, Unauthorized, "FORBIDDEN_ERROR", "Role lacks it.", id="apple-403"
        ),
        pytest.param(parse_launchdarkly_error, 404, LD_404, NotFound, "not_found", LD_404["message"], id="ld-404"),
        pytest.param(
            parse_launchdarkly_error, 400, LD_400, BadRequest, "invalid_request", LD_400["message"], id="ld-400"
        ),
        pytest.param(
            parse_auth0_error,
            403,
            AUTH0_403,
            Unauthorized,
            "insufficient_scope",
            AUTH0_403["message"],
            id="auth0-errorcode",
        ),
        pytest.param(parse_auth0_error, 409, AUTH0_409, Conflict, "active_limit", AUTH0_409["message"], id="auth0-409"),
        pytest.param(
            parse_auth0_error, 400, AUTH0_400, BadRequest, "Bad Request", AUTH0_400["message"], id="auth0-no-errorcode"
        ),
        pytest.param(
            parse_amplitude_error, 400, AMPLITUDE_TEXT, BadRequest, None, AMPLITUDE_TEXT.strip(), id="amplitude-text"
        ),
        pytest.param(
            parse_amplitude_error,
            401,
            AMPLITUDE_JSON,
            Unauthorized,
            AMPLITUDE_JSON["error"],
            AMPLITUDE_JSON["error"],
            id="amplitude-json",
        ),
        pytest.param(parse_generic_error, 502, HTML_502, Unavailable, None, "Bad Gateway", id="html-502-page"),
        pytest.param(parse_launchdarkly_error, 500, "", Unavailable, None, "Internal Server Error", id="empty-500"),
        pytest.param(parse_apple_error, 404, "not json {", NotFound, None, "not json {", id="broken-json-404"),
        pytest.param(parse_auth0_error, 418, b"", ProviderError, None, "I'm a Teapot", id="other-4xx"),
        pytest.param(
            parse_generic_error, 422, {"message": "bad weight"}, BadRequest, None, "bad weight", id="generic-422"
        ),
    ],
)
async def test_each_provider_error_body_maps_into_the_error_tree(
    server: FakeServer,
    sleeps: Sleeps,
    parser: ErrorParser,
    status: int,
    body: Any,
    error: type[ProviderError],
    code: str | None,
    detail: str,
) -> None:
    server.script("GET", "/x", Reply(status, body))
    async with client_for(server, sleeps, parse_error=parser, max_retries=0) as client:
        with pytest.raises(ProviderError) as info:
            await client.get_json("/x")
    assert type(info.value) is error
    assert (info.value.status, info.value.code, info.value.detail) == (status, code, detail)
    assert str(info.value) == f"test: {detail}"


async def test_409_optimistic_locking_is_stale_and_other_409s_are_conflicts(server: FakeServer, sleeps: Sleeps) -> None:
    locked = {"code": "optimistic_locking_error", "message": "Conflict. Optimistic lock error. Try again later."}
    server.script("PATCH", "/locked", Reply(409, locked))
    server.script("PATCH", "/other", Reply(409, {"code": "conflict", "message": "Experiment is archived"}))
    options: dict[str, Any] = {"parse_error": parse_launchdarkly_error, "stale_codes": frozenset({locked["code"]})}
    async with client_for(server, sleeps, "launchdarkly", **options) as client:
        with pytest.raises(Stale) as stale:
            await client.send_json("PATCH", "/locked", {"instructions": []})
        with pytest.raises(Conflict) as conflict:
            await client.send_json("PATCH", "/other", {"instructions": []})
    assert stale.value.detail == locked["message"] and stale.value.code == "optimistic_locking_error"
    assert type(conflict.value) is Conflict and conflict.value.detail == "Experiment is archived"


async def test_a_parser_that_fails_still_yields_the_mapped_error(server: FakeServer, sleeps: Sleeps) -> None:
    def broken(response: httpx.Response) -> tuple[str | None, str]:
        raise KeyError("oops")

    server.script("GET", "/x", Reply(404, {"weird": True}))
    async with client_for(server, sleeps, parse_error=broken) as client:
        with pytest.raises(NotFound):
            await client.get_json("/x")


async def test_success_bodies_headers_and_user_agent(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("POST", "/created", Reply(201, {"id": "e1"}))
    server.script("PATCH", "/ok", Reply(200, "OK"))
    server.script("DELETE", "/gone", Reply(204))
    patch = {"Content-Type": "application/json; domain-model=launchdarkly.semanticpatch"}
    async with client_for(server, sleeps, headers={"LD-API-Version": "20240415"}) as client:
        assert await client.send_json("POST", "/created", {"name": "exp"}) == {"id": "e1"}
        assert await client.send_json("PATCH", "/ok", {"enabled": True}, headers=patch) == "OK"
        assert await client.send_json("DELETE", "/gone", None) is None
    created, ok, gone = server.seen
    assert created.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("expbot/")
    assert created.headers["content-type"] == "application/json" and created.json() == {"name": "exp"}
    assert ok.headers["content-type"] == patch["Content-Type"] and ok.headers["ld-api-version"] == "20240415"
    assert gone.body == b""


# -- paging -----------------------------------------------------------------------------------------------
async def collect(pages: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in pages]


async def test_pages_links_next_follows_absolute_and_relative_links(server: FakeServer, sleeps: Sleeps) -> None:
    def page(seen: Seen) -> Reply:
        cursor = seen.query.get("cursor", "1")
        nxt = {"1": f"{server.url}/v1/items?cursor=2&limit=2", "2": "/v1/items?cursor=3&limit=2"}.get(cursor)
        links = {"self": "…", **({"next": nxt} if nxt else {})}
        return Reply(200, {"data": [f"{cursor}a", f"{cursor}b"], "links": links})

    server.handle("GET", "/v1/items", page)
    async with client_for(server, sleeps) as client:
        items = await collect(pages_links_next(client, "/v1/items", {"limit": 2}))
    assert items == ["1a", "1b", "2a", "2b", "3a", "3b"]
    expected = [{"limit": "2"}, {"cursor": "2", "limit": "2"}, {"cursor": "3", "limit": "2"}]
    assert [s.query for s in server.requests()] == expected


async def test_pages_links_next_will_not_carry_credentials_to_another_host(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/v1/items", Reply(200, {"data": [1], "links": {"next": "https://evil.example/v1/items"}}))
    async with client_for(server, sleeps) as client:
        with pytest.raises(ProviderError, match="another host"):
            await collect(pages_links_next(client, "/v1/items"))
    assert len(server.requests()) == 1


async def test_paging_stops_at_the_page_cap_when_the_server_never_ends(server: FakeServer, sleeps: Sleeps) -> None:
    counter = itertools.count(1)
    server.handle("GET", "/c", lambda seen: Reply(200, {"items": [1], "nextCursor": f"c{next(counter)}"}))
    server.script("GET", "/same", Reply(200, {"items": [1], "next": "again"}))
    async with client_for(server, sleeps) as client:
        with pytest.raises(ProviderError, match="after 5 pages"):
            await collect(pages_cursor(client, "/c", None, "items", max_pages=5))
        with pytest.raises(ProviderError, match="same next page twice"):
            await collect(pages_checkpoint(client, "/same", None, "items"))
    assert len(server.requests("GET", "/c")) == 5
    assert len(server.requests("GET", "/same")) == 2


async def test_pages_cursor_sends_next_cursor_until_there_is_none(server: FakeServer, sleeps: Sleeps) -> None:
    pages = {None: (["a", "b"], "c2"), "c2": (["c", "d"], "c3"), "c3": (["e"], None)}

    def page(seen: Seen) -> Reply:
        items, nxt = pages[seen.query.get("cursor")]
        return Reply(200, {"experiments": items, **({"nextCursor": nxt} if nxt else {})})

    server.handle("GET", "/api/1/experiments", page)
    async with client_for(server, sleeps) as client:
        items = await collect(pages_cursor(client, "/api/1/experiments", {"limit": 2}, "experiments"))
    assert items == ["a", "b", "c", "d", "e"]
    assert [s.query.get("cursor") for s in server.requests()] == [None, "c2", "c3"]
    assert all(s.query["limit"] == "2" for s in server.requests())


@pytest.mark.parametrize("style", ["totalCount", "_links", "short-page"])
async def test_pages_offset_walks_three_pages(server: FakeServer, sleeps: Sleeps, style: str) -> None:
    everything = [{"key": f"exp-{n}"} for n in range(5)]
    path = "/api/v2/projects/p/experiments"

    def page(seen: Seen) -> Reply:
        offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
        body: dict[str, Any] = {"items": everything[offset : offset + limit]}
        if style == "totalCount":
            body["totalCount"] = len(everything)
        if style == "_links":
            body["_links"] = {"self": {"href": path}}
            if offset + limit < len(everything):
                body["_links"]["next"] = {"href": f"{path}?limit={limit}&offset={offset + limit}", "type": "json"}
        return Reply(200, body)

    server.handle("GET", path, page)
    async with client_for(server, sleeps) as client:
        items = await collect(pages_offset(client, path, {"expand": "draftIteration"}, limit=2))
    assert items == everything
    assert [s.query["offset"] for s in server.requests()] == ["0", "2", "4"]
    assert server.requests()[0].query == {"expand": "draftIteration", "limit": "2", "offset": "0"}


async def test_pages_checkpoint_sends_take_and_from(server: FakeServer, sleeps: Sleeps) -> None:
    pages = {None: ([1, 2], "cp1"), "cp1": ([3, 4], "cp2"), "cp2": ([5], None)}

    def page(seen: Seen) -> Reply:
        items, nxt = pages[seen.query.get("from")]
        return Reply(200, {"experiments": items, **({"next": nxt} if nxt else {})})

    server.handle("GET", "/api/v2/experiments", page)
    async with client_for(server, sleeps) as client:
        items = await collect(pages_checkpoint(client, "/api/v2/experiments", None, "experiments", take=2))
    assert items == [1, 2, 3, 4, 5]
    expected = [{"take": "2"}, {"take": "2", "from": "cp1"}, {"take": "2", "from": "cp2"}]
    assert [s.query for s in server.requests()] == expected


# -- rate-limit quota -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "limit", "remaining", "reset_at"),
    [
        ({"X-Rate-Limit": "user-hour-lim:3500;user-hour-rem:500;"}, 3500, 500, None),
        (
            {
                "X-Ratelimit-Global-Remaining": "90",
                "X-Ratelimit-Route-Remaining": "7",
                "X-Ratelimit-Reset": str(int((NOW + 10) * 1000)),
            },
            None,
            7,
            datetime.fromtimestamp(NOW + 10, UTC),
        ),
        (
            {"x-ratelimit-limit": "50", "x-ratelimit-remaining": "49", "x-ratelimit-reset": str(int(NOW + 1))},
            50,
            49,
            datetime.fromtimestamp(NOW + 1, UTC),
        ),
    ],
    ids=["apple", "launchdarkly", "auth0"],
)
async def test_last_quota_is_read_from_each_header_style(
    server: FakeServer,
    sleeps: Sleeps,
    headers: dict[str, str],
    limit: int | None,
    remaining: int,
    reset_at: datetime | None,
) -> None:
    server.script("GET", "/with", Reply(200, {}, headers))
    server.script("GET", "/without", Reply(200, {}))
    async with client_for(server, sleeps, "p") as client:
        assert client.last_quota is None
        await client.get_json("/with")
        await client.get_json("/without")  # an answer without the headers keeps what we knew
        quota = client.last_quota
    assert quota is not None
    assert (quota.provider, quota.limit, quota.remaining, quota.reset_at) == ("p", limit, remaining, reset_at)
    assert all(value in quota.raw for value in headers.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(quota, "remaining", 0)  # noqa: B010 - the assignment mypy would refuse


# -- authentication ---------------------------------------------------------------------------------------
def pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PEM = pem(EC_KEY)
ISSUER, KEY_ID = "57246542-96fe-1a63-e053-0824d011072a", "2X9R4HXF34"


def claims_of(token: str) -> dict[str, Any]:
    options: Any = {"verify_exp": False, "verify_iat": False}  # the injected clock is not the machine's
    return dict(
        jwt.decode(token, EC_KEY.public_key(), algorithms=["ES256"], audience="appstoreconnect-v1", options=options)
    )


def bearer(seen: Seen) -> str:
    value = seen.headers["authorization"]
    assert value.startswith("Bearer ")
    return value.removeprefix("Bearer ")


async def test_app_store_jwt_is_es256_with_the_documented_header_and_claims(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/v1/apps", Reply(200, {"data": []}))
    auth = AppStoreJwt(ISSUER, KEY_ID, EC_PEM, lifetime=timedelta(hours=1), clock=Clock())
    async with client_for(server, sleeps, auth=auth) as client:
        for _ in range(3):
            await client.get_json("/v1/apps")
    tokens = {bearer(seen) for seen in server.seen}
    assert len(tokens) == 1  # one token for every call
    token = tokens.pop()
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = claims_of(token)
    assert claims == {"iss": ISSUER, "iat": int(NOW), "exp": int(NOW) + 20 * 60, "aud": "appstoreconnect-v1"}


async def test_app_store_jwt_is_minted_again_only_near_expiry(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/v1/apps", Reply(200, {"data": []}))
    clock = Clock()
    auth = AppStoreJwt(ISSUER, KEY_ID, EC_PEM, clock=clock)
    async with client_for(server, sleeps, auth=auth) as client:
        await client.get_json("/v1/apps")
        clock.now += 18 * 60
        await client.get_json("/v1/apps")
        clock.now += 2 * 60  # 20 minutes after the first token: past its expiry
        await client.get_json("/v1/apps")
    first, second, third = (bearer(seen) for seen in server.seen)
    assert first == second != third
    assert claims_of(third)["iat"] == int(NOW) + 20 * 60


@pytest.mark.parametrize("answers", [1, 2])
async def test_app_store_jwt_re_mints_once_on_401(server: FakeServer, sleeps: Sleeps, answers: int) -> None:
    expired = {"errors": [{"status": "401", "code": "NOT_AUTHORIZED", "title": "Unauthorized", "detail": "Expired"}]}
    server.script("GET", "/v1/apps", *([Reply(401, expired)] * answers), Reply(200, {"data": []}))
    auth = AppStoreJwt(ISSUER, KEY_ID, EC_PEM, clock=Clock())
    async with client_for(server, sleeps, auth=auth, parse_error=parse_apple_error) as client:
        if answers == 1:
            assert await client.get_json("/v1/apps") == {"data": []}
            await client.get_json("/v1/apps")
        else:
            with pytest.raises(Unauthorized) as info:
                await client.get_json("/v1/apps")
            assert (info.value.code, info.value.detail) == ("NOT_AUTHORIZED", "Expired")
    tokens = [bearer(seen) for seen in server.seen]
    assert len(tokens) == (3 if answers == 1 else 2) and tokens[0] != tokens[1]
    assert tokens[1:] == [tokens[1]] * (len(tokens) - 1)  # the re-minted token is the one kept
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "must be an EC private key"),
        (pem(ed25519.Ed25519PrivateKey.generate()), "must be an EC private key"),
        (pem(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "not an unencrypted PEM"),
        ("", "not an unencrypted PEM"),
    ],
    ids=["rsa", "ed25519", "p384", "garbage", "empty"],
)
def test_a_key_that_is_not_an_ec_p256_key_is_refused_at_construction(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        AppStoreJwt(ISSUER, KEY_ID, key)
    body = "".join(key.splitlines()[1:-1])
    assert not body or body not in str(info.value)


def test_no_auth_shows_its_secret() -> None:
    auths: list[httpx.Auth] = [
        BearerKey("amp-secret-key"),
        RawToken("api-ld-secret-token", {"LD-API-Version": "20240415"}),
        AppStoreJwt(ISSUER, KEY_ID, EC_PEM),
        ClientCredentials("https://t.example/oauth/token", "cid", "auth0-client-secret", "https://t.example/api/v2/"),
    ]
    texts = " ".join(f"{auth!r} {auth!s}" for auth in auths)
    for secret in ("amp-secret-key", "api-ld-secret-token", EC_PEM.splitlines()[1], "auth0-client-secret"):
        assert secret not in texts


async def test_bearer_key_and_raw_token_headers(server: FakeServer, sleeps: Sleeps) -> None:
    server.script("GET", "/x", Reply(200, {}))
    async with client_for(server, sleeps, auth=BearerKey("amp-key")) as client:
        await client.get_json("/x")
    async with client_for(server, sleeps, auth=RawToken("api-ld", {"LD-API-Version": "20240415"})) as client:
        await client.get_json("/x")
        await client.request("GET", "/x", headers={"LD-API-Version": "beta"})
    amplitude, ld, ld_beta = server.seen
    assert amplitude.headers["authorization"] == "Bearer amp-key"
    assert (ld.headers["authorization"], ld.headers["ld-api-version"]) == ("api-ld", "20240415")
    assert ld_beta.headers["ld-api-version"] == "beta"


SECRET = "auth0-client-secret-9f8e7d"


class Auth0:
    """The token endpoint and one API route of a fake Auth0 tenant."""

    def __init__(self, server: FakeServer, reject: Callable[[str], bool] = lambda token: False) -> None:
        self.server, self.reject, self.issued = server, reject, itertools.count(1)
        server.handle("POST", "/oauth/token", self.token)
        server.handle("GET", "/api/v2/experiments", self.api)

    def token(self, seen: Seen) -> Reply:
        time.sleep(0.02)  # a real round trip, so concurrent callers overlap
        return Reply(
            200, {"access_token": f"m2m-token-{next(self.issued)}", "expires_in": 86400, "token_type": "Bearer"}
        )

    def api(self, seen: Seen) -> Reply:
        if self.reject(seen.headers.get("authorization", "")):
            return Reply(401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"})
        return Reply(200, {"experiments": []})

    def auth(self, clock: Clock) -> ClientCredentials:
        url = self.server.url
        return ClientCredentials(f"{url}/oauth/token", "m2m-client", SECRET, f"{url}/api/v2/", clock=clock)

    def calls(self, path: str) -> list[Seen]:
        return self.server.requests(path=path)


async def test_client_credentials_one_token_for_concurrent_calls_cached_until_expiry(
    server: FakeServer, sleeps: Sleeps
) -> None:
    tenant, clock = Auth0(server), Clock()
    async with client_for(server, sleeps, "auth0", auth=tenant.auth(clock)) as client:
        await asyncio.gather(*(client.get_json("/api/v2/experiments") for _ in range(10)))
        await client.get_json("/api/v2/experiments")
        assert len(tenant.calls("/oauth/token")) == 1
        clock.now += 86400 - 30
        await client.get_json("/api/v2/experiments")
    assert len(tenant.calls("/oauth/token")) == 2
    used = [s.headers["authorization"] for s in tenant.calls("/api/v2/experiments")]
    assert used == ["Bearer m2m-token-1"] * 11 + ["Bearer m2m-token-2"]
    grant = tenant.calls("/oauth/token")[0]
    assert grant.headers["content-type"] == "application/json"
    assert grant.json() == {
        "grant_type": "client_credentials",
        "client_id": "m2m-client",
        "client_secret": SECRET,
        "audience": f"{server.url}/api/v2/",
    }
    for seen in tenant.calls("/api/v2/experiments"):  # the secret goes to the token endpoint only
        assert SECRET.encode() not in seen.body and not any(SECRET in v for v in seen.headers.values())


@pytest.mark.parametrize("always", [False, True])
async def test_client_credentials_fetches_again_once_on_401(server: FakeServer, sleeps: Sleeps, always: bool) -> None:
    tenant = Auth0(server, reject=lambda header: always or header == "Bearer m2m-token-1")
    async with client_for(server, sleeps, "auth0", auth=tenant.auth(Clock()), parse_error=parse_auth0_error) as client:
        if always:
            with pytest.raises(Unauthorized, match="Invalid token"):
                await client.get_json("/api/v2/experiments")
        else:
            assert await client.get_json("/api/v2/experiments") == {"experiments": []}
    assert len(tenant.calls("/oauth/token")) == 2
    assert [s.headers["authorization"] for s in tenant.calls("/api/v2/experiments")] == [
        "Bearer m2m-token-1",
        "Bearer m2m-token-2",
    ]


@pytest.mark.parametrize(
    ("status", "description"),
    [(401, "Unauthorized"), (403, "Service not enabled within domain: https://tenant.example/api/v2/")],
)
async def test_a_refused_token_request_is_unauthorized_in_auth0_words(
    server: FakeServer, sleeps: Sleeps, status: int, description: str
) -> None:
    tenant = Auth0(server)
    server.script("POST", "/oauth/token", Reply(status, {"error": "access_denied", "error_description": description}))
    async with client_for(server, sleeps, "auth0", auth=tenant.auth(Clock())) as client:
        with pytest.raises(Unauthorized) as info:
            await client.get_json("/api/v2/experiments")
    assert (info.value.detail, info.value.code, info.value.status) == (description, "access_denied", status)
    assert tenant.calls("/api/v2/experiments") == []


async def test_logs_show_calls_and_retries_but_no_credentials(
    server: FakeServer, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = Auth0(server)
    server.script("GET", "/v1/apps", Reply(401, {}), Reply(429, {}, {"Retry-After": "1"}), Reply(200, {"data": []}))
    server.script("GET", "/x", Reply(200, {}))
    apple = AppStoreJwt(ISSUER, KEY_ID, EC_PEM, clock=Clock())
    async with client_for(server, sleeps, "app_store", auth=apple) as client:
        await client.get_json("/v1/apps", params={"limit": "200"})
    async with client_for(server, sleeps, "auth0", auth=tenant.auth(Clock())) as client:
        await client.get_json("/api/v2/experiments")
    for auth in (BearerKey("amp-secret-key"), RawToken("api-ld-secret-token")):
        async with client_for(server, sleeps, auth=auth) as client:
            await client.get_json("/x")
    secrets = {bearer(seen) for seen in server.requests(path="/v1/apps")} | {"m2m-token-1", SECRET}
    secrets |= {"amp-secret-key", "api-ld-secret-token", EC_PEM.splitlines()[1]}
    for secret in secrets:
        assert secret not in caplog.text
    ours = [r for r in caplog.records if r.name == "expbot.http"]
    lines = [r.getMessage() for r in ours]
    assert any("GET /v1/apps -> 200" in line and "ms" in line for line in lines)
    assert any("POST /oauth/token -> 200" in line for line in lines)
    assert [r.getMessage() for r in ours if r.levelno == logging.WARNING] == ["GET /v1/apps: 429, retry 1/3 in 1.00 s"]
    assert not any("limit=200" in line for line in lines)
