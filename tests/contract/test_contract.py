"""The provider contract, as every adapter must meet it against its fake (parametrized over the harnesses)."""

from __future__ import annotations

import pytest

from providers.base import Provider
from providers.errors import InvalidChange, OutcomeUnknown, ProviderError
from providers.models import Snapshot
from providers.plan import Plan, resolve
from tests.contract.harness import CTX, Harness, send_plan


async def _created(h: Harness) -> Snapshot:
    created = await h.provider.create(h.draft)
    assert created.missing == []
    return created.snapshot


async def test_create_then_read_back(harness: Harness) -> None:
    p = harness.provider
    assert isinstance(p, Provider) and p.name == harness.name and p.label
    snap = await _created(harness)
    again = await p.get(snap.remote_id)
    assert again.fingerprint == snap.fingerprint and again.name == snap.name
    assert p.canonical_id(snap.remote_id) == snap.remote_id
    assert p.canonical_id(f"  {snap.remote_id} ") == snap.remote_id
    assert any(s.remote_id == snap.remote_id for s in await p.list())


async def test_each_supported_change_is_planned_applied_and_seen(harness: Harness) -> None:
    p = harness.provider
    snap = await _created(harness)
    for change in harness.walk:
        assert p.capabilities(snap).allows(change), f"{change.describe()} should be offered on {snap.status}"
        plan = await p.plan(snap, change)
        assert plan.steps and all(s.method in {"GET", "POST", "PUT", "PATCH", "DELETE"} for s in plan.steps)
        rendered = " ".join(s.render() for s in plan.steps)
        assert "Authorization" not in rendered and "Bearer" not in rendered
        await send_plan(p, plan)
        after = await p.get(snap.remote_id)
        assert p.took_effect(snap, change, after), f"{change.describe()} did not show on {after}"
        snap = after


async def test_a_change_the_experiment_cannot_take_is_refused_before_any_call(harness: Harness) -> None:
    snap = await _created(harness)
    before = await harness.writes()
    for change in harness.refused_on_draft:
        assert not harness.provider.capabilities(snap).allows(change)
        with pytest.raises(InvalidChange):
            await harness.provider.plan(snap, change)
    assert await harness.writes() == before


async def test_a_change_behind_expbots_back_changes_the_fingerprint(harness: Harness) -> None:
    snap = await _created(harness)
    await harness.tamper(snap)
    assert (await harness.provider.get(snap.remote_id)).fingerprint != snap.fingerprint


async def _ready_for_multi_step(h: Harness) -> tuple[Snapshot, Plan]:
    snap = await _created(h)
    await send_plan(h.provider, await h.provider.plan(snap, h.walk[0]))
    snap = await h.provider.get(snap.remote_id)
    plan = await h.provider.plan(snap, h.multi_step)
    assert len(plan.steps) >= 2
    return snap, plan


async def test_a_failure_mid_plan_is_known_step_by_step(harness: Harness) -> None:
    p = harness.provider
    snap, plan = await _ready_for_multi_step(harness)
    harness.fail_write("server_error", 1)
    first = await p.apply(resolve(plan.steps[0], [], CTX))
    assert 200 <= first.status < 300
    with pytest.raises(ProviderError) as err:
        await p.apply(resolve(plan.steps[1], [first], CTX))
    assert err.value.status and err.value.status >= 500 and err.value.detail
    assert not p.took_effect(snap, harness.multi_step, await p.get(snap.remote_id))


async def test_after_a_crash_mid_plan_a_sent_write_is_confirmed_not_repeated(harness: Harness) -> None:
    p = harness.provider
    snap, plan = await _ready_for_multi_step(harness)
    harness.fail_write("timeout_after_write", 0)
    first = resolve(plan.steps[0], [], CTX)
    with pytest.raises(OutcomeUnknown):
        await p.apply(first)  # it went through, but its answer was lost
    writes = await harness.writes()
    found = await p.confirm(first, snap)
    assert found is not None and await harness.writes() == writes  # found by reading, nothing sent
    rest = [found]
    for step in plan.steps[1:]:
        rest.append(await p.apply(resolve(step, rest, CTX)))
    assert p.took_effect(snap, harness.multi_step, await p.get(snap.remote_id))


async def test_a_sent_write_that_did_not_happen_is_found_missing_and_sent_once(harness: Harness) -> None:
    p = harness.provider
    snap, plan = await _ready_for_multi_step(harness)
    harness.fail_write("dropped", 0)
    first = resolve(plan.steps[0], [], CTX)
    with pytest.raises(OutcomeUnknown):
        await p.apply(first)  # the connection dropped before the provider acted
    assert await p.confirm(first, snap) is None
    answers = await send_plan(p, plan)
    assert len(answers) == len(plan.steps)
    assert p.took_effect(snap, harness.multi_step, await p.get(snap.remote_id))
