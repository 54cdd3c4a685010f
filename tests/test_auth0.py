"""The Auth0 adapter against the fake tenant over loopback HTTP: changes, refusals, lost answers and failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from providers.auth0 import Auth0Provider
from providers.errors import BadRequest, Conflict, InvalidChange, NotFound, OutcomeUnknown, ProviderError
from providers.models import Change, ChangeKind, Snapshot, Status
from tests.contract.harness import send_plan
from tests.contract.harness_auth0 import draft_for, provider_for
from tests.fake_auth0 import EXP, FakeAuth0


@pytest.fixture
def fake() -> Iterator[FakeAuth0]:
    server = FakeAuth0().start()
    yield server
    server.stop()


@pytest.fixture
async def provider(fake: FakeAuth0) -> AsyncIterator[Auth0Provider]:
    built = provider_for(fake)
    yield built
    await built.aclose()


async def _change(provider: Auth0Provider, snap: Snapshot, change: Change) -> Snapshot:
    await send_plan(provider, await provider.plan(snap, change))
    return await provider.get(snap.remote_id)


async def _draft(fake: FakeAuth0, provider: Auth0Provider, name: str = "Login copy", **kw: object) -> Snapshot:
    created = await provider.create(draft_for(fake.add_flag("Login"), name, **kw))  # type: ignore[arg-type]
    assert created.missing == []
    return created.snapshot


async def _running(fake: FakeAuth0, provider: Auth0Provider, **kw: object) -> Snapshot:
    return await _change(provider, await _draft(fake, provider, **kw), Change(kind=ChangeKind.START))


async def test_a_draft_reads_as_auth0_says_with_variation_names(fake: FakeAuth0, provider: Auth0Provider) -> None:
    snap = await _draft(fake, provider)
    body = fake.requests("POST", EXP)[0].body
    assert body["assignment_config"] == {"subject": "device"} and body["allocation_strategy"] == "percentage"
    assert [(a["weight"], a["is_control"]) for a in body["allocations"]] == [(50, True), (50, False)]
    assert snap.status is Status.DRAFT and snap.remote_id.startswith("exp_") and snap.exposure == 10
    assert [(v.key, v.weight, v.is_control) for v in snap.variants] == [("control", 50, True), ("treatment", 50, False)]
    assert snap.guard["levels"] == "[10, 50, 100]" and snap.guard["is_valid"] is True
    assert snap.note is not None and "10% → 50% → 100%" in snap.note
    no_ramp = await _draft(fake, provider, name="No ramp", levels=[])
    assert no_ramp.exposure == 100 and no_ramp.guard["levels"] == "[]"


async def test_the_lifecycle_maps_to_status_posts_and_the_ramp(fake: FakeAuth0, provider: Auth0Provider) -> None:
    snap = await _draft(fake, provider)
    start = await provider.plan(snap, Change(kind=ChangeKind.START))
    assert [s.render() for s in start.steps] == [
        f"POST {EXP}/{snap.remote_id}/validate",
        f'POST {EXP}/{snap.remote_id}/status {{"status": "active"}}',
    ]
    assert start.steps[0].repeatable and not start.steps[1].repeatable
    assert any("experiment_active_limit_exceeded" in n for n in start.notes)
    assert len(fake.requests("POST", "/validate")) == 1 and fake.writes == 2  # create + levels: /validate wrote nothing
    await send_plan(provider, start)
    snap = await provider.get(snap.remote_id)
    assert snap.status is Status.RUNNING and snap.exposure == 10 and snap.guard["current_level"] == 0
    assert provider.options(snap, ChangeKind.EXPOSURE).exposure_levels == (50,)
    ramp = await provider.plan(snap, Change(kind=ChangeKind.EXPOSURE, exposure=50))
    assert ramp.steps[0].body == {"target_level": 1} and ramp.steps[0].path.endswith("/advance-ramp")
    snap = await _change(provider, snap, Change(kind=ChangeKind.EXPOSURE, exposure=50))
    assert snap.exposure == 50
    for kind, status in ((ChangeKind.PAUSE, "paused"), (ChangeKind.RESUME, "active"), (ChangeKind.STOP, "completed")):
        plan = await provider.plan(snap, Change(kind=kind))
        assert [s.body for s in plan.steps] == [{"status": status}]
        snap = await _change(provider, snap, Change(kind=kind))
    assert snap.status is Status.COMPLETED and fake.experiments[snap.remote_id]["ended_at"]
    snap = await _change(provider, snap, Change(kind=ChangeKind.ARCHIVE))
    assert snap.status is Status.ARCHIVED and provider.capabilities(snap).changes == frozenset()
    assert await provider.list() == [] and [s.remote_id for s in await provider.list(Status.ARCHIVED)] == [
        snap.remote_id
    ]


async def test_a_split_is_one_patch_with_every_allocation_and_only_in_draft(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    snap = await _draft(fake, provider)
    split = Change(kind=ChangeKind.WEIGHTS, weights={"control": 30, "treatment": 70})
    plan = await provider.plan(snap, split)
    assert [s.method for s in plan.steps] == ["PATCH"] and plan.steps[0].repeatable
    ids = [v.remote_id for v in snap.variants]
    assert plan.steps[0].body == {
        "allocations": [
            {"variation_id": ids[0], "is_control": True, "weight": 30},
            {"variation_id": ids[1], "is_control": False, "weight": 70},
        ]
    }
    after = await _change(provider, snap, split)
    assert after.weights() == {"control": 30, "treatment": 70} and provider.took_effect(snap, split, after)
    with pytest.raises(InvalidChange, match="whole-number weights"):
        provider.check(after, Change(kind=ChangeKind.WEIGHTS, weights={"control": 33.5, "treatment": 66.5}))
    running = await _change(provider, after, Change(kind=ChangeKind.START))
    with pytest.raises(InvalidChange, match="only before the experiment is first started"):
        await provider.plan(running, split)


async def test_refused_changes_say_why_before_any_call(fake: FakeAuth0, provider: Auth0Provider) -> None:
    draft = await _draft(fake, provider)
    running = await _running(fake, provider, name="Ramp me")
    flat = await _draft(fake, provider, name="Flat", levels=[])
    seen = len(fake.seen)
    refusals = [
        (running, Change(kind=ChangeKind.SHIP, variant="treatment"), "no promotion.*default of the feature flag"),
        (running, Change(kind=ChangeKind.EXPOSURE, exposure=100), "next level of its ramp: 50%"),
        (running, Change(kind=ChangeKind.EXPOSURE, exposure=10), "already 10%"),
        (draft, Change(kind=ChangeKind.EXPOSURE, exposure=50), "ramps only an active experiment"),
        (flat, Change(kind=ChangeKind.PAUSE), "cannot pause an experiment that is draft"),
        (running, Change(kind=ChangeKind.START), "cannot start"),
        (running, Change(kind=ChangeKind.RESTORE), "cannot restore"),
    ]
    for snap, change, why in refusals:
        with pytest.raises(InvalidChange, match=why):
            await provider.plan(snap, change)
    fake.tamper(flat.remote_id, status="active", current_level=None)
    with pytest.raises(InvalidChange, match="no ramp levels"):
        provider.check(await provider.get(flat.remote_id), Change(kind=ChangeKind.EXPOSURE, exposure=50))
    assert len(fake.seen) == seen + 1  # only the read above


async def test_the_last_ramp_level_offers_nothing(fake: FakeAuth0, provider: Auth0Provider) -> None:
    snap = await _running(fake, provider, levels=[20, 100])
    snap = await _change(provider, snap, Change(kind=ChangeKind.EXPOSURE, exposure=100))
    assert snap.exposure == 100 and provider.options(snap, ChangeKind.EXPOSURE).exposure_levels == ()
    assert ChangeKind.EXPOSURE not in provider.capabilities(snap).changes
    with pytest.raises(InvalidChange, match="already at its last level"):
        provider.check(snap, Change(kind=ChangeKind.EXPOSURE, exposure=100))


async def test_validate_problems_refuse_the_start_or_stop_it_before_activation(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    snap = await _draft(fake, provider)
    flag = fake.experiments[snap.remote_id]["feature_flag_id"]
    fake.tenant.flags[flag]["status"] = "draft"
    with pytest.raises(InvalidChange, match="cannot start yet: The feature flag is not active"):
        await provider.plan(snap, Change(kind=ChangeKind.START))
    fake.tenant.flags[flag]["status"] = "active"
    plan = await provider.plan(snap, Change(kind=ChangeKind.START))
    fake.tenant.flags[flag]["status"] = "draft"  # changed between the request and the approval
    with pytest.raises(BadRequest, match="cannot start: The feature flag is not active"):
        await send_plan(provider, plan)
    assert not fake.requests("POST", "/status") and fake.experiments[snap.remote_id]["status"] == "draft"


async def test_one_active_experiment_per_tenant_is_explained(fake: FakeAuth0, provider: Auth0Provider) -> None:
    await _running(fake, provider, name="First")
    second = await _draft(fake, provider, name="Second")
    with pytest.raises(BadRequest) as err:
        await send_plan(provider, await provider.plan(second, Change(kind=ChangeKind.START)))
    assert err.value.code == "experiment_active_limit_exceeded" and err.value.status == 400
    assert "Only one active experiment is allowed per tenant." in err.value.detail  # Auth0's own words
    assert "experiment_active_limit_exceeded: another experiment is already active" in err.value.detail


async def test_a_lost_create_answer_is_found_by_name_and_not_sent_again(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    flag = fake.add_flag("Login")
    older = (await provider.create(draft_for(flag, "Same name", levels=[]))).snapshot
    fake.fail("late", method="POST", path=EXP)
    created = await provider.create(draft_for(flag, "Same name", levels=[]))
    assert created.snapshot.remote_id != older.remote_id and created.snapshot.name == "Same name"
    assert len(fake.requests("POST", EXP)) == 2 and len(fake.experiments) == 2  # one create each, none repeated


async def test_a_create_dropped_before_acting_is_sent_once_more(fake: FakeAuth0, provider: Auth0Provider) -> None:
    fake.fail("drop", method="POST", path=EXP)
    created = await provider.create(draft_for(fake.add_flag("Login"), levels=[]))
    assert len(fake.requests("POST", EXP)) == 2 and list(fake.experiments) == [created.snapshot.remote_id]


async def test_a_variation_the_flag_does_not_have_is_refused_before_the_create(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    draft = draft_for(fake.add_flag("Login"), levels=[])
    draft.weights[1].variation = "purple"
    with pytest.raises(BadRequest, match=r"the flag has no variation purple \(it has: control, treatment\)"):
        await provider.create(draft)
    assert not fake.requests("POST", EXP) and not fake.experiments


async def test_levels_that_fail_are_reported_missing_and_the_draft_kept(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    fake.fail("status", status=422, message="Levels are not supported on this tenant.", method="PATCH")
    created = await provider.create(draft_for(fake.add_flag("Login")))
    assert created.missing == ["ramp levels 10, 50, 100: Levels are not supported on this tenant."]
    assert created.snapshot.status is Status.DRAFT and created.snapshot.guard["levels"] == "[]"


async def test_a_lost_ramp_or_transition_answer_is_confirmed_by_reading(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    snap = await _running(fake, provider)
    step = (await provider.plan(snap, Change(kind=ChangeKind.EXPOSURE, exposure=50))).steps[0]
    fake.fail("late", path="/advance-ramp")
    with pytest.raises(OutcomeUnknown):
        await provider.apply(step)
    writes = fake.writes
    found = await provider.confirm(step, snap)
    assert found is not None and found.data["current_level"] == 1 and fake.writes == writes
    assert len(fake.requests("POST", "/advance-ramp")) == 1
    pause = (await provider.plan(snap, Change(kind=ChangeKind.PAUSE))).steps[0]
    assert await provider.confirm(pause, snap) is None  # not sent: still active


async def test_provider_failures_become_the_error_tree(fake: FakeAuth0, provider: Auth0Provider) -> None:
    snap = await _running(fake, provider)
    pause = await provider.plan(snap, Change(kind=ChangeKind.PAUSE))
    fake.fail("status", status=503, message="Service Unavailable", path="/status")
    await send_plan(provider, pause)  # a 503 means Auth0 did not act: sent once more, carried out once
    assert len(fake.requests("POST", "/status")) == 3 and fake.experiments[snap.remote_id]["status"] == "paused"
    snap = await provider.get(snap.remote_id)
    resume = await provider.plan(snap, Change(kind=ChangeKind.RESUME))
    fake.fail("status", status=409, code="experiment_conflict", message="Modified concurrently.", path="/status")
    with pytest.raises(Conflict, match="Modified concurrently"):
        await send_plan(provider, resume)
    fake.fail("status", status=500, path="/status")
    with pytest.raises(ProviderError) as err:
        await send_plan(provider, resume)
    assert err.value.status == 500 and fake.experiments[snap.remote_id]["status"] == "paused"
    reads = len(fake.requests("GET", snap.remote_id))
    fake.fail("latency", delay=1.0, method="GET")  # longer than the read timeout: the read is sent again
    assert (await provider.get(snap.remote_id)).status is Status.PAUSED
    assert len(fake.requests("GET", snap.remote_id)) == reads + 2


async def test_track_takes_exp_ids_and_links(fake: FakeAuth0, provider: Auth0Provider) -> None:
    snap = await _draft(fake, provider)
    link = f"https://manage.auth0.com/dashboard/eu/tenant/experiments/{snap.remote_id}/settings"
    assert provider.canonical_id(link) == snap.remote_id == provider.canonical_id(f" {snap.remote_id} ")
    assert (await provider.get(provider.canonical_id(link))).name == "Login copy"
    seen = len(fake.seen)
    for bad in ("exp-1", "../oauth/token", "EXP_0OIl"):
        with pytest.raises(NotFound, match="not an Auth0 experiment id"):
            await provider.get(provider.canonical_id(bad))
    assert len(fake.seen) == seen
    with pytest.raises(NotFound, match="does not exist"):
        await provider.get("exp_ZZZZZZZZ")


async def test_list_follows_checkpoints_of_at_most_50(fake: FakeAuth0, provider: Auth0Provider) -> None:
    flag = fake.add_flag("Many")
    control = fake.tenant.flags[flag]["variations"][0]["id"]
    body = {"feature_flag_id": flag, "authentication_flow": "all", "allocation_strategy": "percentage"}
    body |= {"assignment_config": {"subject": "device"}, "allocations": [{"variation_id": control, "weight": 100}]}
    for i in range(60):
        fake.tenant.route("POST", EXP, {}, body | {"name": f"Experiment {i:02}"})
    found = await provider.list()
    assert [s.name for s in found] == [f"Experiment {i:02}" for i in range(60)]
    pages = [r.query for r in fake.requests("GET", EXP) if r.path == EXP]
    assert pages == [{"take": "50"}, {"take": "50", "from": "50"}]
    assert await provider.list(Status.RUNNING) == [] and await provider.list(Status.STOPPED) == []
