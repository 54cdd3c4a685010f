"""App Store Connect's harness for the contract suite: the adapter against the fake App Store Connect on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from providers.appstore import AppStoreProvider
from providers.appstore_forms import AppStoreDraft, AppStoreSettings
from providers.auth import AppStoreJwt
from providers.models import Change, ChangeKind, Snapshot
from tests.contract.harness import Harness
from tests.fake_appstore import FakeAppStore

ISSUER, KEY_ID, APP_ID = "69a6de70-03db-47e3-e053-5b8c7c11a4d1", "2X9R4HXF34", "1452013590"
KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def new_fake(page_size: int = 200) -> FakeAppStore:
    """A started fake with two apps, each with version 1.0 of its iOS app ready for distribution."""
    fake = FakeAppStore(ISSUER, KEY_ID, KEY.public_key(), page_size).start()
    fake.state.add_app(APP_ID, "Pocket Planner", "com.example.planner")
    fake.state.add_app("1600000001", "Night Sky", "com.example.nightsky")
    return fake


async def no_sleep(seconds: float) -> None:
    return None


def new_provider(
    fake: FakeAppStore, *, allow_stop: bool = False, timeout: float = 1.0, **auth: Any
) -> AppStoreProvider:
    """The adapter pointed at the fake (short read timeout so a lost answer is noticed quickly; no backoff sleeps)."""
    settings = AppStoreSettings(base_url=fake.url, app_id=APP_ID, allow_stop=allow_stop)  # type: ignore[arg-type]
    jwt_auth = AppStoreJwt(ISSUER, KEY_ID, PEM, **auth)
    return AppStoreProvider(settings, jwt_auth, timeout=httpx.Timeout(timeout), sleep=no_sleep)


def draft(name: str = "Contract", **fields: Any) -> AppStoreDraft:
    return AppStoreDraft.model_validate({"name": name, "app_id": APP_ID, **fields})


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = new_fake()
    fake.state.auto_review = "APPROVED"
    provider = new_provider(fake)

    async def tamper(snap: Snapshot) -> None:
        with fake._lock:
            fake.state.experiments[snap.remote_id]["trafficProportion"] += 7

    def fail_write(kind: str, skip: int) -> None:
        fake.fail(kind, skip=skip)

    async def writes() -> int:
        return fake.writes

    try:
        yield Harness(
            name="appstore",
            provider=provider,
            draft=draft(),
            walk=[
                Change(kind=ChangeKind.EXPOSURE, exposure=30),
                Change(kind=ChangeKind.ACTION, action="submit_review"),
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.EXPOSURE, exposure=40),
                Change(kind=ChangeKind.SHIP, variant="treatment-a"),
            ],
            multi_step=Change(kind=ChangeKind.ACTION, action="submit_review"),
            tamper=tamper,
            fail_write=fail_write,
            writes=writes,
            refused_on_draft=[
                Change(kind=ChangeKind.PAUSE),
                Change(kind=ChangeKind.START),
                Change(kind=ChangeKind.STOP),
                Change(kind=ChangeKind.WEIGHTS, weights={"original": 50, "treatment-a": 25, "treatment-b": 25}),
                Change(kind=ChangeKind.SHIP, variant="treatment-a"),
            ],
        )
        assert fake.invalid == [], fake.invalid  # every body and query the adapter sent is valid per the spec
    finally:
        await provider.aclose()
        fake.stop()
