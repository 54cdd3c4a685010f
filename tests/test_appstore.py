"""The App Store Connect adapter against its fake over loopback: auth, create with faults, errors, limits, paging."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from providers.appstore import AppStoreProvider
from providers.appstore_forms import AppStoreSettings, validate
from providers.errors import Conflict, NotFound, OutcomeUnknown, Unauthorized
from providers.models import Change, ChangeKind, Status
from tests.contract.harness_appstore import APP_ID, ISSUER, KEY_ID, PEM, draft, new_fake, new_provider
from tests.fake_appstore import FakeAppStore
from tests.fake_appstore_store import DRAFT_ERROR

EXPERIMENTS = "/v2/appStoreVersionExperiments"


@pytest.fixture
def fake() -> Iterator[FakeAppStore]:
    server = new_fake()
    yield server
    assert server.invalid == [], server.invalid  # every body and query the adapter sent validates against the spec
    server.stop()


@pytest.fixture
async def provider(fake: FakeAppStore) -> AsyncIterator[AppStoreProvider]:
    adapter = new_provider(fake)
    yield adapter
    await adapter.aclose()


async def test_one_es256_token_is_reused_and_minted_again_once_on_a_401(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    snap = (await provider.create(draft("Icons"))).snapshot
    for _ in range(3):
        await provider.get(snap.remote_id)
    assert len(fake.tokens) == 1  # one token for many calls
    head, claims = (
        jwt.get_unverified_header(fake.tokens[0]),
        jwt.decode(fake.tokens[0], options={"verify_signature": False}),
    )
    assert head == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    assert claims["iss"] == ISSUER and claims["aud"] == "appstoreconnect-v1" and claims["exp"] - claims["iat"] <= 1200
    fake.reject_tokens = 1  # App Store Connect refuses the token once: minted again, the call goes through
    assert (await provider.get(snap.remote_id)).remote_id == snap.remote_id
    fake.reject_tokens = 2  # refused twice: no loop, a clear Unauthorized
    with pytest.raises(Unauthorized) as err:
        await provider.get(snap.remote_id)
    assert err.value.status == 401 and err.value.code == "NOT_AUTHORIZED"


async def test_an_expired_token_is_refused_by_the_fake(fake: FakeAppStore) -> None:
    adapter = new_provider(fake, clock=lambda: time.time() - 25 * 60)  # a clock 25 minutes slow: expired tokens
    with pytest.raises(Unauthorized):
        await adapter.list()
    assert len(fake.requests()) == 2 and fake.tokens == []  # minted again once, then given up; none accepted
    await adapter.aclose()


async def test_create_makes_the_test_and_its_treatments_with_valid_bodies(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    created = await provider.create(draft("Icons", treatments="Dark icon, Light icon, Retro", traffic_proportion=30))
    snap = created.snapshot
    assert created.missing == [] and snap.status is Status.DRAFT and snap.exposure == 30
    assert [(v.key, v.weight, v.is_control) for v in snap.variants] == [
        ("original", 25, True),
        ("dark-icon", 25, False),
        ("light-icon", 25, False),
        ("retro", 25, False),
    ]
    posted = fake.requests("POST", EXPERIMENTS)[0].json()
    assert posted["data"]["attributes"] == {"name": "Icons", "platform": "IOS", "trafficProportion": 30}
    assert len(fake.requests("POST", "/v1/appStoreVersionExperimentTreatments")) == 3
    assert snap.url and APP_ID in snap.url


async def test_a_409_on_create_is_raised_word_for_word(fake: FakeAppStore, provider: AppStoreProvider) -> None:
    await provider.create(draft("First"))
    with pytest.raises(Conflict) as err:
        await provider.create(draft("Second"))
    assert err.value.detail == DRAFT_ERROR and err.value.status == 409 and err.value.code == "STATE_ERROR"
    assert len(fake.state.experiments) == 1


async def test_a_create_whose_answer_was_lost_is_looked_up_by_name_not_sent_again(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    fake.fail("timeout_after_write", path=EXPERIMENTS)
    created = await provider.create(draft("Lost answer"))
    assert len(fake.requests("POST", EXPERIMENTS)) == 1 and len(fake.state.experiments) == 1
    assert created.snapshot.remote_id in fake.state.experiments and created.missing == []


async def test_a_create_dropped_before_apple_acted_is_sent_once_more(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    fake.fail("dropped", path=EXPERIMENTS)
    created = await provider.create(draft("Dropped"))
    assert len(fake.requests("POST", EXPERIMENTS)) == 2 and len(fake.state.experiments) == 1
    assert created.snapshot.name == "Dropped"


async def test_a_treatment_that_fails_is_reported_missing_and_the_test_is_still_returned(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    fake.fail("unprocessable", skip=1, path="/v1/appStoreVersionExperimentTreatments")
    fake.fail("timeout_after_write", skip=1, path="/v1/appStoreVersionExperimentTreatments")
    created = await provider.create(draft("Partly", treatments="A, B, C"))
    assert [v.name for v in created.snapshot.variants] == ["Original product page", "A", "C"]
    assert created.missing == ["treatment `B`: Not valid.", "treatments in App Store Connect now: A, C"]
    assert len(fake.requests("POST", "/v1/appStoreVersionExperimentTreatments")) == 3  # C's lost answer: looked up


async def test_429_is_retried_and_the_hourly_quota_kept_for_check(
    fake: FakeAppStore, provider: AppStoreProvider
) -> None:
    fake.fail("rate_limited", where="read")
    fake.quota_limit = 3500
    line = await provider.verify()
    assert len(fake.requests("GET", "/v1/apps/")) >= 2  # the 429 was retried
    quota = provider.client.last_quota
    assert quota is not None and quota.limit == 3500 and quota.remaining == 3500 - len(fake.seen)
    assert f"{quota.remaining} of 3500 requests left this hour" in line


async def test_listing_follows_links_next() -> None:
    fake = new_fake(page_size=2)
    provider = new_provider(fake)
    with fake._lock:
        for i in range(5):
            fake.state.experiments[f"00000000-0000-4000-8000-00000000000{i}"] = {
                "name": f"Old {i}", "platform": "IOS", "trafficProportion": 10, "state": "COMPLETED",
                "reviewRequired": True, "startDate": "2026-01-01T00:00:00.000+00:00",
                "endDate": "2026-03-01T00:00:00.000+00:00", "_app": APP_ID,
            }  # fmt: skip
    found = await provider.list()
    assert sorted(s.name for s in found) == [f"Old {i}" for i in range(5)]
    assert {s.status for s in found} == {Status.COMPLETED}
    assert [s.query.get("cursor") for s in fake.requests("GET", f"/v1/apps/{APP_ID}/")] == [None, "2", "4"]
    assert await provider.list(Status.RUNNING) == []
    await provider.aclose()
    assert fake.invalid == []
    fake.stop()


async def test_tracking_errors_are_provider_errors(fake: FakeAppStore, provider: AppStoreProvider) -> None:
    with pytest.raises(NotFound):
        await provider.get("5b0c1fb4-0000-4000-8000-000000000000")
    fake.fail("forbidden", where="read")
    with pytest.raises(Unauthorized) as err:
        await provider.get("5b0c1fb4-0000-4000-8000-000000000000")
    assert err.value.status == 403 and err.value.code == "FORBIDDEN_ERROR"


async def test_ids_are_canonical_and_console_urls_accepted(provider: AppStoreProvider) -> None:
    ident = "1A22D9A7-F574-4669-B1CA-1BA88F786C19"
    assert provider.canonical_id(f" {ident} ") == ident.lower()
    url = f"https://appstoreconnect.apple.com/apps/{APP_ID}/distribution/ppo/{ident}"
    assert provider.canonical_id(url) == ident.lower()


async def test_a_deleted_test_reads_back_as_archived(fake: FakeAppStore, provider: AppStoreProvider) -> None:
    snap = (await provider.create(draft("Delete me"))).snapshot
    plan = await provider.plan(snap, Change(kind=ChangeKind.ARCHIVE))
    assert [s.render() for s in plan.steps] == [f"DELETE {EXPERIMENTS}/{snap.remote_id}"]
    await provider.apply(plan.steps[0])
    after = await provider.get(snap.remote_id)
    assert after.status is Status.ARCHIVED and after.name == "Delete me" and fake.state.experiments == {}


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def test_a_missing_unreadable_or_non_ec_key_is_a_start_up_problem_naming_the_variable(tmp_path: Path) -> None:
    settings = AppStoreSettings()
    assert validate(settings, {"APPSTORE_PRIVATE_KEY": PEM}) == []
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(PEM)
    assert validate(settings, {"APPSTORE_PRIVATE_KEY_PATH": str(key_file)}) == []
    missing = validate(settings, {"APPSTORE_PRIVATE_KEY_PATH": str(tmp_path / "nope.p8")})
    assert len(missing) == 1 and missing[0].startswith("APPSTORE_PRIVATE_KEY_PATH: ") and "cannot be read" in missing[0]
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    (problem,) = validate(settings, {"APPSTORE_PRIVATE_KEY": rsa_pem})
    assert (
        problem.startswith("APPSTORE_PRIVATE_KEY: ") and "EC private key" in problem and rsa_pem[40:80] not in problem
    )
    (garbage,) = validate(settings, {"APPSTORE_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n"})
    assert garbage.startswith("APPSTORE_PRIVATE_KEY: ") and "c2VjcmV0" not in garbage
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()))
    assert "P-256" in validate(settings, {"APPSTORE_PRIVATE_KEY": p384})[0]


async def test_the_key_and_tokens_never_reach_logs_plans_or_reprs(
    fake: FakeAppStore, provider: AppStoreProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail("rate_limited")
    snap = (await provider.create(draft("Secrets"))).snapshot
    plan = await provider.plan(snap, Change(kind=ChangeKind.ACTION, action="submit_review"))
    shown = json.dumps(plan.model_dump()) + repr(provider.client._client.auth) + caplog.text + repr(snap)
    body = PEM.splitlines()[1]
    assert fake.tokens and all(t not in shown for t in fake.tokens) and body not in shown
    assert "Bearer" not in shown


async def test_a_slow_start_is_not_sent_twice_and_confirm_finds_it_started(fake: FakeAppStore) -> None:
    impatient = new_provider(fake, timeout=0.3)
    snap = (await impatient.create(draft("Slow"))).snapshot
    with fake._lock:
        fake.state.experiments[snap.remote_id]["state"] = "APPROVED"
    ready = await impatient.get(snap.remote_id)
    (step,) = (await impatient.plan(ready, Change(kind=ChangeKind.START))).steps
    fake.latency = 0.6  # Apple acts, but only after the client gave up waiting
    with pytest.raises(OutcomeUnknown):
        await impatient.apply(step)
    assert len(fake.requests("PATCH")) == 1  # a non-repeatable write is never re-sent by the client
    while not fake.state.experiments[snap.remote_id]["startDate"]:  # the fake acts once its latency is over
        await asyncio.sleep(0.05)
    fake.latency = 0
    found = await impatient.confirm(step, ready)
    assert found is not None and found.data["data"]["attributes"]["startDate"]
    assert len(fake.requests("PATCH")) == 1
    await impatient.aclose()


async def test_a_5xx_on_a_read_is_retried(fake: FakeAppStore, provider: AppStoreProvider) -> None:
    snap = (await provider.create(draft("Flaky"))).snapshot
    before = len(fake.requests("GET"))
    fake.fail("unavailable", where="read")
    assert (await provider.get(snap.remote_id)).name == "Flaky"
    assert len(fake.requests("GET")) == before + 2
