"""The sandbox provider: draft rules, settings (latency, faults), plans in steps, state rules enforced on apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.store import Store
from providers.base import Provider
from providers.errors import Conflict, InvalidChange, NotFound, OutcomeUnknown, Stale, Unavailable
from providers.models import Change, ChangeKind, Status
from providers.plan import Step
from providers.registry import Deps, driver
from providers.sandbox import SandboxDraft, SandboxProvider, SandboxSettings


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxProvider:
    return SandboxProvider(Deps(records=Store(tmp_path / "x.db")))


def test_draft_rules() -> None:
    draft = SandboxDraft.model_validate({"name": " Checkout ", "variants": "control, a, b"})
    assert draft.name == "Checkout" and draft.variants == ["control", "a", "b"] and draft.exposure == 10
    for bad in (
        {"name": ""},
        {"name": "x", "variants": "only"},
        {"name": "x", "variants": "A, b"},
        {"name": "x", "variants": "a, a"},
        {"name": "x", "exposure": 101},
        {"name": "x" * 81},
    ):
        with pytest.raises(ValidationError):
            SandboxDraft.model_validate(bad)


def test_settings_parse_durations_and_refuse_unknown_keys() -> None:
    assert SandboxSettings.model_validate({"latency": "400ms"}).latency == 0.4
    assert SandboxSettings.model_validate({"latency": "2s", "fault": "conflict"}).latency == 2.0
    for bad in ({"latency": "soon"}, {"fault": "gremlins"}, {"fault_rate": 2}, {"latncy": "1s"}):
        with pytest.raises(ValidationError):
            SandboxSettings.model_validate(bad)
    found = driver("sandbox")
    assert found is not None and found.settings_model is SandboxSettings
    assert driver("launchdarkly") is None or driver("launchdarkly").name == "launchdarkly"  # type: ignore[union-attr]


async def test_lifecycle_in_steps(sandbox: SandboxProvider) -> None:
    assert isinstance(sandbox, Provider)
    snap = (await sandbox.create(SandboxDraft(name="Checkout", variants=["control", "a", "b"]))).snapshot
    assert snap.status is Status.DRAFT and [v.weight for v in snap.variants] == [34, 33, 33]
    assert snap.variants[0].is_control and sandbox.canonical_id(" SBX-01 ") == snap.remote_id
    plan = await sandbox.plan(snap, Change(kind=ChangeKind.START))
    assert [(s.method, s.path, s.repeatable) for s in plan.steps] == [("PATCH", "/sandbox/experiments/sbx-1", True)]
    for step in plan.steps:
        await sandbox.apply(step)
    running = await sandbox.get(snap.remote_id)
    assert running.status is Status.RUNNING and running.fingerprint != snap.fingerprint
    assert sandbox.took_effect(snap, Change(kind=ChangeKind.START), running)
    ship = await sandbox.plan(running, Change(kind=ChangeKind.SHIP, variant="b"))
    assert [s.repeatable for s in ship.steps] == [False, True] and ship.notes
    decision = await sandbox.apply(ship.steps[0])
    assert decision.data == {"id": "dec-1", "variant": "b"}
    assert await sandbox.confirm(ship.steps[0], running) == decision  # found by reading, never sent twice
    await sandbox.apply(ship.steps[1].model_copy(update={"body": {"decision": "dec-1"}}))
    shipped = await sandbox.get(snap.remote_id)
    assert shipped.status is Status.COMPLETED and shipped.weights()["b"] == 100
    archive = await sandbox.plan(shipped, Change(kind=ChangeKind.ARCHIVE))
    await sandbox.apply(archive.steps[0])
    archived = await sandbox.get(snap.remote_id)
    assert sandbox.preview(archived, Change(kind=ChangeKind.RESTORE)).status is Status.COMPLETED
    await sandbox.apply((await sandbox.plan(archived, Change(kind=ChangeKind.RESTORE))).steps[0])
    assert (await sandbox.get(snap.remote_id)).status is Status.COMPLETED
    assert [s.remote_id for s in await sandbox.list(Status.COMPLETED)] == [snap.remote_id]


async def test_plan_refuses_what_the_experiment_does_not_allow(sandbox: SandboxProvider) -> None:
    snap = (await sandbox.create(SandboxDraft(name="Checkout"))).snapshot
    with pytest.raises(InvalidChange, match="cannot pause an experiment that is draft"):
        await sandbox.plan(snap, Change(kind=ChangeKind.PAUSE))
    with pytest.raises(InvalidChange, match="already 10%"):
        await sandbox.plan(snap, Change(kind=ChangeKind.EXPOSURE, exposure=10))
    with pytest.raises(InvalidChange, match="every variant"):
        await sandbox.plan(snap, Change(kind=ChangeKind.WEIGHTS, weights={"control": 100}))
    with pytest.raises(InvalidChange, match="add up to 100"):
        await sandbox.plan(snap, Change(kind=ChangeKind.WEIGHTS, weights={"control": 33.3, "treatment": 33.3}))
    decimals = await sandbox.plan(snap, Change(kind=ChangeKind.WEIGHTS, weights={"control": 33.33, "treatment": 66.67}))
    assert decimals.steps[0].body["weights"] == {"control": 33.33, "treatment": 66.67}  # type: ignore[index]
    assert [a.key for a in sandbox.capabilities(snap).actions] == ["submit_review"]


async def test_apply_checks_state_again(sandbox: SandboxProvider) -> None:
    snap = (await sandbox.create(SandboxDraft(name="Checkout"))).snapshot
    with pytest.raises(Conflict) as err:
        await sandbox.apply(
            Step(method="PATCH", path=f"/sandbox/experiments/{snap.remote_id}", body={"status": "stopped"})
        )
    assert err.value.status == 409 and "draft to stopped" in err.value.detail
    with pytest.raises(NotFound):
        await sandbox.get("sbx-404")


async def test_faults_fail_writes_the_chosen_way(sandbox: SandboxProvider) -> None:
    snap = (await sandbox.create(SandboxDraft(name="Checkout"))).snapshot
    start = (await sandbox.plan(snap, Change(kind=ChangeKind.START))).steps[0]
    for kind, error in (
        ("conflict", Conflict),
        ("stale", Stale),
        ("server_error", Unavailable),
        ("dropped", OutcomeUnknown),
    ):
        sandbox.faults.inject(kind)  # type: ignore[arg-type]
        with pytest.raises(error):
            await sandbox.apply(start)
        assert (await sandbox.get(snap.remote_id)).status is Status.DRAFT  # refused: nothing changed
    sandbox.faults.inject("timeout_after_write")
    with pytest.raises(OutcomeUnknown):
        await sandbox.apply(start)
    assert (await sandbox.get(snap.remote_id)).status is Status.RUNNING  # the write went through all the same


async def test_a_create_whose_answer_is_lost_is_found_not_repeated(sandbox: SandboxProvider) -> None:
    sandbox.faults.inject("timeout_after_write")
    created = await sandbox.create(SandboxDraft(name="Once"))
    assert [s.name for s in await sandbox.list()] == ["Once"] and created.snapshot.remote_id == "sbx-1"
    sandbox.faults.inject("dropped")
    again = await sandbox.create(SandboxDraft(name="Twice"))  # not carried out: sent again, once
    assert [s.name for s in await sandbox.list()] == ["Once", "Twice"] and again.snapshot.remote_id == "sbx-2"


async def test_a_create_that_partly_fails_says_what_is_missing(sandbox: SandboxProvider) -> None:
    sandbox.faults.inject("server_error", skip=2)  # the experiment and its first variant, then a 503
    created = await sandbox.create(SandboxDraft(name="Partial", variants=["control", "a", "b"]))
    assert [v.key for v in created.snapshot.variants] == ["control", "b"]
    assert len(created.missing) == 1 and "variant `a`" in created.missing[0]
