"""Auth0's harness for the contract suite: the adapter over real loopback HTTP against the fake tenant."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from providers.auth0 import Auth0Provider, Auth0Settings
from providers.auth0_forms import Allocation, Auth0Draft
from providers.models import Change, ChangeKind, Snapshot
from tests.contract.harness import Harness
from tests.fake_auth0 import FakeAuth0

QUICK = httpx.Timeout(5.0, read=0.5)
"""A read timeout shorter than the fake's late answers, so a lost answer is lost quickly."""


def provider_for(fake: FakeAuth0, rate: float = 200, secret: str | None = None, **options: Any) -> Auth0Provider:
    """The adapter wired to the fake as `[providers.auth0] base_url` and the three AUTH0_* variables would."""
    secrets = {
        "AUTH0_DOMAIN": fake.domain,
        "AUTH0_CLIENT_ID": fake.client_id,
        "AUTH0_CLIENT_SECRET": secret or fake.client_secret,
    }
    settings = Auth0Settings.model_validate({"base_url": fake.url, "requests_per_second": rate})
    return Auth0Provider(settings, secrets, **({"timeout": QUICK} | options))


def draft_for(flag: str, name: str = "Contract", levels: list[int] | None = None) -> Auth0Draft:
    rows = [Allocation(variation="control", weight=50, control=True), Allocation(variation="treatment", weight=50)]
    return Auth0Draft(name=name, feature_flag_id=flag, weights=rows, levels=[10, 50, 100] if levels is None else levels)


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakeAuth0().start()
    provider = provider_for(fake)

    async def tamper(snap: Snapshot) -> None:
        fake.tamper(snap.remote_id, description="edited in the Auth0 dashboard")

    async def writes() -> int:
        return fake.writes

    try:
        yield Harness(
            name="auth0",
            provider=provider,
            draft=draft_for(fake.add_flag("Login button")),
            walk=[
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.EXPOSURE, exposure=50),
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.RESUME),
                Change(kind=ChangeKind.EXPOSURE, exposure=100),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.ARCHIVE),
            ],
            multi_step=Change(kind=ChangeKind.ARCHIVE),
            tamper=tamper,
            fail_write=fake.fail_write,
            writes=writes,
            refused_on_draft=[
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.RESUME),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.EXPOSURE, exposure=50),
                Change(kind=ChangeKind.SHIP, variant="treatment"),
            ],
        )
    finally:
        await provider.aclose()
        fake.stop()
