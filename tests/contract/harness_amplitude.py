"""Amplitude's harness for the contract suite: the adapter over real loopback HTTP against the fake Amplitude."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from providers.amplitude import AmplitudeProvider
from providers.amplitude_forms import AmplitudeDraft, AmplitudeSettings
from providers.models import Change, ChangeKind, Snapshot
from tests.contract.harness import Harness
from tests.fake_amplitude import FakeAmplitude

KINDS = {"conflict": 409, "stale": 409, "server_error": 500}
TIMEOUT = httpx.Timeout(connect=2.0, read=1.0, write=2.0, pool=2.0)  # a held answer counts as lost after 1 s


async def no_wait(seconds: float) -> None:
    return None


def adapter(fake: FakeAmplitude, **settings: object) -> AmplitudeProvider:
    """The adapter pointed at the fake, with a short read timeout and no real sleeping between retries."""
    options = AmplitudeSettings.model_validate({"base_url": fake.url, "project_id": "100"} | settings)
    return AmplitudeProvider(options, {"AMPLITUDE_API_KEY": fake.key}, timeout=TIMEOUT, sleep=no_wait)


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakeAmplitude().start()
    provider = adapter(fake)

    async def tamper(snap: Snapshot) -> None:
        rollout = fake.experiments[snap.remote_id]["rolloutPercentage"]
        fake.edit(snap.remote_id, rolloutPercentage=(rollout + 7) % 100)

    def fail_write(kind: str, skip: int) -> None:
        if kind in KINDS:
            fake.inject("status", method="WRITE", status=KINDS[kind], body=f"{kind} (injected)", skip=skip)
        else:
            fake.inject({"dropped": "drop"}.get(kind, kind), method="WRITE", skip=skip)

    async def writes() -> int:
        return fake.writes

    try:
        yield Harness(
            name="amplitude",
            provider=provider,
            draft=AmplitudeDraft(name="Contract", variants=["control", "treatment"]),
            walk=[
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.EXPOSURE, exposure=40),
                Change(kind=ChangeKind.WEIGHTS, weights={"control": 25, "treatment": 75}),
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.RESUME),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.SHIP, variant="treatment"),
                Change(kind=ChangeKind.ARCHIVE),
            ],
            multi_step=Change(kind=ChangeKind.SHIP, variant="treatment"),
            tamper=tamper,
            fail_write=fail_write,
            writes=writes,
            refused_on_draft=[
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.RESUME),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.SHIP, variant="treatment"),
            ],
        )
    finally:
        await provider.aclose()
        fake.stop()
