"""The LaunchDarkly adapter against the fake LaunchDarkly: headers, ids, the mapping, plans, errors, limits, doubt."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bot.errors import FieldErrors
from bot.forms import parse_draft
from providers.errors import BadRequest, InvalidChange, OutcomeUnknown, RateLimited, Stale, Unauthorized
from providers.launchdarkly import DRIVER, LaunchDarklyProvider
from providers.launchdarkly_forms import LaunchDarklyDraft, LaunchDarklySettings, derive_key
from providers.launchdarkly_mapping import allocations
from providers.models import Change, ChangeKind, Snapshot, Status
from providers.plan import ApplyContext, resolve
from tests.contract.harness import send_plan
from tests.contract.harness_launchdarkly import provider_for
from tests.fake_launchdarkly import FakeLaunchDarkly

CTX = ApplyContext(request_id=7, requester="U1", approvers=["U2", "U3"], now=datetime(2026, 1, 1, tzinfo=UTC))
DRAFT = LaunchDarklyDraft(name="Checkout button", flag_key="checkout-button", metric_key="purchases")


@pytest.fixture
def ld() -> Iterator[FakeLaunchDarkly]:
    fake = FakeLaunchDarkly().start()
    yield fake
    fake.stop()
    assert fake.invalid == [], fake.invalid


@pytest.fixture
async def p(ld: FakeLaunchDarkly) -> AsyncIterator[LaunchDarklyProvider]:
    provider = provider_for(ld)
    yield provider
    await provider.aclose()


async def _running(p: LaunchDarklyProvider) -> Snapshot:
    snap = (await p.create(DRAFT)).snapshot
    await send_plan(p, await p.plan(snap, Change(kind=ChangeKind.START)), CTX)
    return await p.get(snap.remote_id)


async def test_create_sends_a_draft_iteration_and_reads_it_back(p: LaunchDarklyProvider, ld: FakeLaunchDarkly) -> None:
    snap = (await p.create(DRAFT)).snapshot
    assert snap.remote_id == "web/production/checkout-button" and snap.status is Status.DRAFT
    assert snap.exposure == 10 and snap.weights() == {"Control": 50, "Treatment": 50}
    assert [v.is_control for v in snap.variants] == [True, False]
    assert snap.guard["flag_version"] == 1 and snap.guard["iteration_version"] == 0 and snap.guard["iteration_id"]
    assert snap.url == f"{ld.url}/projects/web/experiments/checkout-button?env=production"
    (post,) = ld.requests("POST")
    assert post.headers["authorization"] == ld.token and post.headers["ld-api-version"] == "beta"
    flag_read = ld.requests("GET", "/api/v2/flags/web/checkout-button")[0]
    assert flag_read.headers["ld-api-version"] == "20240415" and flag_read.query == {"env": "production"}
    body = post.json()["iteration"]
    assert [t["allocationPercent"] for t in body["treatments"]] == ["5", "5"]
    assert body["randomizationUnit"] == "user" and body["primarySingleMetricKey"] == "purchases"


async def test_ids_have_one_canonical_form(p: LaunchDarklyProvider, ld: FakeLaunchDarkly) -> None:
    assert p.canonical_id(" checkout-button ") == p.canonical_id("web/production/checkout-button")
    assert p.canonical_id("web/test/x") == "web/test/x"
    bare = provider_for(ld, project=None, environment=None)
    with pytest.raises(BadRequest, match="project/environment/key"):
        await bare.get("checkout-button")
    assert bare.canonical_id("k") == "k"
    await bare.aclose()


async def test_semantic_patches_carry_the_media_type_and_a_comment_naming_request_and_approvers(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly
) -> None:
    await _running(p)
    (patch,) = ld.requests("PATCH")
    assert patch.headers["content-type"] == "application/json; domain-model=launchdarkly.semanticpatch"
    assert patch.json()["comment"].startswith("expbot request #7 approved by U2, U3: start the iteration (iteration ")
    without = httpx.patch(f"{ld.url}{patch.path}", json=patch.json(), headers={"Authorization": ld.token})
    assert without.status_code == 403 and without.json()["code"] == "forbidden"  # no beta header


async def test_ramp_is_a_new_iteration_then_start_keeping_the_ratio(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly
) -> None:
    snap = await _running(p)
    split = await p.plan(snap, Change(kind=ChangeKind.WEIGHTS, weights={"Control": 25, "Treatment": 75}))
    await send_plan(p, split, CTX)
    snap = await p.get(snap.remote_id)
    plan = await p.plan(snap, Change(kind=ChangeKind.EXPOSURE, exposure=12.5))
    assert [s.method for s in plan.steps] == ["POST", "PATCH"] and not any(s.repeatable for s in plan.steps)
    assert "{{steps.0._id}}" in plan.steps[1].body["comment"]  # type: ignore[index]
    assert any("re-randomizes" in n for n in plan.notes) and any("beta" in n for n in plan.notes)
    await send_plan(p, plan, CTX)
    after = await p.get(snap.remote_id)
    assert after.exposure == 12.5 and after.weights() == {"Control": 25, "Treatment": 75}
    assert after.guard["iteration_id"] != snap.guard["iteration_id"] and after.status is Status.RUNNING
    assert p.took_effect(snap, Change(kind=ChangeKind.EXPOSURE, exposure=12.5), after)
    assert allocations(12.5, [25, 75]) == ["3.125", "9.375"] and allocations(10, [1, 1, 1]) == [
        "3.3334",
        "3.3333",
        "3.3333",
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (Change(kind=ChangeKind.PAUSE), "cannot be paused"),
        (Change(kind=ChangeKind.RESUME), "cannot be paused"),
        (Change(kind=ChangeKind.EXPOSURE, exposure=20), "cannot exposure an experiment that is draft"),
        (Change(kind=ChangeKind.SHIP, variant="Treatment"), "cannot ship"),
        (Change(kind=ChangeKind.RESTORE), "cannot restore"),
    ],
)
async def test_refused_changes_say_why_before_any_call(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly, change: Change, words: str
) -> None:
    snap = (await p.create(DRAFT)).snapshot
    seen = len(ld.seen)
    with pytest.raises(InvalidChange, match=words):
        await p.plan(snap, change)
    assert len(ld.seen) == seen


async def test_refused_on_a_running_experiment(p: LaunchDarklyProvider, ld: FakeLaunchDarkly) -> None:
    snap = await _running(p)
    for change, words in [
        (Change(kind=ChangeKind.SHIP, variant="Nope"), "no variant 'Nope'"),
        (Change(kind=ChangeKind.START), "cannot start"),
        (Change(kind=ChangeKind.ARCHIVE), "cannot archive"),
        (Change(kind=ChangeKind.EXPOSURE, exposure=10), "already 10%"),
        (Change(kind=ChangeKind.WEIGHTS, weights={"Control": 60, "Treatment": 30}), "add up to 100"),
        (Change(kind=ChangeKind.STOP, variant="Nope"), "no treatment 'Nope'"),
    ]:
        with pytest.raises(InvalidChange, match=words):
            await p.plan(snap, change)


async def test_ship_stops_with_the_winner_and_serves_it_previewed_by_a_dry_run(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly
) -> None:
    snap = await _running(p)
    version = ld.state.flags["checkout-button"]["_version"]
    plan = await p.plan(snap, Change(kind=ChangeKind.SHIP, variant="Treatment"))
    assert ld.state.flags["checkout-button"]["_version"] == version  # the dry run persisted nothing
    assert any("dry run" in n and "serve Treatment" in n for n in plan.notes), plan.notes
    stop, serve = plan.steps
    assert stop.body["instructions"][0]["kind"] == "stopIteration" and serve.repeatable  # type: ignore[index]
    assert serve.body["instructions"] == [  # type: ignore[index]
        {"kind": "updateFallthroughVariationOrRollout", "variationId": snap.variants[1].remote_id}
    ]
    await send_plan(p, plan, CTX)
    after = await p.get(snap.remote_id)
    assert after.status is Status.STOPPED and after.guard["winner"] == after.guard["serving"] == "Treatment"
    with pytest.raises(InvalidChange, match="already serves"):
        await p.plan(after, Change(kind=ChangeKind.SHIP, variant="Treatment"))


async def test_launchdarklys_errors_keep_its_words(p: LaunchDarklyProvider, ld: FakeLaunchDarkly) -> None:
    snap = (await p.create(DRAFT)).snapshot
    start = resolve((await p.plan(snap, Change(kind=ChangeKind.START))).steps[0], [], CTX)
    ld.fail("bad_request", message="Iteration cannot be started: randomizationUnit is not set")
    with pytest.raises(BadRequest, match="randomizationUnit is not set") as bad:
        await p.apply(start)
    assert bad.value.status == 400 and bad.value.code == "invalid_request"
    ld.fail("stale")
    with pytest.raises(Stale) as stale:
        await p.apply(start)
    assert stale.value.code == "optimistic_locking_error"
    ld.fail("forbidden")
    with pytest.raises(Unauthorized, match="LD-API-Version: beta"):
        await p.apply(start)
    wrong = LaunchDarklyProvider(LaunchDarklySettings(base_url=ld.url), "api-wrong")  # type: ignore[arg-type]
    with pytest.raises(Unauthorized, match="Invalid access token"):
        await wrong.get("web/production/checkout-button")
    await wrong.aclose()


async def test_429_waits_for_the_reset_in_epoch_milliseconds_and_keeps_the_quota(ld: FakeLaunchDarkly) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = LaunchDarklySettings(base_url=ld.url, project="web", environment="production")  # type: ignore[arg-type]
    p = LaunchDarklyProvider(settings, ld.token, sleep=sleep, clock=lambda: 1_700_000_000.0)
    ld.reset_at_ms = 1_700_000_002_500
    ld.fail("rate_limited")
    snap = (await p.create(DRAFT)).snapshot
    assert snap.status is Status.DRAFT and len(ld.requests("POST")) == 2 and ld.writes == 1
    assert waits == [2.5]  # until X-Ratelimit-Reset (epoch ms), as seen from the injected clock
    quota = p.http.last_quota
    assert quota is not None and quota.remaining == ld.remaining["route"]
    said = await p.verify()
    assert "1 experiment(s) in web/production" in said and "X-Ratelimit-Route-Remaining" in said
    ld.fail("rate_limited")
    ld.reset_at_ms = 1_700_000_120_000
    with pytest.raises(RateLimited) as limited:
        await p.apply(resolve((await p.plan(snap, Change(kind=ChangeKind.START))).steps[0], [], CTX))
    assert limited.value.retry_after == 120  # longer than expbot holds a request: the user is told when
    ld.retry_after, waits[:] = "3", []
    ld.fail("rate_limited")
    await p.apply(resolve((await p.plan(snap, Change(kind=ChangeKind.START))).steps[0], [], CTX))
    assert waits == [3.0]  # Retry-After (IP-based limit) wins over the reset header
    await p.aclose()


async def test_a_lost_start_answer_is_confirmed_by_reading(p: LaunchDarklyProvider, ld: FakeLaunchDarkly) -> None:
    snap = (await p.create(DRAFT)).snapshot
    start = resolve((await p.plan(snap, Change(kind=ChangeKind.START))).steps[0], [], CTX)
    ld.fail("dropped")
    with pytest.raises(OutcomeUnknown):
        await p.apply(start)
    assert await p.confirm(start, snap) is None  # it did not happen: safe to send once
    ld.fail("timeout_after_write")
    with pytest.raises(OutcomeUnknown):
        await p.apply(start)
    found = await p.confirm(start, snap)
    assert found is not None and found.data["currentIteration"]["status"] == "running"
    assert ld.writes == 2 and len(ld.requests("PATCH")) == 2  # the create and the one start carried out


async def test_a_create_whose_answer_was_lost_is_looked_up_by_key(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly
) -> None:
    ld.fail("timeout_after_write")
    assert (await p.create(DRAFT)).snapshot.status is Status.DRAFT
    assert len(ld.requests("POST")) == 1
    ld.fail("dropped")
    other = DRAFT.model_copy(update={"name": "Second", "key": None})
    assert (await p.create(other)).snapshot.remote_id == "web/production/second"
    assert len(ld.requests("POST")) == 3 and len(ld.state.experiments) == 2


async def test_modal_menus_follow_pages_and_a_flag_fills_in_its_treatments(
    p: LaunchDarklyProvider, ld: FakeLaunchDarkly
) -> None:
    ld.edit(lambda s: [s.add_flag(f"flag-{n:02}", ["Off", "On"]) for n in range(60)])
    flags = await p.choices("flag_key", "", {})
    assert len(flags) == 61 and ld.requests("GET", "/api/v2/flags/web")[-1].query["offset"] == "50"
    assert [c.value for c in await p.choices("flag_key", "FLAG-07", {})] == ["flag-07"]
    assert [c.label for c in await p.choices("metric_key", "sign", {})] == ["Sign-ups (signups)"]
    assert await p.choices("randomization_unit", "org", {"project": "web"}) != []
    assert await p.form_defaults({"flag_key": "flag-01"}) == {
        "treatments": [{"name": "Off", "weight": 50}, {"name": "On", "weight": 50}]
    }
    kept = {"flag_key": "flag-01", "treatments.0.name": "Off", "treatments.1.name": "On"}
    assert await p.form_defaults(kept) == {}
    assert p.draft_defaults() == {"project": "web", "environment": "production"}


def test_draft_rules_show_inline_where_the_user_typed() -> None:
    assert derive_key("  Checkout: Button (v2)! ") == "checkout-button-v2"
    assert DRAFT.experiment_key == "checkout-button"
    values: dict[str, Any] = {"name": "X", "flag_key": "f", "metric_key": "m"}
    with pytest.raises(FieldErrors) as err:
        parse_draft(
            LaunchDarklyDraft,
            values
            | {"treatments.0.name": "A", "treatments.0.weight": "60"}
            | {"treatments.1.name": "B", "treatments.1.weight": "30"},
        )
    assert "add up to 100" in err.value.errors["treatments.0.weight"]
    with pytest.raises(FieldErrors) as err:
        parse_draft(LaunchDarklyDraft, values | {"key": "has space"})
    assert "key" in err.value.errors


def test_settings_and_start_up_checks() -> None:
    assert LaunchDarklySettings().root == "https://app.launchdarkly.com"
    assert LaunchDarklySettings(base_url=" http://127.0.0.1:8080/ ").root == "http://127.0.0.1:8080"
    with pytest.raises(ValidationError, match="not an http:// or https:// URL"):
        LaunchDarklySettings.model_validate({"base_url": "ftp://app.launchdarkly.com"})
    with pytest.raises(ValidationError):
        LaunchDarklySettings.model_validate({"projet": "web"})
    with pytest.raises(ValidationError):
        LaunchDarklySettings.model_validate({"project": "has space"})
    assert DRIVER.secrets == ("LAUNCHDARKLY_API_TOKEN",) and DRIVER.label == "LaunchDarkly"
    settings = LaunchDarklySettings()
    assert DRIVER.validate(settings, {"LAUNCHDARKLY_API_TOKEN": "api-123"}) == []
    assert 'without "Bearer"' in DRIVER.validate(settings, {"LAUNCHDARKLY_API_TOKEN": "Bearer api-1"})[0]
    assert "SDK or mobile key" in DRIVER.validate(settings, {"LAUNCHDARKLY_API_TOKEN": "sdk-123"})[0]
    provider = DRIVER.build(settings, _deps("api-secret-value"))
    assert "api-secret-value" not in repr(provider.http._client.auth)  # type: ignore[attr-defined]


def _deps(token: str) -> Any:
    from providers.registry import Deps

    return Deps(records=None, secrets={"LAUNCHDARKLY_API_TOKEN": token})  # type: ignore[arg-type]
