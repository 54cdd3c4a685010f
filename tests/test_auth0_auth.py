"""Auth0 credentials, scopes and rate: one shared token, one refetch on a 401, pacing, 429, no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from providers.auth0 import DRIVER, Auth0Settings
from providers.auth0_mapping import start_up_problems
from providers.errors import Unauthorized
from providers.models import Change, ChangeKind
from tests.contract.harness_auth0 import draft_for, provider_for
from tests.fake_auth0 import EXP, FakeAuth0

EPOCH = 1_900_000_000.0


@pytest.fixture
def fake() -> Iterator[FakeAuth0]:
    server = FakeAuth0().start()
    yield server
    server.stop()


def _seed(fake: FakeAuth0, name: str = "Seeded") -> str:
    """An experiment put straight into the tenant (no API call)."""
    flag = fake.add_flag("Seed")
    control = fake.tenant.flags[flag]["variations"][0]["id"]
    body = {"name": name, "feature_flag_id": flag, "authentication_flow": "all", "allocation_strategy": "percentage"}
    body |= {"assignment_config": {"subject": "device"}, "allocations": [{"variation_id": control, "weight": 100}]}
    status, answer, _ = fake.tenant.route("POST", EXP, {}, body)
    assert status == 201
    return str(answer["id"])


async def test_one_token_for_concurrent_calls_and_the_secret_only_goes_to_the_token_endpoint(
    fake: FakeAuth0,
) -> None:
    exp_id = _seed(fake)
    provider = provider_for(fake)
    try:
        found = await asyncio.gather(*(provider.get(exp_id) for _ in range(10)))
        assert {s.name for s in found} == {"Seeded"} and fake.token_requests == 1
    finally:
        await provider.aclose()
    (grant,) = fake.requests("POST", "/oauth/token")
    assert grant.body == {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "audience": f"https://{fake.domain}/api/v2/",  # the tenant's audience, although base_url is loopback
    }
    assert "authorization" not in grant.headers
    for seen in fake.seen:
        if seen.path != "/oauth/token":
            assert fake.client_secret not in json.dumps([seen.headers, seen.body, seen.query])
            assert seen.headers["authorization"].startswith("Bearer tok_")


@pytest.mark.parametrize("lose", ["expire_tokens", "revoke_tokens"])
async def test_an_expired_or_revoked_token_is_fetched_again_once_and_the_call_retried(
    fake: FakeAuth0, lose: str
) -> None:
    exp_id = _seed(fake)
    provider = provider_for(fake)
    try:
        await provider.get(exp_id)
        getattr(fake, lose)()
        assert (await provider.get(exp_id)).name == "Seeded"
    finally:
        await provider.aclose()
    reads = fake.requests("GET", exp_id)
    assert fake.token_requests == 2 and len(reads) == 3
    assert reads[1].headers["authorization"] == reads[0].headers["authorization"] != reads[2].headers["authorization"]


async def test_wrong_credentials_are_unauthorized_in_auth0s_words_without_the_secret(fake: FakeAuth0) -> None:
    provider = provider_for(fake, secret="not-the-secret")
    try:
        with pytest.raises(Unauthorized) as err:
            await provider.get(_seed(fake))
    finally:
        await provider.aclose()
    assert err.value.status == 401 and err.value.detail == "Unauthorized"
    assert "not-the-secret" not in str(err.value) and not fake.requests("GET")


async def test_a_403_names_the_missing_scope(fake: FakeAuth0) -> None:
    provider = provider_for(fake)
    try:
        snap = (await provider.create(draft_for(fake.add_flag("Login"), levels=[]))).snapshot
        plan = await provider.plan(snap, Change(kind=ChangeKind.START))
        fake.scopes.discard("update:experimentation")
        with pytest.raises(Unauthorized) as err:
            await provider.apply(plan.steps[1])
        assert err.value.status == 403 and "Insufficient scope, expected any of: update:experimentation" in str(
            err.value
        )
        assert "needs the `update:experimentation` scope" in err.value.detail
        fake.scopes.discard("read:experimentation")
        with pytest.raises(Unauthorized, match="needs the `read:experimentation` scope"):
            await provider.get(snap.remote_id)
    finally:
        await provider.aclose()
    assert fake.experiments[snap.remote_id]["status"] == "draft"


async def test_ten_concurrent_reads_stay_within_the_tenants_rate() -> None:
    fake = FakeAuth0(rate=10, burst=2).start()  # a development tenant's shape, sped up
    exp_id = _seed(fake)
    paced = provider_for(fake, rate=10)
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    unpaced = provider_for(fake, rate=1000, sleep=no_wait)
    try:
        found = await asyncio.gather(*(paced.get(exp_id) for _ in range(10)))
        assert len(found) == 10 and fake.rejected == 0 and paced.pacer.waited >= 9
        await asyncio.gather(*(unpaced.get(exp_id) for _ in range(10)), return_exceptions=True)
        assert fake.rejected > 0  # the same reads without pacing do hit the limit
    finally:
        await paced.aclose()
        await unpaced.aclose()
        fake.stop()


async def test_a_429_is_waited_out_until_x_ratelimit_reset(fake: FakeAuth0) -> None:
    exp_id = _seed(fake)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    provider = provider_for(fake, sleep=sleep, clock=lambda: EPOCH)
    limited = {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{EPOCH + 3:.0f}"}
    fake.fail("status", status=429, code="too_many_requests", message="Too Many Requests", headers=limited)
    try:
        assert (await provider.get(exp_id)).name == "Seeded"
    finally:
        await provider.aclose()
    assert slept == [3.0] and len(fake.requests("GET", exp_id)) == 2


async def test_no_secret_or_token_in_logs_reprs_or_plans(fake: FakeAuth0, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = provider_for(fake)
    try:
        snap = (await provider.create(draft_for(fake.add_flag("Login")))).snapshot
        plan = await provider.plan(snap, Change(kind=ChangeKind.START))
        assert "tenant.test.auth0.com" in await provider.verify()
        shown = [repr(provider), repr(provider.credentials), repr(plan), *(s.render() for s in plan.steps)]
    finally:
        await provider.aclose()
    assert caplog.text and fake.tokens
    for secret in (fake.client_secret, *fake.tokens):
        assert secret not in caplog.text and all(secret not in text for text in shown)


async def test_driver_settings_and_start_up_problems() -> None:
    assert DRIVER.name == "auth0" and DRIVER.label == "Auth0 Experiment Center"
    assert DRIVER.secrets == ("AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET")
    settings = Auth0Settings()
    assert settings.requests_per_second == 2 and settings.base_url is None
    good = {"AUTH0_DOMAIN": "https://my-tenant.eu.auth0.com/", "AUTH0_CLIENT_ID": "a", "AUTH0_CLIENT_SECRET": "b"}
    assert start_up_problems(settings, good) == []
    bad = start_up_problems(settings, good | {"AUTH0_DOMAIN": "my tenant/api"})
    assert bad == ["AUTH0_DOMAIN: give the tenant's domain, e.g. my-tenant.eu.auth0.com (no path)"]
    provider = DRIVER.build(settings, type("D", (), {"secrets": good})())
    assert str(provider.http.base_url) == "https://my-tenant.eu.auth0.com"  # type: ignore[attr-defined]
    assert provider.credentials.token_url == "https://my-tenant.eu.auth0.com/oauth/token"  # type: ignore[attr-defined]
    await provider.aclose()
