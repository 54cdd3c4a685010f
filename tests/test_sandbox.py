"""The sandbox provider: draft rules, plans per change kind, state rules enforced on apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.store import Store
from providers.base import Call, Change, ChangeKind, Conflict, InvalidChange, NotFound, Provider, Status
from providers.sandbox import SandboxDraft, SandboxProvider


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxProvider:
    return SandboxProvider(Store(tmp_path / "x.db"))


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


async def test_lifecycle(sandbox: SandboxProvider) -> None:
    assert isinstance(sandbox, Provider)
    snap = await sandbox.create(SandboxDraft(name="Checkout", variants=["control", "a", "b"]))
    assert snap.status is Status.DRAFT and [v.weight for v in snap.variants] == [34, 33, 33]
    assert snap.variants[0].is_control
    plan = sandbox.plan(snap, Change(kind=ChangeKind.START))
    assert plan == [Call(method="PATCH", path=f"/sandbox/experiments/{snap.remote_id}", body={"status": "running"})]
    running = await sandbox.apply(snap.remote_id, plan)
    assert running.status is Status.RUNNING and running.fingerprint != snap.fingerprint
    ramped = await sandbox.apply(snap.remote_id, sandbox.plan(running, Change(kind=ChangeKind.EXPOSURE, exposure=50)))
    assert ramped.exposure == 50
    split = Change(kind=ChangeKind.WEIGHTS, weights={"control": 50, "a": 25, "b": 25})
    resplit = await sandbox.apply(snap.remote_id, sandbox.plan(ramped, split))
    assert resplit.weights() == {"control": 50, "a": 25, "b": 25}
    shipped = await sandbox.apply(snap.remote_id, sandbox.plan(resplit, Change(kind=ChangeKind.SHIP, variant="b")))
    assert shipped.status is Status.COMPLETED and shipped.weights()["b"] == 100
    assert Change(kind=ChangeKind.SHIP, variant="b").took_effect(shipped)
    assert [s.remote_id for s in await sandbox.list(Status.COMPLETED)] == [snap.remote_id]


async def test_plan_refuses_what_the_state_does_not_allow(sandbox: SandboxProvider) -> None:
    snap = await sandbox.create(SandboxDraft(name="Checkout"))
    with pytest.raises(InvalidChange, match="cannot pause an experiment that is draft"):
        sandbox.plan(snap, Change(kind=ChangeKind.PAUSE))
    with pytest.raises(InvalidChange, match="already 10%"):
        sandbox.plan(snap, Change(kind=ChangeKind.EXPOSURE, exposure=10))
    with pytest.raises(InvalidChange, match="every variant"):
        sandbox.plan(snap, Change(kind=ChangeKind.WEIGHTS, weights={"control": 100}))


async def test_apply_checks_state_again(sandbox: SandboxProvider) -> None:
    snap = await sandbox.create(SandboxDraft(name="Checkout"))
    stop = [Call(method="PATCH", path="/x", body={"status": "stopped"})]
    with pytest.raises(Conflict) as err:
        await sandbox.apply(snap.remote_id, stop)
    assert err.value.status == 409 and "draft to stopped" in err.value.detail
    with pytest.raises(NotFound):
        await sandbox.get("sbx-404")
