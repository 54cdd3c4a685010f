"""The sandbox's harness for the contract suite: its records in a real SQLite file, its fault plan as the fake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bot.store import Store
from providers.models import Change, ChangeKind, Snapshot
from providers.registry import Deps
from providers.sandbox import SandboxDraft, SandboxProvider
from tests.contract.harness import Harness


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store(tmp_path / "contract.db")
    provider = SandboxProvider(Deps(records=store))

    async def tamper(snap: Snapshot) -> None:
        record = await store.sandbox_get(snap.remote_id)
        assert record is not None
        record["exposure"] = (record["exposure"] + 7) % 100
        await store.sandbox_put(snap.remote_id, record)

    def fail_write(kind: str, skip: int) -> None:
        provider.faults.inject(kind, skip=skip)  # type: ignore[arg-type]

    async def writes() -> int:
        return sum(int(r.get("version", 1)) + len(r["variants"]) for r in await store.sandbox_all())

    try:
        yield Harness(
            name="sandbox",
            provider=provider,
            draft=SandboxDraft(name="Contract", variants=["control", "a"]),
            walk=[
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.EXPOSURE, exposure=40),
                Change(kind=ChangeKind.WEIGHTS, weights={"control": 30, "a": 70}),
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.RESUME),
                Change(kind=ChangeKind.SHIP, variant="a"),
                Change(kind=ChangeKind.ARCHIVE),
                Change(kind=ChangeKind.RESTORE),
            ],
            multi_step=Change(kind=ChangeKind.SHIP, variant="a"),
            tamper=tamper,
            fail_write=fail_write,
            writes=writes,
        )
    finally:
        store.close()
