"""LaunchDarkly's harness for the contract suite: the real adapter against the fake LaunchDarkly on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from providers.launchdarkly import LaunchDarklyProvider
from providers.launchdarkly_forms import LaunchDarklyDraft, LaunchDarklySettings
from providers.models import Change, ChangeKind, Snapshot
from tests.contract.harness import Harness
from tests.fake_launchdarkly import FakeLaunchDarkly


async def no_wait(_: float) -> None:
    return None


def provider_for(fake: FakeLaunchDarkly, timeout: float = 1.0, **settings: Any) -> LaunchDarklyProvider:
    """The adapter pointed at the fake, with a short read timeout (a write answered late times out) and no waits."""
    options = LaunchDarklySettings(base_url=fake.url, **({"project": "web", "environment": "production"} | settings))  # type: ignore[arg-type]
    return LaunchDarklyProvider(options, fake.token, timeout=httpx.Timeout(timeout), sleep=no_wait)


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakeLaunchDarkly().start()
    provider = provider_for(fake)

    async def tamper(snap: Snapshot) -> None:  # someone edits the flag in LaunchDarkly's UI
        fake.edit(
            lambda state: state.flags["checkout-button"].update(_version=state.flags["checkout-button"]["_version"] + 1)
        )

    async def writes() -> int:
        return fake.writes

    try:
        yield Harness(
            name="launchdarkly",
            provider=provider,
            draft=LaunchDarklyDraft(name="Contract", flag_key="checkout-button", metric_key="purchases"),
            walk=[
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.EXPOSURE, exposure=40),
                Change(kind=ChangeKind.WEIGHTS, weights={"Control": 30, "Treatment": 70}),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.SHIP, variant="Treatment"),
                Change(kind=ChangeKind.ARCHIVE),
                Change(kind=ChangeKind.RESTORE),
            ],
            multi_step=Change(kind=ChangeKind.EXPOSURE, exposure=25),
            tamper=tamper,
            fail_write=lambda kind, skip: fake.fail(kind, skip),
            writes=writes,
            refused_on_draft=[Change(kind=ChangeKind.PAUSE), Change(kind=ChangeKind.EXPOSURE, exposure=50)],
        )
        assert fake.invalid == [], fake.invalid
    finally:
        await provider.aclose()
        fake.stop()
